"""Turning photos and text into embeddings: the Encoder protocol, backbones, alignment heads, ONNX."""
