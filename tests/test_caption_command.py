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
    bad = run_retr("caption", DEMO / "horses.jpg", "--captioner", attend_ckpt, "--lp-form", "gnmt")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--length-penalty" in bad.stderr


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


#: demo photos whose subjects Flickr8k's captions seldom or never name, and the words that name them
OUTSIDE_FLICKR8K = {"giraffe_zebra.jpg": {"giraffe", "giraffes", "zebra", "zebras"},
                    "cat.jpg": {"cat", "cats", "kitten"}, "eagle.jpg": {"bird", "birds", "eagle"}}
#: how a fluent caption starts (an untrained decoder pastes concept words instead: "Giraffe assemble zebra ...")
OPENINGS = {"a", "an", "the", "two", "three", "four", "several", "some", "many"}


def test_the_shipped_captioner_names_what_the_concepts_see_and_samples_differ(encoder):
    """The default captioner (the shipped attention captioner) says "giraffe", "cat" and "bird" in
    sentences on the demo photos whose concepts name them (the earlier pooled captioner said dogs and
    a boy), and its samples of one photo are distinct."""
    from retrieval.app.describe import ObjectSource, attend_captions, photo_inputs
    from retrieval.captioning.model import load_captioner
    from retrieval.captioning.vocab import tokenize
    from retrieval.io.decode import load_image

    cap = load_captioner(None, encoder.id, encoder=encoder)
    assert cap.needs_regions and cap.path.name == "captioner-attend-fast.pt"
    objects = ObjectSource(threads=1)
    for photo, words in OUTSIDE_FLICKR8K.items():
        x = photo_inputs(encoder, load_image(DEMO / photo), True, objects)
        said = tokenize(attend_captions(cap, x)[0])
        assert words & set(said) and said[0] in OPENINGS and len(said) <= 16, (photo, said)
        samples = attend_captions(cap, x, samples=5, seed=0)
        assert len(set(samples)) >= 4, samples
    cli = run_retr("caption", DEMO / "cat.jpg", check=0).stdout.lower()
    assert "cat" in cli and "boy" not in cli, cli


def test_index_refuses_a_captioner_made_for_another_encoder(encoder, photo_dir, tmp_path):
    """A captioner reads one encoder's embeddings and maps: handed another's, indexing stops before any
    work, in one line saying how to get the right one."""
    from retrieval.errors import IndexingError
    from retrieval.indexing.indexer import index_folder

    cap = RecordingAttend()
    cap.encoder_id = "retr-other@000000000000"
    with pytest.raises(IndexingError, match="load_captioner"):
        index_folder(photo_dir, tmp_path / "idx", encoder=encoder, captioner=cap)
    assert cap.calls == [] and not (tmp_path / "idx" / "retr.sqlite").exists()


def test_index_time_captions_decode_a_chunk_of_photos_at_a_time(encoder, photo_dir, tmp_path, monkeypatch):
    """The caption pass holds a chunk's images and spatial maps at a time, not a whole caption batch's
    (512 photos' decoded images and maps were 0.9 GB more peak memory)."""
    from retrieval.indexing import region_captions
    from retrieval.indexing.indexer import index_folder

    monkeypatch.setattr(region_captions, "REGION_CHUNK", 3)
    cap = RecordingAttend()
    assert index_folder(photo_dir, tmp_path / "idx", encoder=encoder, captioner=cap).generated == 4
    assert [c[1] for c in cap.calls] == [(3, 49, 1280), (1, 49, 1280)]
