"""The shared data used by the captioner scripts: the text corpus less the dev photos' captions."""
import json
from pathlib import Path

import numpy as np

from retrieval.training.captioner import drop_photos, flickr_photo_id, load_text_corpus


def corpus_for_pretraining(data: Path, max_captions: int | None = None, seed: int = 0) -> list[str]:
    """Captions of ``data/captions/corpus.tsv.gz`` minus every caption of a Flickr8k dev photo
    (the corpus holds them through its flickr8k and flickr30k rows: 9,199 captions), then a
    random subset of ``max_captions`` (kept in file order)."""
    caps, imgs = load_text_corpus(data / "captions" / "corpus.tsv.gz")
    dev = json.loads((data / "flickr8k" / "captions_dev.json").read_text())
    flickr = [im if not im.isdigit() else "" for im in imgs]  # COCO rows have numeric ids: never dropped
    caps = drop_photos(caps, flickr, {flickr_photo_id(im["file_name"]) for im in dev["images"]})
    if max_captions and max_captions < len(caps):
        keep = np.sort(np.random.default_rng(seed).permutation(len(caps))[:max_captions])
        caps = [caps[i] for i in keep]
    return caps
