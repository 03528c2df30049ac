"""Bring your own model: `--encoder hf:FOLDER` with a tiny randomly initialised CLIP, offline, through the real CLI."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import DEMO, DEMO_CAPTIONS, run_retr

pytest.importorskip("transformers")

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode table (a byte-level BPE's base alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_tiny_clip(folder, seed: int = 0):
    """Write a tiny random CLIP checkpoint (model, tokenizer, image processor) with
    save_pretrained; nothing is downloaded. The tokenizer is a byte-level BPE with no
    merges (every byte a token), written from a vocab we make here."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok_dir = folder.parent / (folder.name + "-tokfiles")
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    ip = ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(folder)
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for k, v in OFFLINE.items():
            mp.setenv(k, v)
        return build_tiny_clip(tmp_path_factory.mktemp("hf") / "tiny-clip")


@pytest.fixture(scope="module")
def hf_index(tiny_clip, tmp_path_factory):
    idx = tmp_path_factory.mktemp("hf_index") / "index"
    p = run_retr("index", DEMO, "--index", idx, "--encoder", f"hf:{tiny_clip}", "--no-captions", env=OFFLINE, check=0)
    assert "added 11" in p.stdout
    return idx


def test_encoder_api(tiny_clip, monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    from PIL import Image

    from retrieval.encoders.base import Encoder, load_encoder

    enc = load_encoder(f"hf:{tiny_clip}")
    assert isinstance(enc, Encoder)
    assert enc.name == "hf:tiny-clip" and enc.dim == 16 and len(enc.version) == 12
    assert enc.spec == f"hf:{tiny_clip.resolve()}" and enc.id == f"{enc.name}@{enc.version}"
    t = enc.encode_texts(["a cat", "", "a very long caption " * 200])  # longer than 32 tokens: truncated
    assert t.shape == (3, 16) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    ims = [Image.new("RGB", (40 + 7 * i, 30), (20 * i, 100, 200)) for i in range(5)] + [Image.new("L", (9, 50))]
    enc.batch_size = 4  # two batches
    v = enc.encode_images(ims)
    assert v.shape == (6, 16) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(v[:1], enc.encode_images(ims[:1]), atol=1e-5)
    assert enc.encode_images([]).shape == (0, 16) and enc.encode_texts([]).shape == (0, 16)


def test_changed_checkpoint_is_another_encoder(tiny_clip, tmp_path, monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    from retrieval.encoders.hf import folder_digest

    other = tmp_path / "tiny-clip"
    shutil.copytree(tiny_clip, other)
    assert folder_digest(other) == folder_digest(tiny_clip)
    w = other / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert folder_digest(other) != folder_digest(tiny_clip)


def test_bad_specs(tmp_path):
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError

    with pytest.raises(EncoderError, match="not found") as e:
        load_encoder("hf:/nonexistent")
    assert "\n" not in str(e.value)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (bert / "model.safetensors").write_bytes(b"")
    with pytest.raises(EncoderError, match="not a CLIP or SigLIP") as e:
        load_encoder(f"hf:{bert}")
    assert "\n" not in str(e.value)
    p = run_retr("index", DEMO, "--index", tmp_path / "ix", "--encoder", "hf:/nonexistent", env=OFFLINE)
    assert p.returncode != 0 and "not found" in p.stderr and "Traceback" not in p.stderr


def test_text_search_remembers_encoder(hf_index):
    p = run_retr("search", "a cat", "--index", hf_index, "--json", env=OFFLINE, check=0)
    hits = json.loads(p.stdout)
    assert len(hits) == 10
    assert all(-1.0001 <= h["score"] <= 1.0001 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_image_search(hf_index):
    p = run_retr("search", DEMO / "cat.jpg", "--index", hf_index, "--json", env=OFFLINE, check=0)
    hits = json.loads(p.stdout)
    assert os.path.basename(hits[0]["path"]) == "cat.jpg"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_reindex_with_builtin_encoder_needs_rebuild(hf_index):
    p = run_retr("index", DEMO, "--index", hf_index, "--no-captions", "--encoder", "fast")
    assert p.returncode != 0
    msg = p.stderr.strip()
    assert "--rebuild" in msg and len(msg.splitlines()) == 1, msg


def test_eval(tiny_clip):
    p = run_retr("eval", DEMO_CAPTIONS, "--images", DEMO, "--encoder", f"hf:{tiny_clip}", "--json", env=OFFLINE, check=0)
    res = json.loads(p.stdout)
    assert res["photos"] == 11 and res["captions"] == 22 and res["encoder"].startswith("hf:tiny-clip@")
    for d in ("t2i", "i2t"):
        for v in res["recall"][d].values():
            assert 0 <= v <= 100
    p = run_retr("eval", DEMO_CAPTIONS, "--images", DEMO, "--encoder", f"hf:{tiny_clip}", "--folds", "2", env=OFFLINE)
    assert p.returncode != 0 and "needs a retr encoder" in p.stderr
