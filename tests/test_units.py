"""Small pure functions: metrics, decoding, tokenisation, walking."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def test_recall_at_k_by_hand():
    from retrieval.training.metrics import modality_gap, recall_at_k

    img = np.eye(3, dtype=np.float32)
    # captions 0,1 belong to photo 0; caption 2 to photo 1; caption 3 to photo 2 (no ties anywhere)
    txt = np.array([[1, 0, 0], [0, 1, 0], [0, 0.6, 0.8], [0, 0, 1]], np.float32)
    r = recall_at_k(img, txt, [0, 0, 1, 2], ks=(1, 2))
    # t2i: c0 -> p0 first; c1 -> p1 beats p0 (rank 2); c2 -> p2 (.8) beats p1 (.6); c3 -> p2 first
    assert r["t2i"][1] == pytest.approx(50.0) and r["t2i"][2] == pytest.approx(100.0)
    # i2t: p0's best caption c0 first; p1 sees c1 (1.0) before its own c2 (.6); p2 sees c3 first
    assert r["i2t"][1] == pytest.approx(200 / 3) and r["i2t"][2] == pytest.approx(100.0)
    assert modality_gap(img, img) == 0.0


def test_decode_modes_and_orientation(tmp_path):
    from retrieval.io.decode import load_image
    from retrieval.errors import DecodeError

    base = Image.linear_gradient("L").resize((64, 32)).convert("RGB")
    base.save(tmp_path / "upright.jpg")
    rot = base.rotate(90, expand=True)  # stored rotated, tag says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6
    rot.save(tmp_path / "tagged.jpg", exif=exif)
    a, b = load_image(tmp_path / "upright.jpg"), load_image(tmp_path / "tagged.jpg")
    assert a.size == b.size == (64, 32) and b.info["original_size"] == (64, 32)
    assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 8
    p = Image.new("P", (8, 8))
    p.info["transparency"] = 0
    p.save(tmp_path / "pal.png", transparency=0)
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "rgba.png")
    for n in ("pal.png", "cmyk.jpg", "rgba.png"):
        assert load_image(tmp_path / n).mode == "RGB"
    assert load_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(DecodeError, match="too large"):
        load_image(tmp_path / "upright.jpg", max_megapixels=0.001)


def test_tokenize_detokenize():
    from retrieval.captioning.vocab import detokenize, tokenize

    assert tokenize("A dog 's ball , on the beach .") == ["a", "dog's", "ball", "on", "the", "beach"]
    assert detokenize(["a", "man", "s", "dog"]) == "A man's dog."
    assert detokenize(["a", "dog", "runs", "<eos>"]) == "A dog runs."


def test_walk_finds_images_case_insensitively_and_skips_index(tmp_path):
    from retrieval.io.files import walk_images

    (tmp_path / "a").mkdir()
    (tmp_path / "index").mkdir()
    for n in ("a/x.JPG", "y.png", "z.txt", "index/w.jpg"):
        (tmp_path / n).write_bytes(b"x")
    got = sorted(f.path.rsplit("/", 1)[-1] for f in walk_images(tmp_path, skip_dirs=(tmp_path / "index",)))
    assert got == ["x.JPG", "y.png"]


def test_text_corpus_errors_name_the_file(tmp_path):
    import pytest

    from retrieval.training.captioner import load_text_corpus

    (tmp_path / "bin.txt").write_bytes(bytes(range(128, 256)))
    (tmp_path / "c.tsv.gz").write_bytes(b"not gzip at all")
    for name in ("bin.txt", "c.tsv.gz"):
        with pytest.raises(ValueError, match=f"{name}: not a UTF-8 text corpus"):
            load_text_corpus(tmp_path / name)
    (tmp_path / "ok.txt").write_text("a dog runs\n\n a cat \n")
    assert load_text_corpus(tmp_path / "ok.txt")[0] == ["a dog runs", "a cat"]
