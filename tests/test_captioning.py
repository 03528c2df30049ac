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


def test_load_text_corpus_formats_and_dropping_photos(tmp_path):
    import gzip

    from retrieval.training.captioner import drop_photos, flickr_photo_id, load_text_corpus

    (tmp_path / "c.txt").write_text("A dog runs.\n\n  Two cats sleep.  \n")
    assert load_text_corpus(tmp_path / "c.txt") == (["A dog runs.", "Two cats sleep."], ["", ""])
    tsv = "source\timage\tcaption\nflickr30k\t1000268201.jpg\tA girl climbs stairs.\ncoco\t179765\tA red bus.\n"
    (tmp_path / "c.tsv").write_text(tsv)
    (tmp_path / "c.tsv.gz").write_bytes(gzip.compress(tsv.encode()))
    for name in ("c.tsv", "c.tsv.gz"):
        caps, imgs = load_text_corpus(tmp_path / name)
        assert caps == ["A girl climbs stairs.", "A red bus."] and imgs == ["1000268201.jpg", "179765"]
    # a Flickr8k dev photo's captions are dropped whichever data set names it
    assert flickr_photo_id("1000268201_693b08cb0e.jpg") == flickr_photo_id("1000268201.jpg") == "1000268201"
    assert drop_photos(caps, ["1000268201.jpg", ""], {"1000268201"}) == ["A red bus."]
    (tmp_path / "bad.tsv").write_text("source\ttext\nx\ty\n")
    with pytest.raises(ValueError, match="caption"):
        load_text_corpus(tmp_path / "bad.tsv")


def test_text_only_training_decodes_from_a_nearby_embedding(tmp_path):
    """CapDec: trained on noisy text embeddings alone, the decoder must describe a point
    near (not at) a caption's embedding, as a photo's embedding is."""
    import torch

    from retrieval.captioner import Captioner, tokenize
    from retrieval.training.captioner import CaptionerConfig, save_captioner, train_captioner

    caps = ["a dog runs on the grass", "two children play in the snow", "a man rides a red bike",
            "a woman swims in the sea", "a black cat sleeps on a sofa", "people walk down a busy street"]
    rng = np.random.default_rng(0)
    t = rng.normal(size=(len(caps), 32)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    torch.set_num_threads(1)
    cfg = CaptionerConfig(min_count=1, z_dim=4, emb=32, hidden=64, dropout=0.0, lr=1e-2, max_epochs=150,
                          anneal_epochs=20, free_bits=0.0, noise_std=0.05)
    net, vocab, info = train_captioner(None, t, caps, cfg=cfg)
    assert info["text_only"]
    cap = Captioner(save_captioner(net, vocab, tmp_path / "c.pt", "test@1", cfg.max_len))
    near = t + 0.03 * rng.normal(size=t.shape).astype(np.float32)  # a "photo" near each caption
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    got = [tokenize(cap.beam_search(e)) for e in near]
    assert sum(g == tokenize(c) for g, c in zip(got, caps)) >= 5, got


def test_train_captioner_with_text_corpus(tmp_path):
    import gzip

    import torch

    corpus = tmp_path / "corpus.tsv.gz"
    lines = ["source\timage\tcaption"] + [f"x\t{i}.jpg\tA zeppelin floats above a green field number {i % 3}."
                                          for i in range(30)]
    corpus.write_bytes(gzip.compress("\n".join(lines).encode()))
    out = tmp_path / "cap.pt"
    p = run_retr("train-captioner", DEMO_CAPTIONS, "--images", DEMO, "--out", out, "--epochs", "3",
                 "--corpus", corpus, "--corpus-epochs", "3", "--min-count", "1", check=0)
    assert "text-only stage on 30 captions" in p.stdout
    ck = torch.load(out, weights_only=True)
    assert "zeppelin" in ck["vocab"] and "astronaut" in ck["vocab"]  # both sources' words
    assert ck["config"]["card"]["train_info"]["pretrain"]["text_only"] is True
    bad = run_retr("train-captioner", DEMO_CAPTIONS, "--images", DEMO, "--corpus", tmp_path / "nope.txt",
                   "--out", tmp_path / "x.pt")
    assert bad.returncode != 0 and "nope.txt" in bad.stderr
