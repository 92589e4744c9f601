"""Tiny data for the ml/ tests: a handful of generated images, small feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from ml.config import BackboneConfig
from tests.factories import write_image

COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (230, 200, 40)]


@pytest.fixture
def tiny_cfg() -> BackboneConfig:
    return BackboneConfig(name="resnet18", weights="none", image_size=32, device="cpu", batch_size=4, num_workers=0, bf16=False)


@pytest.fixture
def image_paths(tmp_path):
    """Eight small images: four colours x two shapes, two of them PNG and not square."""
    paths = []
    for n in range(8):
        fmt = "PNG" if n % 4 == 3 else "JPEG"
        ext = "png" if fmt == "PNG" else "jpg"
        paths.append(
            write_image(tmp_path / f"img{n}.{ext}", color=COLOURS[n % 4], shape="rect" if n < 4 else "ellipse", fmt=fmt, size=(40, 56))
        )
    return paths


@pytest.fixture
def clustered():
    """(features (N,16), labels (N,)): four well-separated classes."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    labels = np.repeat(np.arange(4), 30)
    feats = (centres[labels] + rng.normal(size=(len(labels), 16))).astype(np.float32)
    return feats, labels


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a shared machine spinning threads cost a lot."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
