"""The encoder presets: `--encoder best` indexes and searches end to end through the real CLI."""
from __future__ import annotations

import json

from conftest import DEMO, DEMO_CAPTIONS, run_retr


def test_best_preset_index_search_and_remembered(tmp_path):
    from retrieval.io.coco import load_coco_captions

    idx = tmp_path / "idx"
    p = run_retr("index", DEMO, "--index", idx, "--encoder", "best", check=0)
    assert "added 11" in p.stdout
    corpus = load_coco_captions(DEMO_CAPTIONS)
    found = 0
    for cap, photo in zip(corpus.captions, corpus.caption_photo):
        # search needs no --encoder: the index remembers the preset
        hits = json.loads(run_retr("search", cap, "--index", idx, "--json", "-k", "5", "--as-text", check=0).stdout)
        found += any(h["path"].endswith(corpus.file_names[photo]) for h in hits)
    assert found >= 0.9 * len(corpus.captions), (found, len(corpus.captions))
    # the index refuses another encoder without --rebuild
    p = run_retr("index", DEMO, "--index", idx, "--encoder", "fast", "--no-captions")
    assert p.returncode == 1 and "--rebuild" in p.stderr


def test_presets_are_distinct_encoders():
    from retrieval.encoders.base import load_encoder

    fast, best = load_encoder("fast"), load_encoder("best")
    assert fast.id == load_encoder().id and fast.id != best.id
    assert best.backbone_name == "efficientnet-lite0+efficientnet-lite2+mobilenet-v2" and best.dim == fast.dim == 512


def test_later_runs_and_rebuild_keep_the_recorded_encoder(tmp_path, photo_dir):
    from retrieval.search import Index

    idx = tmp_path / "idx"
    run_retr("index", photo_dir, "--index", idx, "--encoder", "best", "--no-captions", check=0)
    (photo_dir / "cat.jpg").unlink()
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)  # no --encoder: the recorded one
    assert "removed 1" in p.stdout
    run_retr("index", photo_dir, "--index", idx, "--no-captions", "--rebuild", check=0)
    reader = Index(idx).reader
    assert reader.get_meta("encoder_spec") == "best" and reader.count("photos") == 3


def test_best_preset_captions_through_its_lite0_part():
    """The ``best`` preset's maps begin with EfficientNet-Lite0's 49 regions: the shipped attention
    captioner reads them, with the ``fast`` embedding made from their mean (cosine > 0.99 with what
    ``fast`` itself gives), and names the giraffe."""
    from retrieval.app.describe import ObjectSource, attend_captions, photo_inputs
    from retrieval.captioning.first_backbone import FirstBackboneCaptioner
    from retrieval.captioning.model import load_captioner
    from retrieval.encoders.base import load_encoder
    from retrieval.io.decode import load_image

    best, fast = load_encoder("best"), load_encoder("fast")
    cap = load_captioner(None, best.id, encoder=best)
    assert isinstance(cap, FirstBackboneCaptioner) and cap.encoder_id == best.id
    assert load_captioner(None, best.id).encoder_id == best.id  # without the encoder: the pooled one
    im = load_image(DEMO / "horses.jpg")
    emb, _, maps = best.encode_images_concepts_and_regions([im])
    c, own = cap.inputs(emb, maps)
    assert own.shape == (1, 49, 1280) and maps.shape[1] == sum(best.region_counts) > 49
    assert float(c[0] @ fast.encode_images([im])[0]) > 0.99
    giraffe = photo_inputs(best, load_image(DEMO / "giraffe_zebra.jpg"), True, ObjectSource(threads=1))
    said = attend_captions(cap, giraffe)[0].lower()
    assert "giraffe" in said and said.split()[0] in ("a", "an", "two", "the"), said
