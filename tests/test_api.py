"""The Python API: retrieval quality on real photos, the store, the encoder guard."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ConstantEncoder, DEMO, DEMO_CAPTIONS


def test_each_demo_caption_finds_its_photo_in_top5(demo_index):
    from retrieval import Index

    coco = json.loads(DEMO_CAPTIONS.read_text())
    name = {im["id"]: im["file_name"] for im in coco["images"]}
    ix = Index(demo_index)
    misses = []
    for a in coco["annotations"]:
        hits = ix.search(a["caption"], k=5)
        if name[a["image_id"]] not in [h.path.rsplit("/", 1)[-1] for h in hits]:
            misses.append(a["caption"])
    assert not misses, misses


def test_photo_hits_carry_generated_caption(demo_index):
    from retrieval import Index

    hits = Index(demo_index).search("a cat", k=3)
    assert all(h.text for h in hits)  # generated at index time
    gen = Index(demo_index).search("a cat", k=50, texts=True)
    assert {h.source for h in gen} == {"captions", "generated"}


def test_encoder_outputs_are_normalised(encoder):
    from PIL import Image

    im = encoder.encode_images([Image.open(DEMO / "cat.jpg").convert("RGB")])
    tx = encoder.encode_texts(["a cat", "x " * 1000])  # long text truncated, no error
    assert im.shape == (1, encoder.dim) and tx.shape == (2, encoder.dim)
    assert im.dtype == np.float32 and tx.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([im, tx]), axis=1), 1.0, atol=1e-5)


def test_index_refuses_another_encoder(tmp_path, encoder):
    from retrieval import StoreError, index_folder

    index_folder(DEMO / "cat.jpg", tmp_path, encoder=ConstantEncoder(encoder.dim))
    with pytest.raises(StoreError, match="--rebuild"):
        index_folder(DEMO / "cat.jpg", tmp_path, encoder=encoder)


def test_interrupted_run_keeps_finished_batches(tmp_path, encoder):
    from retrieval import Index, index_folder

    calls = {"n": 0}

    class Flaky:
        name, version, dim, id = encoder.name, encoder.version, encoder.dim, encoder.id

        def encode_images(self, ims):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return encoder.encode_images(ims)

        def encode_texts(self, t):
            return encoder.encode_texts(t)

    with pytest.raises(KeyboardInterrupt):
        index_folder(DEMO, tmp_path, encoder=Flaky(), batch_size=2)
    ix = Index(tmp_path, encoder=encoder)
    assert len(ix) == 4  # two finished batches of 2 were committed
    assert len(ix.search("a photo", k=20)) == 4 and ix.rebuilt  # stale FAISS rebuilt from SQLite
    rep = index_folder(DEMO, tmp_path, encoder=encoder)
    assert rep.unchanged == 4 and rep.added == 7


def test_onnx_paths_match_torch_and_search_skips_torch(demo_index, encoder):
    """Indexing exported the encoder to ONNX; both paths give the torch embeddings (cosine
    within 1e-4), and a text search in a new process never imports torch."""
    import subprocess
    import sys

    from PIL import Image

    from retrieval import load_encoder, onnx_runtime

    assert onnx_runtime.has_export(encoder.id)
    torch_enc = load_encoder(runtime="torch")
    assert torch_enc.id == encoder.id and encoder._onnx() is not None
    qs = ["a dog on a beach", "Two children play in the snow with a red sled .", "一只猫", "word " * 400]
    a, b = encoder.encode_texts(qs), torch_enc.encode_texts(qs)
    assert a.shape == b.shape and np.all(np.abs((a * b).sum(1) - 1) < 1e-4)
    ims = [Image.open(DEMO / n).convert("RGB") for n in ("cat.jpg", "horses.jpg", "rocket.jpg")]
    a, b = encoder.encode_images(ims), torch_enc.encode_images(ims)
    assert a.shape == b.shape and np.all(np.abs((a * b).sum(1) - 1) < 1e-4)
    code = (f"import sys; from retrieval import Index; h = Index({str(demo_index)!r}).search('a tabby cat with green eyes', k=1); "
            "print(h[0].path); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].endswith("cat.jpg") and out[1] == "False"


def test_query_session_cache_keeps_weights_external_and_matches_torch(encoder, tmp_path):
    """The search path's session (cached optimised graph, weights in an external file that ONNX
    Runtime memory-maps, no pre-packing) gives the torch embeddings within 1e-4 cosine, from the
    first (optimise + save) and from a later (load the cache) session; a cache written before
    external data (one .opt.onnx, no .data) is rebuilt."""
    import shutil

    from retrieval import load_encoder, onnx_runtime

    if not onnx_runtime.has_export(encoder.id):
        encoder.export_fast_path()
    d = tmp_path / "export"
    shutil.copytree(onnx_runtime.export_dir(encoder.id), d)
    for f in d.glob("text_query.opt*"):
        f.unlink()
    qs = ["a dog on a beach", "Two children play in the snow with a red sled ."]
    want = load_encoder(runtime="torch").encode_texts(qs)
    first = onnx_runtime.OnnxTextEncoder(d, prepack=False).encode_texts(qs)
    data = list(d.glob("text_query.opt.*.data"))
    assert (d / "text_query.opt.onnx").is_file() and len(data) == 1
    assert (d / "text_query.opt.onnx").stat().st_size < 1_000_000 < data[0].stat().st_size  # weights outside
    second = onnx_runtime.OnnxTextEncoder(d, prepack=False).encode_texts(qs)
    for got in (first, second):
        assert np.all(np.abs((got * want).sum(1) - 1) < 1e-4)
    data[0].unlink()  # an old-style cache: the graph alone
    onnx_runtime.OnnxTextEncoder(d).encode_texts(qs)
    assert len(list(d.glob("text_query.opt.*.data"))) == 1
