"""Galleries for the concept-channel evaluation, embedded once through the product's own
encoder (the ONNX export of the ``fast`` preset, as ``retr index`` runs it) and cached.

Per gallery (``flickr8k-dev``: the 1,000 dev photos; ``coco-mini``: the 239 out-of-domain photos;
``flickr8k-holdout``: the 487 train photos held out from training the shipped alignment heads,
for fitting fusion weights and the calibration) the cache holds: photo embeddings (N, D), ImageNet
posteriors (N, 1000), the generated caption of each photo and its aligned embedding, and the human
captions with their aligned embeddings (for Recall@K).

Usage: python scripts/eval/concept_data.py [GALLERY ...]   (writes $RETR_EVAL_CACHE, default /tmp/retr-eval)
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("RETR_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
CACHE = Path(os.environ.get("RETR_EVAL_CACHE", "/tmp/retr-eval"))
ENCODER = os.environ.get("RETR_EVAL_ENCODER", "fast")
GALLERIES = ("flickr8k-dev", "coco-mini", "flickr8k-holdout")


def gallery_files(name: str) -> tuple[Path, Path]:
    """(captions json, image folder) of a gallery."""
    if name == "coco-mini":
        return DATA / "coco_mini" / "captions.json", DATA / "coco_mini" / "images"
    split = "dev" if name == "flickr8k-dev" else "train"
    return DATA / "flickr8k" / f"captions_{split}.json", DATA / "flickr8k" / "images"


def holdout_photos(n_photos: int, holdout: float = 0.08, seed: int = 0) -> np.ndarray:
    """The photo indices the shipped alignment heads held out (retrieval.training.align's split, seed 0)."""
    perm = np.random.default_rng(seed).permutation(np.arange(n_photos))
    return np.sort(perm[: max(2, int(round(n_photos * holdout)))])


def load_gallery(name: str) -> dict:
    """The cached arrays of ``name`` (built on first use): file_names, captions (list of 5-ish per photo),
    emb, probs, gen (generated captions), gen_emb, cap_emb, cap_photo."""
    path = CACHE / f"{name}-{ENCODER}.npz"
    if not path.is_file():
        build(name)
    z = np.load(path, allow_pickle=True)
    return {k: z[k] for k in z.files}


def build(name: str) -> None:
    from retrieval.captioning.model import INDEX_BEAM, load_captioner
    from retrieval.io.coco import load_coco_captions
    from retrieval.io.decode import load_image
    from retrieval.encoders.base import load_encoder
    from retrieval.encoders.onnx_runtime import OnnxImageEncoder, OnnxTextEncoder, export_dir

    cap_file, img_dir = gallery_files(name)
    corpus = load_coco_captions(cap_file)
    keep = np.arange(len(corpus.file_names))
    if name == "flickr8k-holdout":
        keep = holdout_photos(len(np.unique(corpus.caption_photo)))
    enc = load_encoder(ENCODER)
    enc.export_fast_path()
    d = export_dir(enc.id)
    ie, te = OnnxImageEncoder(d, threads=2), OnnxTextEncoder(d)
    files = [corpus.file_names[i] for i in keep]
    embs, probs = [], []
    for b in range(0, len(files), 64):
        ims = [load_image(img_dir / f, draft_size=(320, 320)) for f in files[b : b + 64]]
        e, p = ie.encode_images_and_concepts(ims)
        embs.append(e)
        probs.append(p)
        print(f"{name}: {b + len(ims)}/{len(files)}", file=sys.stderr, flush=True)
    emb, prob = np.concatenate(embs), np.concatenate(probs)
    cap = load_captioner(None, enc.id, pooled=True)
    gen = [c for b in range(0, len(emb), 512) for c in cap.beam_search_batch(emb[b : b + 512], INDEX_BEAM)]
    pos = {int(p): k for k, p in enumerate(keep)}
    pairs = [(c, pos[int(p)]) for c, p in zip(corpus.captions, corpus.caption_photo) if int(p) in pos]
    captions = [[] for _ in keep]
    for c, k in pairs:
        captions[k].append(c)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE / f"{name}-{ENCODER}.npz", file_names=np.array(files), emb=emb, probs=prob.astype(np.float16),
             gen=np.array(gen), gen_emb=te.encode_texts(gen), cap_emb=te.encode_texts([c for c, _ in pairs]),
             cap_photo=np.array([k for _, k in pairs]), captions=np.array(json.dumps(captions)),
             encoder_id=np.array(enc.id))


if __name__ == "__main__":
    for g in sys.argv[1:] or GALLERIES:
        build(g)
