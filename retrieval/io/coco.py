"""Read COCO-captions JSON files (``images`` + ``annotations``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CaptionCorpus:
    """Photos and their captions from a COCO-captions file.

    Attributes:
        file_names: photo file names, relative to the image folder, one per photo.
        captions: caption strings.
        caption_photo: for each caption, the index into ``file_names`` of its photo.
    """

    file_names: list[str]
    captions: list[str]
    caption_photo: list[int]

    def subset(self, photo_idx) -> "CaptionCorpus":
        """The corpus restricted to the photos at ``photo_idx`` (re-indexed)."""
        keep = {int(p): i for i, p in enumerate(photo_idx)}
        caps, cp = [], []
        for c, p in zip(self.captions, self.caption_photo):
            if p in keep:
                caps.append(c)
                cp.append(keep[p])
        return CaptionCorpus([self.file_names[int(p)] for p in photo_idx], caps, cp)


def load_coco_captions(path: str | Path) -> CaptionCorpus:
    """Load a COCO-captions JSON file.

    Photos without a caption are kept (they can still be indexed); captions whose
    ``image_id`` names no photo are dropped.

    Raises:
        ValueError: the file is not valid JSON or lacks ``images``/``annotations``.
        OSError: the file cannot be read.
    """
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        images = d["images"]
        anns = d["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a COCO-captions file ({e.__class__.__name__}: {e})") from None
    idx = {im["id"]: i for i, im in enumerate(images)}
    caps, cp = [], []
    for a in anns:
        i = idx.get(a.get("image_id"))
        if i is not None and isinstance(a.get("caption"), str) and a["caption"].strip():
            caps.append(a["caption"].strip())
            cp.append(i)
    return CaptionCorpus([im["file_name"] for im in images], caps, cp)
