"""The backbones' spatial feature maps (the regions a captioner attends over): their shape per
backbone, their mean over regions equals the pooled features the encoder uses, and the ``best``
preset's maps concatenate along the region axis with the count of each backbone's regions."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DEMO


def _photos(*names):
    from retrieval.io.decode import load_image

    return [load_image(DEMO / n) for n in names]


def _pooled(part, photos):
    """The pooled features as the encoder's image model computes them (the module it exports)."""
    import torch

    from retrieval.encoders.onnx_runtime import preprocess

    with torch.inference_mode():
        return part.pooled_module()(torch.from_numpy(preprocess(photos, part.spec.image_size))).numpy()


@pytest.fixture(scope="module")
def best():
    from retrieval.encoders.backbones import load_backbone, missing_weights

    name = "efficientnet-lite0+efficientnet-lite2+mobilenet-v2"
    if missing_weights(name):
        pytest.skip(missing_weights(name))
    return load_backbone(name)


def test_each_backbone_spatial_map_shape_and_mean_equals_pooled(best):
    photos = _photos("horses.jpg", "cat.jpg")
    for part, regions in zip(best.parts, (49, 81, 49)):
        maps = part.spatial_features(photos)
        assert maps.shape == (2, regions, 1280) and maps.dtype == np.float32, (part.name, maps.shape)
        assert part.regions == regions
        pooled = _pooled(part, photos)
        np.testing.assert_allclose(maps.mean(1), pooled, atol=1e-5, rtol=1e-4, err_msg=part.name)
        assert not np.allclose(maps[:, 0], maps[:, -1])  # regions differ: a real map, not a broadcast


def test_best_concatenates_regions_and_says_which_backbone_each_came_from(best):
    photos = _photos("horses.jpg")
    maps = best.spatial_features(photos)
    assert best.region_counts == [49, 81, 49]
    assert maps.shape == (1, 179, 1280)
    pooled = np.concatenate([_pooled(p, photos) for p in best.parts], axis=1)
    bounds = np.cumsum([0] + best.region_counts)
    got = np.concatenate([maps[:, a:b].mean(1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    np.testing.assert_allclose(got, pooled, atol=1e-5, rtol=1e-4)


def test_no_photos_give_an_empty_map(best):
    assert best.parts[1].spatial_features([]).shape == (0, 81, 1280)


def test_encoder_gives_embedding_concepts_and_regions_in_one_pass():
    from retrieval.encoders.base import load_encoder

    enc = load_encoder("fast", runtime="torch")
    photos = _photos("horses.jpg", "cat.jpg")
    emb, post, maps = enc.encode_images_concepts_and_regions(photos)
    import torch

    pooled = _pooled(enc.backbone, photos)
    want_emb = enc.project_images(pooled)
    want_post = torch.softmax(enc.backbone.classifier(torch.from_numpy(pooled)), -1).detach().numpy()
    assert maps.shape == (2, 49, 1280) and enc.region_counts == [49]
    np.testing.assert_allclose(emb, want_emb, atol=1e-5)
    np.testing.assert_allclose(post, want_post, atol=1e-5)
    assert [a.shape[0] for a in enc.encode_images_concepts_and_regions([])] == [0, 0, 0]


def _cosines(a, b):
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def test_onnx_image_model_gives_regions_agreeing_with_torch(encoder):
    """The exported image model's third output: the spatial maps (per region) and their means (the
    pooled features) agree with torch within 1e-4 cosine, with the embedding and posteriors of the same run."""
    from retrieval.encoders import onnx_runtime
    from retrieval.encoders.base import load_encoder

    encoder.export_fast_path()
    assert onnx_runtime.export_is_current(encoder.id)
    ort = onnx_runtime.OnnxImageEncoder(onnx_runtime.export_dir(encoder.id), precision="fp32")
    assert ort.region_counts == [49]
    photos = _photos("horses.jpg", "rocket.jpg", "cat.jpg")
    emb, post, maps = ort.encode_images_concepts_and_regions(photos)
    t_emb, t_post, t_maps = load_encoder(runtime="torch").encode_images_concepts_and_regions(photos)
    assert maps.shape == t_maps.shape == (3, 49, 1280)
    assert _cosines(maps, t_maps).min() > 1 - 1e-4
    assert _cosines(maps.mean(1), t_maps.mean(1)).min() > 1 - 1e-4
    assert _cosines(emb, t_emb).min() > 1 - 1e-4
    np.testing.assert_allclose(post, t_post, atol=1e-4)
    np.testing.assert_allclose(ort.encode_images(photos), emb, atol=1e-6)  # the same model, one output


def test_an_export_of_the_older_format_keeps_serving_and_is_made_again(encoder, tmp_path, monkeypatch):
    """A cache folder exported before the spatial maps (no image_format.json) still embeds; the
    regions then come from torch; the next export_fast_path (retr index) exports again."""
    import shutil

    from retrieval.encoders import onnx_export, onnx_runtime
    from retrieval.encoders.base import load_encoder

    encoder.export_fast_path()
    src = onnx_runtime.export_dir(encoder.id)
    monkeypatch.setenv("RETR_CACHE", str(tmp_path))
    shutil.copytree(src, onnx_runtime.export_dir(encoder.id), ignore=shutil.ignore_patterns("*.opt.*"))
    (onnx_runtime.export_dir(encoder.id) / onnx_runtime.IMAGE_FORMAT_FILE).unlink()
    old = load_encoder()
    assert onnx_runtime.has_export(old.id) and not onnx_runtime.export_is_current(old.id)
    assert old._onnx()[0].region_counts is None
    photos = _photos("horses.jpg")
    with pytest.raises(ValueError, match="retr index"):
        old._onnx()[0].encode_images_concepts_and_regions(photos)
    emb, _, maps = old.encode_images_concepts_and_regions(photos)  # torch
    assert maps.shape == (1, 49, 1280) and old.region_counts == [49]
    calls = []
    monkeypatch.setattr(onnx_export, "export_encoder", lambda enc: calls.append(enc.id))
    assert old.export_fast_path() and calls == [old.id]
