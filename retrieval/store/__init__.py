"""Where an index lives: the database, its migrations, the FAISS file, ANN types, BLAS set-up."""
