import numpy as np
import pytest
import torch

from ml.augment import augment_image_tensor, neighbour_pairs
from ml.metrics import (
    category_cooccurrence_baseline,
    fitb_accuracy,
    flag_precision_recall,
    macro_auc_by_category_pair,
    precision_at_k,
    roc_auc,
    top_k_accuracy,
)


def test_neighbour_pairs_follow_visual_neighbours_with_lower_weight():
    # Items 0,1,2 look alike, as do 3,4,5; (0, 3) is an observed pair.
    feats = np.array([[1, 0], [0.99, 0.1], [0.98, 0.15], [0, 1], [0.1, 0.99], [0.15, 0.98]], np.float32)
    pairs, weights = neighbour_pairs(feats, np.array([[0, 3]]), k=2, weight=0.5)
    got = {tuple(p) for p in pairs.tolist()}
    assert got == {(1, 3), (2, 3), (0, 4), (0, 5)}
    assert (weights > 0).all() and (weights <= 0.5).all()
    # Observed and excluded pairs are never produced; negatives do not seed neighbours.
    pairs, _ = neighbour_pairs(feats, np.array([[0, 3], [1, 4]]), labels=np.array([1, 0]), k=2, exclude=np.array([[1, 3]]))
    got = {tuple(p) for p in pairs.tolist()}
    assert (1, 3) not in got and (1, 4) not in got and (2, 3) in got


def test_image_augmentation_moves_pixels_and_is_seeded():
    img = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    img[:, 8:24, 12:20] = 0
    a = augment_image_tensor(img, np.random.default_rng(1))
    b = augment_image_tensor(img, np.random.default_rng(1))
    c = augment_image_tensor(img, np.random.default_rng(2))
    assert a.dtype == torch.uint8 and a.shape == img.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a.float() - img.float()).abs().mean() > 5


def test_roc_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_top_k_and_precision_at_k():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert top_k_accuracy([1, 0], proba, k=1) == 0.0
    assert top_k_accuracy([1, 0], proba, k=2) == 0.5
    assert precision_at_k([1, 2], [[1, 1, 2], [2, 0, 0]]) == pytest.approx(3 / 6)


def test_macro_auc_by_category_pair_and_cooccurrence_baseline():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.6])
    res = macro_auc_by_category_pair(labels, scores, [0, 0, 1, 1, 0, 0], [1, 1, 2, 2, 1, 1])
    assert res["pairs"] == 2 and res["macro_auc"] == pytest.approx((1.0 + 0.0) / 2)
    cats = np.array([0, 1, 2, 0])
    base = category_cooccurrence_baseline(np.array([[0, 1], [3, 1], [0, 2]]), np.array([1, 1, 0]), cats, np.array([[3, 1], [0, 2], [1, 2]]))
    assert base[0] > base[2] > base[1]


def test_fitb_and_flags():
    assert fitb_accuracy([[0.9, 0.1, 0.2], [0.3, 0.5, 0.1], [0.5, 0.5, 0.1]]) == pytest.approx(1 / 3)
    p, r = flag_precision_recall([1, 1, 0, 0], [1, 0, 1, 0])
    assert (p, r) == (0.5, 0.5)
