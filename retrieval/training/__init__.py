"""Training retr's models on captioned photos: alignment heads, the captioner, cached features, metrics and losses."""
