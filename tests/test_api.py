"""The Python API: retrieval quality on real photos, the store, the encoder guard."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ConstantEncoder, DEMO, DEMO_CAPTIONS, SHARED, run_retr


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

    from retrieval import load_encoder

    from retrieval.encoders import onnx_runtime

    assert onnx_runtime.has_export(encoder.id)
    torch_enc = load_encoder(runtime="torch")
    assert torch_enc.id == encoder.id and encoder._onnx() is not None
    qs = ["a dog on a beach", "Two children play in the snow with a red sled .", "一只猫", "word " * 400]
    a, b = encoder.encode_texts(qs), torch_enc.encode_texts(qs)
    assert a.shape == b.shape and np.all(np.abs((a * b).sum(1) - 1) < 1e-4)
    ims = [Image.open(DEMO / n).convert("RGB") for n in ("cat.jpg", "horses.jpg", "rocket.jpg")]
    fp32 = onnx_runtime.OnnxImageEncoder(onnx_runtime.export_dir(encoder.id), precision="fp32")
    a, b = fp32.encode_images(ims), torch_enc.encode_images(ims)
    assert a.shape == b.shape and np.all(np.abs((a * b).sum(1) - 1) < 1e-4)
    code = (f"import sys; from retrieval import Index; h = Index({str(demo_index)!r}).search('a tabby cat with green eyes', k=1); "
            "print(h[0].path); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].endswith("cat.jpg") and out[1] == "False"


def test_int8_image_model_stays_close_to_fp32_and_finds_the_demo_photos(demo_index, encoder, tmp_path):
    """``RETR_IMAGE_PRECISION=int8`` makes the int8 image model (calibrated on the shipped photos)
    and indexes with it; its embeddings of photos it was not calibrated on stay close to float32
    (cosine), and a text search of the int8 index finds the photo it describes. On a CPU where int8
    is refused (x86 without VNNI: inaccurate or slower than float32), one line says so and the
    photos are embedded in float32. The index records the precision either way."""
    from PIL import Image

    from retrieval.encoders import onnx_runtime
    from retrieval.encoders.quantisation import int8_refusal, int8_settings
    from retrieval.search import Index

    assert encoder._onnx()[0].precision == "fp32"  # the default
    d = onnx_runtime.export_dir(encoder.id)
    idx = tmp_path / "idx"
    p = run_retr("index", DEMO, "--index", idx, "--no-captions", env={"RETR_IMAGE_PRECISION": "int8"}, check=0)
    assert "added 11" in p.stdout
    recorded = Index(idx).reader.get_meta("image_precision")
    p2 = run_retr("search", "people flying kites on the beach", "--index", idx, "-k", "1",
                  env={"RETR_IMAGE_PRECISION": "int8"}, check=0)
    assert p2.stdout.strip().endswith("kites_beach.jpg")
    q = onnx_runtime.OnnxImageEncoder(d, precision="int8")
    if int8_refusal():
        lines = [x for x in p.stderr.splitlines() if "int8" in x]
        assert len(lines) == 1 and "refused on this CPU" in lines[0], p.stderr
        assert recorded == "fp32 (int8 refused on this CPU)" and q.precision == "fp32", recorded
        assert not (d / onnx_runtime.IMAGE_INT8_FILE).exists()
        return
    assert (d / onnx_runtime.IMAGE_INT8_FILE).is_file()
    assert recorded == "int8 " + int8_settings().describe(), recorded  # the index says how it was embedded
    f = onnx_runtime.OnnxImageEncoder(d, precision="fp32")
    assert q.precision == "int8" and f.precision == "fp32"
    f8 = SHARED / "flickr8k" / "images"
    paths = sorted(f8.glob("*.jpg"))[:48] if f8.is_dir() else sorted(DEMO.glob("*.jpg"))
    ims = [Image.open(p).convert("RGB") for p in paths]
    a, b = q.encode_images(ims), f.encode_images(ims)
    cos = (a * b).sum(1)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
    assert cos.mean() > 0.98 and cos.min() > 0.85, (cos.mean(), cos.min())
    assert not np.allclose(a, b, atol=1e-4)  # really the quantised model
    ra, rb = q.encode_images_concepts_and_regions(ims[:16])[2], f.encode_images_concepts_and_regions(ims[:16])[2]
    ra, rb = ra.reshape(-1, ra.shape[-1]), rb.reshape(-1, rb.shape[-1])
    region_cos = (ra * rb).sum(1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
    assert region_cos.mean() > 0.95, region_cos.mean()  # the spatial maps too (docs/int8.md: ~0.98 with VNNI)


def test_int8_settings_follow_the_cpu():
    """U8S8 saturates in int16 on x86 without VNNI: such CPUs get uint8 weights (U8U8); VNNI CPUs and
    ARM64 keep int8 weights; an unknown architecture gets the safe U8U8."""
    from retrieval.encoders.quantisation import cpu_features, int8_refusal, int8_settings

    vnni = int8_settings("x86_64", {"sse4_2", "avx2", "avx512f", "avx512_vnni"})
    avx2 = int8_settings("x86_64", {"sse4_2", "avx2", "fma"})
    alder = int8_settings("x86_64", {"avx2", "avx_vnni"})
    assert (vnni.weight_type, avx2.weight_type, alder.weight_type) == ("int8", "uint8", "int8")
    assert avx2.describe() == "U8U8 per-channel (x86 without VNNI)"
    assert vnni.describe() == "U8S8 per-channel (x86 with VNNI)"
    assert int8_settings("aarch64", {"asimd"}).weight_type == "int8"
    assert int8_settings("riscv64", set()).weight_type == "uint8"
    arch, flags = cpu_features()
    assert arch and int8_settings() == int8_settings(arch, flags)
    # int8 is refused where its only accurate form (U8U8) is slower than float32
    assert int8_refusal("x86_64", {"avx2", "fma"}) and "x86 without VNNI" in int8_refusal("x86_64", {"avx2"})
    assert int8_refusal("x86_64", {"avx2", "avx512_vnni"}) is None and int8_refusal("aarch64", set()) is None


def test_an_int8_model_made_for_another_cpu_is_not_used(tmp_path):
    """The int8 model records its settings; one made with other settings (another CPU sharing the
    cache, an older retr) is not current, so it is made again before use."""
    from retrieval.encoders import onnx_runtime
    from retrieval.encoders.quantisation import int8_settings

    (tmp_path / onnx_runtime.IMAGE_INT8_FILE).write_bytes(b"model")
    assert not onnx_runtime.int8_model_is_current(tmp_path)  # no settings recorded: an older retr's
    other = int8_settings("x86_64", set()) if int8_settings().weight_type == "int8" else int8_settings("x86_64", {"avx512_vnni"})
    (tmp_path / onnx_runtime.IMAGE_INT8_SETTINGS_FILE).write_text(other.describe() + "\n")
    assert not onnx_runtime.int8_model_is_current(tmp_path)
    (tmp_path / onnx_runtime.IMAGE_INT8_SETTINGS_FILE).write_text(int8_settings().describe() + "\n")
    assert onnx_runtime.int8_model_is_current(tmp_path)


def test_int8_falls_back_to_fp32_when_it_cannot_be_made(encoder, tmp_path, monkeypatch):
    """An export whose int8 model cannot be made (no calibration photos) embeds in float32, as before."""
    import shutil

    from retrieval.encoders import onnx_runtime

    d = tmp_path / "export"
    shutil.copytree(onnx_runtime.export_dir(encoder.id), d)
    (d / onnx_runtime.IMAGE_INT8_FILE).unlink(missing_ok=True)
    monkeypatch.setattr(onnx_runtime, "CALIBRATION_DIR", tmp_path / "none")
    e = onnx_runtime.OnnxImageEncoder(d, precision="int8")
    assert e.precision == "fp32" and not (d / onnx_runtime.IMAGE_INT8_FILE).exists()
    monkeypatch.setenv("RETR_IMAGE_PRECISION", "int8")
    assert onnx_runtime.image_precision() == "int8"
    monkeypatch.delenv("RETR_IMAGE_PRECISION")
    assert onnx_runtime.image_precision() == "fp32"


def test_quantisation_removes_the_working_folder_a_killed_run_left(encoder, tmp_path):
    """A SIGKILL during int8 quantisation leaves its ``.q-*`` working folder in the export folder:
    the next quantisation removes it once it is stale, and leaves a fresh one (a live run) alone."""
    import os
    import shutil
    import time

    from retrieval.encoders import onnx_runtime

    encoder.export_fast_path()
    d = tmp_path / "export"
    shutil.copytree(onnx_runtime.export_dir(encoder.id), d)
    (d / onnx_runtime.IMAGE_INT8_FILE).unlink(missing_ok=True)
    stale, live = d / ".q-killed", d / ".q-running"
    for f in (stale, live):
        f.mkdir()
        (f / "pre.onnx").write_bytes(b"\0" * 4096)
    old = time.time() - 2 * 24 * 3600  # two days: long dead
    os.utime(stale, (old, old))
    assert onnx_runtime.quantize_image_model(d) == d / onnx_runtime.IMAGE_INT8_FILE
    assert (d / onnx_runtime.IMAGE_INT8_FILE).is_file()
    assert [f.name for f in d.glob(".q-*")] == [live.name]
    # killed, then rerun at once (the folder still fresh): the int8 model exists from then on and
    # quantisation never runs again, so loading the int8 model sweeps the folder once it is stale
    os.utime(live, (old, old))
    onnx_runtime.OnnxImageEncoder(d, precision="int8")
    assert list(d.glob(".q-*")) == []


def test_a_misspelt_image_precision_is_refused_before_any_work(tmp_path):
    """`RETR_IMAGE_PRECISION=int-8` must not silently index in float32: one line, exit 1, no index."""
    idx = tmp_path / "idx"
    for args in (("index", DEMO, "--index", idx, "--no-captions"), ("search", DEMO / "cat.jpg", "--index", idx),
                 ("caption", DEMO / "cat.jpg"), ("serve", "--index", idx, "--port", "0")):
        p = run_retr(*args, env={"RETR_IMAGE_PRECISION": "int-8"})
        assert p.returncode == 2, (args, p.stderr)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "RETR_IMAGE_PRECISION='int-8'" in lines[0] and "fp32 or int8" in lines[0], p.stderr
        assert not p.stdout.strip()
    assert not idx.exists()


def test_batched_beam_search_gives_each_photo_its_own_captions(encoder):
    """The batched beam search (what `retr index` stores) gives every photo of a batch what the
    one-photo path (`retr caption`: ``beam_search`` / ``beam_candidates``, a batch of one) gives
    it alone: demo photos and shared dev photos, in batches of uneven sizes, for several beam
    widths and length penalties; same n-best lists in the same order, scores up to float rounding."""
    from PIL import Image

    from retrieval.captioning.model import load_captioner

    cap = load_captioner(None, encoder.id, pooled=True)
    f8 = SHARED / "flickr8k" / "images"
    paths = sorted(DEMO.glob("*.jpg")) + (sorted(f8.glob("*.jpg"))[:53] if f8.is_dir() else [])
    v, post = encoder.encode_images_and_concepts([Image.open(p).convert("RGB") for p in paths])
    want = [cap.beam_search(e) for e in v]
    assert len(set(want)) > len(want) // 2  # distinct photos, distinct captions: a mix-up would show
    assert cap.beam_search_batch(v) == want
    assert cap.beam_search_batch(v[:5]) + cap.beam_search_batch(v[5:]) == want
    assert cap.beam_search_batch(v[:1], beam=1) == [cap.beam_search(v[0], 1)]
    assert cap.beam_search_batch(v[:0]) == [] and cap.beam_candidates_batch(v[:0]) == []
    assert cap.beam_search_batch(v, concepts=post) == want  # the concept-word prior is off by default
    cap.concept_weight = 8.0
    with_concepts = [cap.beam_search(e, concepts=p) for e, p in zip(v, post)]  # the concept-word prior, photo by photo
    assert cap.beam_search_batch(v, concepts=post) == with_concepts != want
    cap.concept_weight = 0.0
    for beam, lp, form in ((3, 0.7, "power"), (5, 1.0, "gnmt"), (2, 0.0, "power")):
        one = [cap.beam_candidates(e, beam, lp, form) for e in v[:24]]
        many = cap.beam_candidates_batch(v[:24], beam, lp, form)
        assert len(many) == len(one)
        for a, b in zip(one, many):  # photo by photo
            assert [s for s, _ in b] == [s for s, _ in a]
            assert np.allclose([x for _, x in b], [x for _, x in a], rtol=0, atol=1e-4)
    one = [cap.beam_hypotheses(e, 4) for e in v[:8]]
    many = cap.beam_hypotheses_batch(v[:8], 4)
    assert [[q for q, _ in h] for h in many] == [[q for q, _ in h] for h in one]
    with pytest.raises(ValueError, match="shape"):
        cap.beam_candidates_batch(v[0])  # one photo is (1, D), not (D,)
    with pytest.raises(ValueError, match="shape"):
        cap.beam_search(v[0][:-1])


def test_embedding_in_the_workers_gives_the_main_thread_vectors(demo_index, encoder):
    """``embed_locally`` gives the same vectors, order and failures whether the workers embed
    (ONNX Runtime, ``concurrent_images``) or the calling thread does."""
    import os

    from retrieval.io.files import FileInfo
    from retrieval.indexing.indexer import embed_locally
    from retrieval.indexing.plan import Todo

    assert encoder.concurrent_images
    files = sorted(DEMO.glob("*.jpg")) + [DEMO.parent / "captions.json"]
    todo = [Todo(FileInfo(str(p), os.path.getsize(p), os.path.getmtime(p))) for p in files]

    class MainThread:
        concurrent_images = False
        encode_images = staticmethod(encoder.encode_images)

    got = [e for b in embed_locally(todo, encoder, batch_size=3, workers=2) for e in b]
    ref = [e for b in embed_locally(todo, MainThread(), batch_size=3, workers=2) for e in b]
    assert [e.todo.file.path for e in got] == [str(p) for p in files]
    assert [e.error is None for e in got] == [e.error is None for e in ref] == [True] * 11 + [False]
    assert all(np.allclose(a.vector, b.vector, atol=1e-6) for a, b in zip(got[:11], ref[:11]))
    assert got[0].hash == ref[0].hash and got[0].width == ref[0].width


def test_query_session_cache_keeps_weights_external_and_matches_torch(encoder, tmp_path):
    """The search path's session (cached optimised graph, weights in an external file that ONNX
    Runtime memory-maps, no pre-packing) gives the torch embeddings within 1e-4 cosine, from the
    first (optimise + save) and from a later (load the cache) session; a cache written before
    external data (one .opt.onnx, no .data) is rebuilt."""
    import shutil

    from retrieval import load_encoder

    from retrieval.encoders import onnx_runtime

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
