"""COCO object detection (YOLOv3-tiny) for the detector concept channel."""
