"""`retr train` / `retr eval`: k-fold splits and a model that learns (on the tiny demo corpus)."""
from __future__ import annotations

import json

import pytest

from conftest import DEMO, DEMO_CAPTIONS, run_retr


@pytest.mark.parametrize("n,k", [(11, 3), (100, 5), (7, 7)])
def test_kfold_splits_are_disjoint_by_photo(n, k):
    from retrieval.training.pipeline import kfold_photo_splits

    splits = kfold_photo_splits(n, k)
    tests = [set(te.tolist()) for _, te in splits]
    assert len(splits) == k
    assert set().union(*tests) == set(range(n)) and sum(map(len, tests)) == n  # a partition
    for tr, te in splits:
        assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == n
    with pytest.raises(ValueError):
        kfold_photo_splits(n, n + 1)


def test_trained_heads_beat_random_projection(tmp_path):
    from retrieval.encoders.alignment import AlignmentNetwork
    from retrieval.io.coco import load_coco_captions
    from retrieval.training.metrics import recall_at_k
    from retrieval.training.align import AlignConfig, embed_features, train_alignment
    from retrieval.training.features import image_features, text_features

    corpus = load_coco_captions(DEMO_CAPTIONS)
    img = image_features(corpus, DEMO, "efficientnet-lite0", tmp_path, flip=True)
    txt = text_features(corpus.captions, "all-MiniLM-L6-v2", tmp_path)
    model, info = train_alignment(img, txt, corpus.caption_photo, AlignConfig(max_epochs=60))
    r_trained = recall_at_k(*embed_features(model, img[0], txt), corpus.caption_photo)
    import torch

    torch.manual_seed(1)
    rand = AlignmentNetwork(img.shape[-1], txt.shape[-1])
    r_rand = recall_at_k(*embed_features(rand, img[0], txt), corpus.caption_photo)
    assert r_trained["t2i"][1] > r_rand["t2i"][1] + 20, (r_trained, r_rand)
    assert r_trained["i2t"][1] > r_rand["i2t"][1] + 20, (r_trained, r_rand)


def test_train_then_index_with_own_encoder_and_eval_folds(tmp_path):
    enc = tmp_path / "mine.pt"
    p = run_retr("train", DEMO_CAPTIONS, "--images", DEMO, "--out", enc, "--epochs", "30", "--text-dropout", "0.2",
                 "--captions-per-photo", "3", check=0)
    assert enc.exists() and "wrote" in p.stdout
    import torch

    card = torch.load(enc, map_location="cpu", weights_only=True)["config"]["card"]
    assert card["align_config"]["text_dropout"] == 0.2 and card["align_config"]["captions_per_photo"] == 3
    assert card["train_info"]["captions_per_photo"] == 2  # the demo photos have 2 captions each
    idx = tmp_path / "idx"
    run_retr("index", DEMO, "--index", idx, "--encoder", enc, "--no-captions", check=0)
    # the index remembers its encoder: search needs no --encoder
    hits = json.loads(run_retr("search", "a tabby cat with green eyes", "--index", idx, "--json", check=0).stdout)
    assert len(hits) == 10
    # and refuses the built-in one; a later run without --encoder keeps the recorded one
    p = run_retr("index", DEMO, "--index", idx, "--no-captions", "--encoder", "fast")
    assert p.returncode == 1 and "--rebuild" in p.stderr
    p = run_retr("index", DEMO, "--index", idx, "--no-captions", check=0)
    assert "unchanged 11" in p.stdout
    res = json.loads(run_retr("eval", DEMO_CAPTIONS, "--images", DEMO, "--folds", "3", "--json", check=0).stdout)
    assert len(res["folds"]) == 3 and sum(f["test_photos"] for f in res["folds"]) == 11
    assert set(res["mean"]) == {"t2i", "i2t"}


def test_concatenated_backbones_train_index_and_match_torch(tmp_path):
    """`retr train --backbone a+b` with the hinge + adversarial objectives writes an encoder
    whose ONNX path (one input per backbone, each at its native size) matches torch."""
    import numpy as np

    from retrieval.io.decode import load_image
    from retrieval.encoders.base import load_encoder

    enc_path = tmp_path / "concat.pt"
    run_retr("train", DEMO_CAPTIONS, "--images", DEMO, "--out", enc_path, "--epochs", "20",
             "--backbone", "efficientnet-lite0+efficientnet-lite2", "--loss", "infonce+hinge",
             "--adversarial", "0.1", check=0)
    idx = tmp_path / "idx"
    run_retr("index", DEMO, "--index", idx, "--encoder", enc_path, "--no-captions", check=0)
    hits = json.loads(run_retr("search", DEMO / "cat.jpg", "--index", idx, "--json", check=0).stdout)
    assert hits[0]["path"].endswith("cat.jpg")  # image -> image finds the photo itself first
    ims = [load_image(DEMO / n) for n in ("cat.jpg", "horses.jpg")]
    fast = load_encoder(enc_path)
    assert fast._onnx() is not None and len(fast._onnx()[0].input_names) == 2
    a = fast.encode_images(ims)
    b = load_encoder(enc_path, runtime="torch").encode_images(ims)
    assert a.shape == (2, 512) and np.all(np.abs((a * b).sum(1) - 1) < 1e-4)


