"""Augmentation: (a) neighbour pairs, (b) image transforms for banks of augmented feature views.

(a) A positive pair (i, j) suggests that items visually close to i also go with j (and vice
versa); such pairs enter training with a lower weight than observed ones.
(b) Translation, rotation and noise are applied to the decoded image once, and the backbone
features of a few such views are cached per product (Embedder.augmented_views), so training on
augmented data costs no backbone passes.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

MAX_SHIFT = 0.10  # fraction of the image side
MAX_ROTATION = 15.0  # degrees
NOISE_STD = 8.0  # in uint8 grey levels


def augment_image_tensor(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A randomly translated, rotated and noised copy of a uint8 (3,S,S) image; white fill, like catalog photos."""
    size = img.shape[-1]
    dx, dy = (rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2) * size).round().astype(int)
    angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    out = TF.affine(
        img,
        angle=angle,
        translate=[int(dx), int(dy)],
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
        fill=255,
    )
    noise = torch.from_numpy(rng.normal(0.0, NOISE_STD, size=tuple(out.shape)).astype(np.float32))
    return (out.float() + noise).clamp_(0, 255).to(torch.uint8)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(features: np.ndarray, rows: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours (excluding the row itself) of ``rows``: (sims (R,k), idx (R,k))."""
    feats = _normalise(features)
    n = len(feats)
    k = min(k, n - 1)
    sims_out = np.empty((len(rows), max(k, 0)), dtype=np.float32)
    idx_out = np.empty((len(rows), max(k, 0)), dtype=np.int64)
    if k <= 0:
        return sims_out, idx_out
    for start in range(0, len(rows), block):
        r = rows[start : start + block]
        sims = feats[r] @ feats.T
        sims[np.arange(len(r)), r] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_s = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        idx_out[start : start + len(r)] = np.take_along_axis(top, order, axis=1)
        sims_out[start : start + len(r)] = np.take_along_axis(top_s, order, axis=1)
    return sims_out, idx_out


def neighbour_pairs(
    features: np.ndarray,
    pairs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    k: int = 3,
    weight: float = 0.5,
    min_similarity: float = 0.0,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (n, j) and (i, n) for each positive (i, j), n among the k nearest neighbours of i (of j).

    Returns (pairs (M,2) int64 with a < b, weights (M,) float32 = weight * cosine similarity).
    Observed pairs (``pairs`` and ``exclude``) and self-pairs are never produced; duplicates keep
    their highest weight.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(pairs):
            raise ValueError(f"labels has {len(labels)} rows, pairs has {len(pairs)}")
        positives = pairs[labels > 0.5]
    else:
        positives = pairs
    if len(positives) == 0 or k <= 0:
        return np.empty((0, 2), np.int64), np.empty(0, np.float32)
    observed = {(min(a, b), max(a, b)) for a, b in pairs.tolist()}
    if exclude is not None:
        observed |= {(min(a, b), max(a, b)) for a, b in np.asarray(exclude, dtype=np.int64).reshape(-1, 2).tolist()}
    items = np.unique(positives)
    sims, nbrs = nearest_neighbours(features, items, k)
    row_of = {int(item): r for r, item in enumerate(items)}
    best: dict[tuple[int, int], float] = {}
    for a, b in positives.tolist():
        for anchor, partner in ((a, b), (b, a)):
            r = row_of[anchor]
            for n, s in zip(nbrs[r].tolist(), sims[r].tolist()):
                if s < min_similarity or n == partner:
                    continue
                key = (min(n, partner), max(n, partner))
                if key in observed:
                    continue
                w = float(weight) * max(float(s), 0.0)
                if w > best.get(key, -1.0):
                    best[key] = w
    if not best:
        return np.empty((0, 2), np.int64), np.empty(0, np.float32)
    keys = sorted(best)
    return np.array(keys, dtype=np.int64), np.array([best[k_] for k_ in keys], dtype=np.float32)
