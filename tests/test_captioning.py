"""Captioner: metrics on hand-made examples, re-ranking, and training on a user's corpus."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEMO, DEMO_CAPTIONS, run_retr


def test_bleu_matches_hand_computed_values():
    from retrieval.caption_metrics import caption_scores

    # hyp "a dog runs on grass" vs ref "a dog runs in the grass":
    # unigram precision 4/5, bigram 2/4 ("a dog", "dog runs"); hyp length 5 < ref 6: BP = exp(1 - 6/5)
    s = caption_scores({1: ["a dog runs in the grass"]}, {1: "a dog runs on grass"}, meteor=False)
    bp = np.exp(1 - 6 / 5)
    assert s["BLEU-1"] == pytest.approx(100 * bp * 4 / 5, abs=0.01)
    assert s["BLEU-2"] == pytest.approx(100 * bp * np.sqrt(4 / 5 * 2 / 4), abs=0.01)


def test_cider_prefers_the_right_caption():
    from retrieval.caption_metrics import caption_scores

    refs = {1: ["a dog runs on the grass", "a brown dog running in a field"],
            2: ["a man rides a bike down a street", "a cyclist on a city road"]}
    good = caption_scores(refs, {1: "a dog running on the grass", 2: "a man riding a bike on a street"}, meteor=False)
    swapped = caption_scores(refs, {1: "a man riding a bike on a street", 2: "a dog running on the grass"},
                             meteor=False)
    assert good["CIDEr"] > 100 > swapped["CIDEr"] + 50


def test_diversity_of_identical_and_distinct_samples():
    from retrieval.caption_metrics import diversity

    same = diversity({1: ["a brown dog runs on the grass"] * 3})
    assert same["Div-1"] == pytest.approx(1 / 3) and same["mBLEU-4"] == pytest.approx(1.0, abs=1e-3)
    distinct = diversity({1: ["a dog runs fast", "two cats sleep inside", "people walk on streets"]})
    assert distinct["Div-1"] == pytest.approx(1.0) and distinct["Div-2"] == pytest.approx(1.0)
    assert distinct["mBLEU-4"] < 0.01


def test_rerank_orders():
    from retrieval.captioner import rerank

    t = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    assert rerank(["a", "b", "c"], t, method="consensus")[0] == 1  # the middle one agrees with both
    assert rerank(["a", "b", "c"], t, np.array([0, 1], np.float32), "alignment") == [2, 1, 0]
    with pytest.raises(ValueError):
        rerank(["a"], t[:1], method="nope")


def test_train_captioner_on_demo_corpus(tmp_path):
    out = tmp_path / "cap.pt"
    p = run_retr("train-captioner", DEMO_CAPTIONS, "--images", DEMO, "--out", out, "--epochs", "40",
                 "--min-count", "1", check=0)
    assert out.exists() and "vocabulary" in p.stdout
    caps = json.loads(run_retr("caption", DEMO / "cat.jpg", "--captioner", out, "--samples", "3", "--json",
                               "--seed", "0", check=0).stdout)["captions"]
    vocab = {w for c in json.loads(DEMO_CAPTIONS.read_text())["annotations"] for w in c["caption"].lower().split()}
    words = {w.strip(".").lower() for c in caps for w in c.split()}
    assert len(caps) == 3 and words and len(words & vocab) / len(words) > 0.8  # speaks the corpus's words
