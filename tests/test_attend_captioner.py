"""The attention captioner: network, decoding, concept words, checkpoints (old ones keep loading),
resumable training. Tiny networks: fast."""
import numpy as np
import pytest
import torch

from retrieval.captioning.attend import AttendCVAE
from retrieval.captioning.attend_captioner import AttendCaptioner, save_attend_captioner
from retrieval.captioning.concept_input import canonical_table, detector_word, photo_concepts
from retrieval.captioning.model import CaptionCVAE, Captioner, load_captioner
from retrieval.captioning.vocab import SPECIALS
from retrieval.errors import CaptionerError
from retrieval.training.attend_captioner import AttendConfig, TextData, fit, own_concepts
from retrieval.training.captioner import encode_captions, save_captioner

WORDS = ["a", "dog", "giraffe", "runs", "man", "stands", "in", "the", "grass", "clock", "person", "horse", "horses"]
VOCAB = SPECIALS + WORDS


def tiny(region_dim=16):
    torch.manual_seed(0)
    return AttendCVAE(len(VOCAB), cond_dim=8, region_dim=region_dim, z_dim=4, emb=16, hidden=24, att=16, dropout=0.0)


def test_detector_words_and_canonical_concepts():
    canon, det = canonical_table(tuple(VOCAB))
    idx = {w: i for i, w in enumerate(VOCAB)}
    assert detector_word(0) == "person" and det[0] == idx["person"]
    assert canon[idx["man"]] == idx["person"]  # a caption's "man" is the detector's person
    assert canon[idx["horses"]] == idx["horse"]
    assert canon[idx["runs"]] == -1


def test_photo_concepts_floor_and_order():
    giraffe = 23  # COCO class index of giraffe
    ids, conf = photo_concepts(None, [[(giraffe, 0.9), (0, 0.1)]], VOCAB, k=3, floor=0.25)
    assert [VOCAB[i] for i in ids[0][conf[0] > 0]] == ["giraffe"]  # person at 0.1 is under the floor
    ids, conf = photo_concepts(None, None, VOCAB, k=3, n=2)
    assert ids.shape == (2, 3) and not conf.any()


def test_copy_gate_can_say_a_concept_word(tmp_path):
    """With a concept and the copy gate open, the concept word gets the copied mass."""
    net = tiny().eval()
    with torch.no_grad():
        net.copy_gate.bias.fill_(-20.0)  # p_gen ~ 0: copy only
    cap = AttendCaptioner(save_attend_captioner(net, VOCAB, tmp_path / "a.pt", "enc", 5), None)
    out = cap.caption_batch(np.ones((1, 8), np.float32) / 8 ** 0.5, None, None, [[(23, 0.9)]], beam=2)
    assert "giraffe" in out[0].lower()


def test_beam_and_samples_from_a_checkpoint(tmp_path):
    net = tiny()
    path = save_attend_captioner(net, VOCAB, tmp_path / "a.pt", "enc-x", 6, card={"x": 1}, copy_shift=3.0)
    cap = load_captioner(path)
    assert isinstance(cap, AttendCaptioner) and cap.encoder_id == "enc-x" and cap.net.copy_shift == 3.0
    c = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    regions = np.random.default_rng(1).random((3, 5, 16)).astype(np.float32)
    caps = cap.caption_batch(c, regions, None, [[], [(16, 0.8)], []], beam=3)
    assert len(caps) == 3 and all(isinstance(s, str) for s in caps)
    assert caps[1] == cap.caption_batch(c[1:2], regions[1:2], None, [[(16, 0.8)]], beam=3)[0]
    samples = cap.sample(c[0], n=5, seed=0, regions=regions[0], objects=[])
    assert len(set(samples)) > 1  # the latent and nucleus sampling give distinct captions
    assert cap.caption(c[1], 3, regions=regions[1], objects=[(16, 0.8)]) == caps[1] and cap.needs_regions
    with pytest.raises(ValueError):
        cap.caption_batch(c, regions[:, :, :4])


def test_old_pooled_checkpoint_still_loads(tmp_path):
    torch.manual_seed(0)
    old = CaptionCVAE(len(VOCAB), cond_dim=8, z_dim=4, emb=8, hidden=8)
    path = save_captioner(old, VOCAB, tmp_path / "old.pt", "enc-y", 5)
    cap = load_captioner(path)
    assert isinstance(cap, Captioner) and cap.encoder_id == "enc-y"
    assert isinstance(cap.beam_search(np.ones(8, np.float32) / 8 ** 0.5), str)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CaptionerError, match="bad.pt"):
        load_captioner(bad)


def test_own_concepts_and_resumable_training(tmp_path):
    tokens = encode_captions(["a man stands in the grass", "a dog runs", "a giraffe stands"] * 20, VOCAB, 8)
    ids, conf = own_concepts(tokens[:3], VOCAB, np.random.default_rng(0), drop=0.0, distractor_p=0.0)
    assert VOCAB[ids[0][0]] == "person" and VOCAB[ids[2][0]] == "giraffe" and conf[0][0] >= 0.3
    cfg = AttendConfig(steps=4, batch=8, save_every_s=0.0)
    ckpt = tmp_path / "run.ckpt"
    net = fit(tiny(), cfg, ckpt, TextData(tokens, VOCAB), log=lambda s: None)
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    cfg.steps = 6  # a longer run started again goes on from step 4
    logs = []
    fit(tiny(), cfg, ckpt, TextData(tokens, VOCAB), log=logs.append)
    assert logs[0].startswith("resumed") and torch.load(ckpt, weights_only=False)["step"] == 6
    assert not net.training

