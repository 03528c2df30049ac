"""Building an index from a folder: the incremental plan, the indexer, the Ray path."""
