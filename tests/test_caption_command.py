"""``retr caption`` with an attention captioner: the photo's spatial maps, concepts and detected objects
reach the decoder (one image-model run), --samples draws distinct captions, options it cannot honour
are refused in one line. A tiny untrained checkpoint for the shipped encoder: fast."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import DEMO, run_retr

WORDS = ["dog", "horse", "horses", "runs", "man", "stands", "in", "the", "grass", "field", "brown", "two"]


@pytest.fixture(scope="module")
def attend_ckpt(tmp_path_factory, encoder):
    from retrieval.captioning.attend import AttendCVAE
    from retrieval.captioning.attend_captioner import save_attend_captioner
    from retrieval.captioning.vocab import SPECIALS

    encoder.export_fast_path()
    torch.manual_seed(0)
    net = AttendCVAE(len(SPECIALS) + len(WORDS), cond_dim=encoder.dim, region_dim=1280, z_dim=4, emb=16,
                     hidden=24, att=16, dropout=0.0)
    with torch.no_grad():  # untrained: make it say some words before it ends
        net.out_bias[:len(SPECIALS)] = -20.0
    return save_attend_captioner(net, SPECIALS + WORDS, tmp_path_factory.mktemp("att") / "attend.pt", encoder.id, 8)


def test_photo_inputs_are_one_image_run_and_the_detector(encoder):
    from retrieval.app.describe import ObjectSource, photo_inputs
    from retrieval.detection import yolo
    from retrieval.io.decode import load_image

    im = load_image(DEMO / "horses.jpg")
    x = photo_inputs(encoder, im, True, ObjectSource(threads=1))
    assert x.regions.shape == (49, 1280) and x.emb.shape == (encoder.dim,) and abs(x.post.sum() - 1) < 1e-3
    np.testing.assert_allclose(x.emb, encoder.encode_images([im])[0], atol=1e-5)
    if yolo.available():
        assert 17 in [c for c, _ in x.objects], x.objects  # COCO class 17: horse
    off = photo_inputs(encoder, im, False, None)
    assert off.post is None and off.objects is None


def test_caption_command_with_an_attention_captioner(attend_ckpt):
    one = run_retr("caption", DEMO / "horses.jpg", "--captioner", attend_ckpt, check=0)
    words = one.stdout.strip().rstrip(".").lower().split()
    assert words and set(words) <= set(WORDS), one.stdout
    many = run_retr("caption", DEMO / "horses.jpg", DEMO / "cat.jpg", "--captioner", attend_ckpt, "--samples", "4",
                    "--seed", "1", "--json", check=0)
    rows = [json.loads(line) for line in many.stdout.splitlines()]
    assert [len(r["captions"]) for r in rows] == [4, 4]
    assert len(set(rows[0]["captions"])) > 1
    bad = run_retr("caption", DEMO / "horses.jpg", "--captioner", attend_ckpt, "--rerank", "mbr")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--samples" in bad.stderr


class RecordingAttend:
    """A stand-in attention captioner recording what index time hands it."""

    needs_regions = True

    def __init__(self):
        self.calls = []

    def caption_embeddings(self, embs, beam, concepts=None, regions=None, objects=None):
        self.calls.append((embs.shape, None if regions is None else regions.shape, concepts.shape, objects))
        return [f"photo {i}" for i in range(len(embs))]


def test_index_time_captions_read_regions_and_stored_objects(encoder, photo_dir, tmp_path):
    """Indexing with an attention captioner: every photo's caption is made from its spatial maps (the
    files decoded again) and the objects the detector pass stored; a file gone meanwhile is captioned
    from the stored data alone."""
    from retrieval.indexing.indexer import index_folder
    from retrieval.indexing.region_captions import index_captions
    from retrieval.store.database import DetectedObjects, Photo, Store

    cap = RecordingAttend()
    rep = index_folder(photo_dir, tmp_path / "idx", encoder=encoder, captioner=cap)
    assert rep.failed == 0 and rep.generated == rep.added == 4
    assert [(c[1], c[3]) for c in cap.calls] == [((4, 49, 1280), [[], [], [], []])]
    store = Store(tmp_path / "idx")
    with store.session() as s:
        ids, paths = zip(*s.query(Photo.id, Photo.path).order_by(Photo.id).all())
        s.add(DetectedObjects(photo_id=ids[0], classes=np.array([17], np.int16).tobytes(),
                              scores=np.array([0.75], np.float16).tobytes(), counts=np.array([2], np.uint8).tobytes()))
        s.commit()
    (photo_dir / paths[1].rsplit("/", 1)[-1]).unlink()
    cap.calls.clear()
    vecs, post = np.ones((2, encoder.dim), np.float32), np.zeros((2, 1000), np.float32)
    assert index_captions(cap, encoder, store, [ids[0], ids[1]], vecs, post, 3) == ["photo 0", "photo 0"]
    assert cap.calls == [((1, encoder.dim), (1, 49, 1280), (1, 1000), [[(17, 0.75)]]),
                         ((1, encoder.dim), None, (1, 1000), [[]])]
    store.close()
