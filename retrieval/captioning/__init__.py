"""Writing captions for photos: the CVAE model, decoding, CIDEr re-ranking, the caption bank."""
