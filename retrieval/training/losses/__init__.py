"""Training objectives for the alignment network, one loss a module."""
