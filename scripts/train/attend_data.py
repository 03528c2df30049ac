"""Data of the attention captioner's training: the caption corpus (less the Flickr8k dev photos'
captions and every COCO-mini photo's captions), its vocabulary and token arrays, and the photo
features written by the feature cache (regions, aligned embedding, ImageNet posteriors, detections)."""
import json
from pathlib import Path

import numpy as np

from captioner_data import corpus_for_pretraining
from retrieval.captioning.vocab import tokenize
from retrieval.io.coco import load_coco_captions
from retrieval.training.captioner import build_vocab, encode_captions, load_text_corpus

MAX_LEN = 20


def coco_mini_exclusions(data: Path) -> tuple[set[str], set[str]]:
    """(COCO ids, normalised captions) of COCO-mini: never trained on."""
    d = json.loads((data / "coco_mini" / "captions.json").read_text())
    ids = {str(int(im["source_id"])) for im in d["images"]}
    return ids, {" ".join(tokenize(a["caption"])) for a in d["annotations"]}


def training_corpus(data: Path) -> list[str]:
    """The corpus less the Flickr8k dev photos' captions (:func:`corpus_for_pretraining`), less any
    caption of a COCO-mini photo (by COCO id) or with a COCO-mini caption's words."""
    caps = corpus_for_pretraining(data)
    _, imgs = load_text_corpus(data / "captions" / "corpus.tsv.gz")
    ids, texts = coco_mini_exclusions(data)
    bad_ids = {c for c, im in zip(*load_text_corpus(data / "captions" / "corpus.tsv.gz")) if im.isdigit() and str(int(im)) in ids}
    out = [c for c in caps if c not in bad_ids and " ".join(tokenize(c)) not in texts]
    print(f"corpus: {len(caps)} captions less Flickr8k dev; {len(caps) - len(out)} more dropped for COCO-mini")
    return out


def corpus_arrays(data: Path, out: Path, min_count: int = 5):
    """Vocabulary + (M, MAX_LEN + 2) tokens of the corpus, cached in ``out`` (npz)."""
    if out.is_file():
        f = np.load(out)
        return [str(w) for w in f["vocab"]], f["tokens"]
    caps = training_corpus(data)
    train = load_coco_captions(data / "flickr8k" / "captions_train.json")
    vocab = build_vocab(caps + list(train.captions), min_count)
    tokens = encode_captions(caps, vocab, MAX_LEN)
    np.savez(out, vocab=np.array(vocab), tokens=tokens)
    return vocab, tokens