def test_unknown_backbone_and_loss_are_refused(tmp_path):
    p = run_retr("train", DEMO_CAPTIONS, "--images", DEMO, "--out", tmp_path / "x.pt",
                 "--backbone", "efficientnet-lite0+resnet50")
    assert p.returncode == 2 and "unknown backbone 'resnet50'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_retr("train", DEMO_CAPTIONS, "--images", DEMO, "--out", tmp_path / "x.pt", "--loss", "triplet")
    assert p.returncode == 2 and "unknown loss" in p.stderr


def test_text_dropout_and_captions_per_photo_reach_the_heads_and_bad_values_are_refused():
    """The text head gets its own input dropout; k captions a photo per step still trains on
    photos with fewer captions (drawn with replacement); k < 1 is refused."""
    import numpy as np

    from retrieval.encoders.alignment import AlignmentNetwork
    from retrieval.training.align import AlignConfig, train_alignment

    net = AlignmentNetwork(16, 8, dim=4, hidden=0, dropout=0.7, text_dropout=0.1)
    assert net.image.drop.p == 0.7 and net.text.drop.p == 0.1
    assert AlignmentNetwork(16, 8, dropout=0.6).text.drop.p == 0.6  # None: same as the image head
    rng = np.random.default_rng(0)
    img = rng.standard_normal((12, 16)).astype(np.float32)
    cp = [i for i in range(12) for _ in range(1 + i % 3)]  # 1-3 captions a photo
    txt = (img[cp, :8] + 0.1 * rng.standard_normal((len(cp), 8))).astype(np.float32)
    model, info = train_alignment(img, txt, cp, AlignConfig(dim=8, hidden=0, max_epochs=3, batch_size=4,
                                                            captions_per_photo=5, text_dropout=0.2))
    assert model.text.drop.p == 0.2 and model.config["text_dropout"] == 0.2
    assert info["captions_per_photo"] == 2  # capped at the median captions a photo (1-3 here)
    with pytest.raises(ValueError, match="captions_per_photo"):
        AlignConfig(captions_per_photo=0)


def test_eval_folds_1_is_a_usage_error(tmp_path):
    """--folds is 0 (no cross-validation) or K >= 2: --folds 1 is refused in one line (exit 2)
    before any photo is read, and --help says so."""
    p = run_retr("eval", DEMO_CAPTIONS, "--images", tmp_path / "not-read", "--folds", "1")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert lines[0].startswith("retr: ") and "--folds" in lines[0] and "at least 2" in lines[0], lines
    h = run_retr("eval", "--help", env={"COLUMNS": "300"}, check=0).stdout
    assert "0 = no cross-validation, else K >= 2" in h, h
    from retrieval.training.pipeline import evaluate

    with pytest.raises(ValueError, match="at least 2"):  # the Python API too, before reading a photo
        evaluate(DEMO_CAPTIONS, tmp_path / "not-read", encoder=object(), folds=1)


