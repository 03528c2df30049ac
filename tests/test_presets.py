"""The encoder presets: `--encoder best` indexes and searches end to end through the real CLI."""
from __future__ import annotations

import json

from conftest import DEMO, DEMO_CAPTIONS, run_retr


def test_best_preset_index_search_and_remembered(tmp_path):
    from retrieval.io.coco import load_coco_captions

    idx = tmp_path / "idx"
    p = run_retr("index", DEMO, "--index", idx, "--encoder", "best", check=0)
    assert "added 11" in p.stdout
    # no captioner ships for the best preset yet: one clear warning, indexing goes on
    # (if one is added, it must be used: then there is no warning)
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
