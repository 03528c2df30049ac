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