def _library_with_bad_photos(tmp_path):
    """The demo photos, but cat.jpg is missing and eagle.jpg is truncated (both in the captions)."""
    import shutil

    d = tmp_path / "photos"
    shutil.copytree(DEMO, d)
    (d / "cat.jpg").unlink()
    data = (d / "eagle.jpg").read_bytes()
    (d / "eagle.jpg").write_bytes(data[: len(data) // 3])
    return d


def _skip_lines(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if name in line]


def test_train_eval_and_train_captioner_skip_unreadable_photos(tmp_path):
    """A photo of the captions file that is missing from --images, or truncated, is reported in
    one line naming it and the reason, and left out with its captions; the run goes on with the
    rest. With no readable photo at all: one clear error, exit 1."""
    d = _library_with_bad_photos(tmp_path)

    def check_skips(p):
        assert "Traceback" not in p.stderr, p.stderr
        (cat,), (eagle,) = _skip_lines(p.stderr, "cat.jpg"), _skip_lines(p.stderr, "eagle.jpg")
        assert cat == f"retr: skipped {d / 'cat.jpg'}: cannot read file (No such file or directory)", cat
        assert eagle.startswith(f"retr: skipped {d / 'eagle.jpg'}: truncated or corrupt image data"), eagle

    enc = tmp_path / "mine.pt"
    p = run_retr("train", DEMO_CAPTIONS, "--images", d, "--out", enc, "--epochs", "3", check=0)
    check_skips(p)
    assert enc.exists() and "wrote" in p.stdout
    p = run_retr("eval", DEMO_CAPTIONS, "--images", d, "--json", check=0)
    check_skips(p)
    res = json.loads(p.stdout)
    assert res["photos"] == 9 and res["captions"] == 18, res  # 2 captions a photo, the 2 photos' left out
    p = run_retr("train-captioner", DEMO_CAPTIONS, "--images", d, "--out", tmp_path / "cap.pt", "--epochs", "1",
                 "--min-count", "1", check=0)
    check_skips(p)
    assert (tmp_path / "cap.pt").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_retr("eval", DEMO_CAPTIONS, "--images", empty)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 12 and all(line.startswith("retr: skipped ") for line in lines[:11]), lines
    assert lines[-1] == f"retr: {empty}: none of the 11 photos of the captions file can be read", lines
    p = run_retr("train", DEMO_CAPTIONS, "--images", tmp_path / "nowhere", "--out", tmp_path / "x.pt")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "nowhere" in p.stderr, p.stderr


def test_readable_photos_are_cached_and_a_repaired_photo_is_checked_again(tmp_path):
    """The check's outcome is cached per file state: the same skips again, and a photo put back is
    used on the next run; rows of the result stay aligned with its captions."""
    import shutil

    from retrieval.io.coco import load_coco_captions
    from retrieval.training.features import readable_photos

    d = _library_with_bad_photos(tmp_path)
    full = load_coco_captions(DEMO_CAPTIONS)
    runs = []
    for _ in range(2):
        skipped = []
        c = readable_photos(full, d, tmp_path / "cache", lambda p, r: skipped.append(p))
        runs.append((c, skipped))
    assert runs[0][1] == runs[1][1] == [str(d / n) for n in full.file_names if n in ("cat.jpg", "eagle.jpg")]
    c = runs[0][0]
    assert sorted(c.file_names) == sorted(set(full.file_names) - {"cat.jpg", "eagle.jpg"}) and len(c.captions) == 18
    for cap, p in zip(c.captions, c.caption_photo):  # each caption still points at its own photo
        assert full.file_names[full.caption_photo[full.captions.index(cap)]] == c.file_names[p]
    shutil.copy(DEMO / "cat.jpg", d / "cat.jpg")
    skipped = []
    c = readable_photos(full, d, tmp_path / "cache", lambda p, r: skipped.append(p))
    assert skipped == [str(d / "eagle.jpg")] and "cat.jpg" in c.file_names
    assert readable_photos(full, DEMO, None) is full


def test_readable_photos_second_run_decodes_only_last_runs_failures(tmp_path, monkeypatch):
    """A cached check decodes again only the photos that failed, so a passing cause (an I/O error)
    does not leave a good photo out for good, and the skip line names this run's --images path."""
    import shutil

    import retrieval.training.features as features
    from retrieval.io.coco import load_coco_captions
    from retrieval.errors import DecodeError

    d = tmp_path / "photos"
    shutil.copytree(DEMO, d)
    full = load_coco_captions(DEMO_CAPTIONS)
    real, decoded, flaky = features.load_image, [], {"on": True}

    def load(path, **kw):
        decoded.append(path.name)
        if flaky["on"] and path.name == "cat.jpg":
            raise DecodeError(str(path), "cannot read file (Input/output error)")
        return real(path, **kw)

    monkeypatch.setattr(features, "load_image", load)
    skipped = []
    c = features.readable_photos(full, d, tmp_path / "cache", lambda p, r: skipped.append(p))
    assert "cat.jpg" not in c.file_names and skipped == [str(d / "cat.jpg")]
    assert sorted(decoded) == sorted(full.file_names)
    decoded.clear()
    flaky["on"] = False
    other = tmp_path / "link"
    other.symlink_to(d)
    skipped = []
    c = features.readable_photos(full, other, tmp_path / "cache", lambda p, r: skipped.append(p))
    assert decoded == ["cat.jpg"] and skipped == [] and c is full
