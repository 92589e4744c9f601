import logging

import numpy as np
import pytest
import torch
from PIL import Image

from ml.backbone import Embedder, ImageUnreadable, WeightsUnavailable, bf16_supported, build_backbone
from ml.config import BackboneConfig


def test_embed_paths_shape_order_and_streaming(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    assert emb.dim == 512  # resnet18 in tests; resnet50 gives 2048
    seen = []
    feats = emb.embed_paths(image_paths, progress=lambda done, total: seen.append((done, total)))
    assert feats.shape == (8, 512) and feats.dtype == np.float32
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    # Batches (batch_size 4) come back in input order and match a one-by-one embedding.
    batches = list(emb.iter_embed_paths(image_paths))
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    single = emb.embed_paths(image_paths[5:6])
    np.testing.assert_allclose(single[0], feats[5], rtol=1e-4, atol=1e-4)
    # Different images give different features.
    assert not np.allclose(feats[0], feats[1])


def test_resnet50_dim_is_2048():
    model, dim = build_backbone("resnet50")
    assert dim == 2048


def test_random_init_is_reproducible_and_warns(tiny_cfg, image_paths, caplog):
    with caplog.at_level(logging.WARNING, logger="ml.backbone"):
        a = Embedder(tiny_cfg).embed_paths(image_paths[:2])
    assert "ML_WEIGHTS" in caplog.text and "random" in caplog.text
    b = Embedder(tiny_cfg).embed_paths(image_paths[:2])
    np.testing.assert_array_equal(a, b)
    assert Embedder(tiny_cfg).key == "resnet18:none:32"


def test_embed_pil_matches_embed_paths(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    png = image_paths[3]  # lossless, so decoding is identical
    with Image.open(png) as im:
        pil = emb.embed_pil([im.copy()])
    np.testing.assert_allclose(pil[0], emb.embed_paths([png])[0], rtol=1e-5, atol=1e-5)


def test_weights_from_state_dict_file(tiny_cfg, image_paths, tmp_path):
    # A state dict with different weights than the seeded random init, as a training job would save.
    model, _ = build_backbone("resnet18")
    torch.manual_seed(123)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)  # a full classifier checkpoint: fc is ignored
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    cfg = BackboneConfig(**{**tiny_cfg.to_dict(), "weights": str(path)})
    loaded = Embedder(cfg)
    assert torch.equal(loaded.model.conv1.weight, model.conv1.weight)
    assert loaded.key.startswith("resnet18:sd-") and loaded.key != Embedder(tiny_cfg).key
    assert not np.allclose(loaded.embed_paths(image_paths[:1]), Embedder(tiny_cfg).embed_paths(image_paths[:1]))
    # The same weights handed over in memory give the same features and a key naming their sha256.
    in_memory = Embedder(tiny_cfg, state_dict=loaded.backbone_state_dict())
    np.testing.assert_array_equal(in_memory.embed_paths(image_paths[:1]), loaded.embed_paths(image_paths[:1]))


def test_state_dict_that_does_not_fit_is_a_clear_error(tiny_cfg, tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsUnavailable, match="ML_WEIGHTS"):
        Embedder(BackboneConfig(**{**tiny_cfg.to_dict(), "weights": str(path)}))
    with pytest.raises(WeightsUnavailable, match="no such file"):
        Embedder(BackboneConfig(**{**tiny_cfg.to_dict(), "weights": str(tmp_path / "missing.pt")}))


def test_imagenet_offline_names_the_setting(tiny_cfg, monkeypatch, tmp_path):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable) as err:
        Embedder(BackboneConfig(**{**tiny_cfg.to_dict(), "weights": "imagenet"}))
    assert "ML_WEIGHTS" in str(err.value) and "none" in str(err.value)


def test_unreadable_image_names_the_file(tiny_cfg, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageUnreadable, match="broken.jpg"):
        Embedder(tiny_cfg).embed_paths([bad])


def test_augmented_views_differ_from_clean_and_are_reproducible(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    views = emb.augmented_views(image_paths[:3], n_views=2, seed=7)
    assert views.shape == (3, 2, 512)
    again = emb.augmented_views(image_paths[:3], n_views=2, seed=7)
    np.testing.assert_array_equal(views, again)
    clean = emb.embed_paths(image_paths[:3])
    assert not np.allclose(views[:, 0], clean)
    assert not np.allclose(views[:, 0], views[:, 1])


def test_device_auto_and_bf16_detection():
    cfg = BackboneConfig(device="auto")
    assert cfg.resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert isinstance(bf16_supported(torch.device("cpu")), bool)


def test_batchnorm_recalibration_rescales_features_and_changes_key(tiny_cfg, image_paths):
    emb = Embedder(tiny_cfg)
    before = emb.embed_paths(image_paths)
    key = emb.key
    emb.recalibrate_batchnorm(image_paths)
    after = emb.embed_paths(image_paths)
    assert emb.key != key and emb.key.startswith("resnet18:sd-")
    assert not np.allclose(before, after)
    # Running statistics now describe these images: the stem's batch-norm sees inputs with its own mean.
    assert not torch.allclose(emb.model.bn1.running_mean, torch.zeros_like(emb.model.bn1.running_mean))
    # Reloading the recalibrated weights reproduces the features exactly.
    again = Embedder(tiny_cfg, state_dict=emb.backbone_state_dict())
    assert again.key == emb.key
    np.testing.assert_array_equal(again.embed_paths(image_paths), after)
