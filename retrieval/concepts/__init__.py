"""Concept channels: what the backbones' ImageNet classifier heads see in a photo, matched to
a query's words through the sentence encoder, fused with the aligned embedding score and
calibrated into a match probability."""
