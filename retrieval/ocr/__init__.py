"""Text in photos: recognition (OCR), the gate that decides which photos are worth it, and the
indexing pass that stores what was read."""
