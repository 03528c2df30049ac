"""Reading the photo library: walking folders, fingerprints, decoding photos, COCO captions."""
