"""`python -m retrieval ...` runs the `retr` command line (the same as the `retr` script)."""
from retrieval.app.cli import main

main()
