"""Captioner: metrics on hand-made examples, re-ranking, and training on a user's corpus."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEMO, DEMO_CAPTIONS, ROOT, run_retr

#: the shipped pooled captioner (the default is the attention captioner): its decoding options are checked here
POOLED = ROOT / "retrieval" / "weights" / "captioner-default.pt"


def test_bleu_matches_hand_computed_values():
    from retrieval.training.caption_metrics import caption_scores

    # hyp "a dog runs on grass" vs ref "a dog runs in the grass":
    # unigram precision 4/5, bigram 2/4 ("a dog", "dog runs"); hyp length 5 < ref 6: BP = exp(1 - 6/5)
    s = caption_scores({1: ["a dog runs in the grass"]}, {1: "a dog runs on grass"}, meteor=False)
    bp = np.exp(1 - 6 / 5)
    assert s["BLEU-1"] == pytest.approx(100 * bp * 4 / 5, abs=0.01)
    assert s["BLEU-2"] == pytest.approx(100 * bp * np.sqrt(4 / 5 * 2 / 4), abs=0.01)


def test_cider_prefers_the_right_caption():
    from retrieval.training.caption_metrics import caption_scores

    refs = {1: ["a dog runs on the grass", "a brown dog running in a field"],
            2: ["a man rides a bike down a street", "a cyclist on a city road"]}
    good = caption_scores(refs, {1: "a dog running on the grass", 2: "a man riding a bike on a street"}, meteor=False)
    swapped = caption_scores(refs, {1: "a man riding a bike on a street", 2: "a dog running on the grass"},
                             meteor=False)
    assert good["CIDEr"] > 100 > swapped["CIDEr"] + 50


def test_diversity_of_identical_and_distinct_samples():
    from retrieval.training.caption_metrics import diversity

    same = diversity({1: ["a brown dog runs on the grass"] * 3})
    assert same["Div-1"] == pytest.approx(1 / 3) and same["mBLEU-4"] == pytest.approx(1.0, abs=1e-3)
    distinct = diversity({1: ["a dog runs fast", "two cats sleep inside", "people walk on streets"]})
    assert distinct["Div-1"] == pytest.approx(1.0) and distinct["Div-2"] == pytest.approx(1.0)
    assert distinct["mBLEU-4"] < 0.01


def test_rerank_orders():
    from retrieval.captioning.rerank import rerank

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

    from retrieval.captioning.model import Captioner

    from retrieval.captioning.vocab import tokenize
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


def test_length_penalty_changes_the_choice():
    from retrieval.captioning.decoding import length_normalise

    short, long = (-3.0, 3), (-4.0, 8)  # (summed log-probability, tokens incl. <eos>)
    # no penalty: the short caption has the higher raw log-probability
    assert length_normalise(*short, 0.0) > length_normalise(*long, 0.0)
    assert length_normalise(*short, 0.0, "gnmt") == -3.0
    # power 0.7: -3 / 3^0.7 = -1.389 < -4 / 8^0.7 = -0.933; GNMT 1.0: -3 / (8/6) = -2.25 < -4 / (13/6) = -1.846
    assert length_normalise(*short, 0.7) == pytest.approx(-3 / 3 ** 0.7)
    assert length_normalise(*long, 1.0, "gnmt") == pytest.approx(-4 / (13 / 6))
    for form, a in (("power", 0.7), ("gnmt", 1.0)):
        assert length_normalise(*long, a, form) > length_normalise(*short, a, form)
    with pytest.raises(ValueError):
        length_normalise(-1.0, 2, 1.0, "nope")


def test_mbr_picks_the_candidate_the_others_agree_with():
    from retrieval.captioning.rerank import consensus_cider, document_frequencies

    cands = ["a dog runs on the grass", "a red car parked on a street", "a dog runs in the grass",
             "a dog is running on the grass", "two people sit on a bench"]
    s = consensus_cider(cands)
    assert int(np.argmax(s)) == 0  # shares "a dog runs" with one and "on the grass" with another
    assert max(s[1], s[4]) < s[0] / 2  # the outliers share only "a" and "on" with the others
    assert np.all(consensus_cider(["only one"]) == 0)
    # with document frequencies an n-gram every photo's list has ("a dog") weighs nothing:
    # the choice turns on the rarer words ("runs", "grass"), still candidate 0
    df, n = document_frequencies([cands, ["a dog sits", "a dog sleeps"], ["a dog barks"]])
    assert df[("a", "dog")] == 3 and df[("grass",)] == 1 and n == 3
    assert int(np.argmax(consensus_cider(cands, df, n))) == 0


def test_beam_scores_match_the_likelihood_and_decoding_is_deterministic():
    from retrieval.captioning.decoding import length_normalise
    from retrieval.captioning.model import Captioner
    from retrieval.captioning.vocab import detokenize

    cap = Captioner()
    rng = np.random.default_rng(3)
    c = rng.standard_normal(cap.net.config["cond_dim"]).astype(np.float32)
    c /= np.linalg.norm(c)
    hyps = cap.beam_hypotheses(c, 5)
    sents = [detokenize(cap._words(q)) for q, _ in hyps]
    ll, n = cap.log_likelihood(c, sents)
    assert np.allclose(ll, [s for _, s in hyps], atol=1e-3)  # the beam's scores are the model's log-likelihoods
    assert list(n) == [len(q) + 1 for q, _ in hyps]
    cands = cap.beam_candidates(c, 5, 1.0, "gnmt")
    assert [s for s, _ in cands] == sorted({s for s, _ in cands}, key=lambda s: -dict(cands)[s])
    best = max(zip(sents, ll, n), key=lambda x: length_normalise(x[1], x[2], 1.0, "gnmt"))
    assert cands[0][0] == best[0]
    e = np.stack([c, -c])
    assert cap.caption_embeddings(e) == cap.caption_embeddings(e)  # the default decoding is deterministic


def test_cider_against_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    from retrieval.captioning.rerank import cider_against, document_frequencies

    refs = {0: ["a dog runs on the grass", "a brown dog running in a field"],
            1: ["a man rides a bike down a street", "a cyclist on a city road"],
            2: ["two children play in the snow", "kids playing in snow"]}
    hyps = {0: "a dog running on the grass", 1: "a man riding a bike", 2: "a dog in the snow"}
    _, per = Cider().compute_score({k: v for k, v in refs.items()}, {k: [h] for k, h in hyps.items()})
    df, n = document_frequencies(list(refs.values()))
    mine = [float(cider_against([hyps[k]], refs[k], df, n)[0]) for k in refs]
    assert np.allclose(mine, per, atol=1e-6)


def test_caption_bank_neighbour_reranking(tmp_path):
    from retrieval.captioning.bank import CaptionBank
    from retrieval.captioning.model import Captioner

    cap = Captioner()
    rng = np.random.default_rng(5)
    d = cap.net.config["cond_dim"]
    c = rng.standard_normal(d).astype(np.float32)
    c /= np.linalg.norm(c)
    cands = [s for s, _ in cap.beam_candidates(c, 5)]
    assert len(cands) >= 3
    # bank: photo 0 is the photo itself, described by the beam's *third* candidate; two unrelated photos
    others = rng.standard_normal((2, d)).astype(np.float32)
    emb = np.concatenate([c[None], others / np.linalg.norm(others, axis=1, keepdims=True)])
    caps = [cands[2], "a red car parked on a street", "two children play in the snow"]
    CaptionBank.save(tmp_path / "bank.npz", emb, caps, [0, 1, 2], cap.encoder_id)
    bank = CaptionBank(tmp_path / "bank.npz")
    assert bank.captions == caps and bank.neighbour_captions(c, 1) == [cands[2]]
    assert cap.caption(c, 5, "none") == cands[0]
    with pytest.raises(ValueError, match="bank"):
        cap.caption(c, 5, "neighbours")
    cap.bank = bank
    assert cap.caption(c, 5, "neighbours", neighbours=1) == cands[2]  # the neighbours' caption wins
    assert cap.caption(c, 5) == cands[2]  # "auto" re-ranks when a bank is loaded
    with pytest.raises(ValueError):
        cap.caption(c, 5, "nope")


def test_caption_cli_decoding_options(encoder):
    from retrieval.captioning.model import Captioner
    from retrieval.io.decode import load_image

    p = run_retr("caption", DEMO / "horses.jpg", "--rerank", "nope", check=2)
    assert "--rerank" in p.stderr
    run_retr("caption", DEMO / "horses.jpg", "--best", check=2)
    # the old default decoding stays reachable: beam 3, length penalty power 0.7, no re-ranking
    old = run_retr("caption", DEMO / "horses.jpg", "--captioner", POOLED, "--beam", "3", "--rerank", "none", check=0).stdout.strip()
    embs, posts = encoder.encode_images_and_concepts([load_image(DEMO / "horses.jpg")])
    emb, post = embs[0], posts[0]
    cap = Captioner()
    assert old == cap.beam_search(emb, 3, 0.7, concepts=post)
    raw = run_retr("caption", DEMO / "horses.jpg", "--captioner", POOLED, "--beam", "3", "--rerank", "none", "--lp-form", "gnmt",
                   "--length-penalty", "0", check=0).stdout.strip()
    assert raw == cap.beam_search(emb, 3, 0.0, "gnmt", concepts=post)


def test_a_beam_wider_than_the_cap_is_a_usage_error_naming_the_option():
    """`--beam 100000` used to reach torch.topk (`selected index k out of range`) after loading the
    models; it is refused up front, in one line naming --beam."""
    p = run_retr("caption", DEMO / "cat.jpg", "--beam", "100000")
    assert p.returncode == 2 and "--beam" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not p.stdout.strip()


def test_concept_words_pool_the_classes_that_name_a_word_and_are_spent_once():
    from retrieval.captioning.concept_words import bias_rows, concept_bias, stored_posteriors, word_evidence, word_groups
    from retrieval.concepts.labels import imagenet_classes
    from retrieval.concepts.scoring import top_classes

    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog", "dogs", "cat", "animal", "horse"]
    names = [c.index for c in imagenet_classes() if "dog" in c.hypernyms][:3]
    post = np.zeros((2, 1000), np.float32)
    post[0, names] = 0.2  # three dog breeds: no breed is sure, the word "dog" is
    post[1, 285] = 0.9  # Egyptian cat
    ev = word_evidence(post, vocab)
    assert ev[0, 5] == ev[0, 6] == pytest.approx(0.6) and ev[1, 7] == pytest.approx(0.9)
    assert ev[:, 8].max() == 0  # "animal" is too general to be put in a caption
    bias = concept_bias(post, vocab, weight=5.0, threshold=0.3)
    assert bias[0, 5] == pytest.approx(3.0) and bias[0, 7] == 0 and bias[1, 5] == 0
    groups = word_groups(vocab)
    rows = bias_rows(bias, groups, [0, 0, 1], [[1, 4], [1, 6], [1, 5]]).numpy()
    assert rows[0, 5] > 0 and rows[0, 6] > 0  # not said yet
    assert rows[1, 5] == rows[1, 6] == 0  # "dogs" spends "dog" too
    assert rows[2, 7] > 0  # another photo's concepts are its own
    c, p = top_classes(post[1:])
    assert np.allclose(stored_posteriors(c[0].tobytes(), p[0].astype(np.float16).tobytes())[285], 0.9, atol=1e-3)
    assert stored_posteriors(None, None).sum() == 0


def test_caption_names_the_concept_and_samples_stay_distinct(encoder):
    """The cat and the eagle are outside Flickr8k's usual subjects (people and dogs): without their
    concepts the captioner calls them a boy and a dog."""
    from retrieval.captioning.model import Captioner
    from retrieval.io.decode import load_image

    from retrieval.captioning.concept_words import CONCEPT_WEIGHT

    cap = Captioner()
    cap.concept_weight = CONCEPT_WEIGHT
    for photo, word in (("cat.jpg", "cat"), ("eagle.jpg", "bird")):
        emb, post = encoder.encode_images_and_concepts([load_image(DEMO / photo)])
        assert word not in cap.caption(emb[0], rerank="none").lower()
        plain = Captioner(novel_words=False)  # without concepts: exactly the captions and draws of before
        assert cap.caption(emb[0], rerank="none") == plain.caption(emb[0], rerank="none")
        assert cap.sample(emb[0], 3, seed=1) == plain.sample(emb[0], 3, seed=1)
        assert word in cap.caption(emb[0], rerank="none", concepts=post[0]).lower()
        samples = cap.sample(emb[0], 5, seed=0, concepts=post[0])
        assert len(set(samples)) >= 4
    assert "cat" in run_retr("caption", DEMO / "cat.jpg", "--captioner", POOLED, "--concepts", check=0).stdout.lower()
    assert "cat" not in run_retr("caption", DEMO / "cat.jpg", "--captioner", POOLED, check=0).stdout.lower()  # off by default
