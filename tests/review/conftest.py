"""Fixtures of the review tests: a tiny catalog with two categories and a category model version."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import category_path, make_product

SHIRTS = "Apparel > Topwear > Shirts"
JEANS = "Apparel > Bottomwear > Jeans"
SHOES = "Footwear > Shoes > Sneakers"
CLASSES = [SHIRTS, JEANS, SHOES]


@pytest.fixture(autouse=True)
def coarse_flag_thresholds(settings):
    """The fixtures' probabilities are coarse (three classes, the rest of the mass spread evenly):
    a 0.7 disagreement between shirts and jeans has a path ratio of 0.36, so the unit tests raise
    flags at <= 0.4 (and flag a confirmed value again at <= 0.03), not at the production defaults."""
    settings.FLAG_MAX_PATH_RATIO = settings.FLAG_COLOUR_MAX_PATH_RATIO = 0.4
    settings.FLAG_REFLAG_MAX_PATH_RATIO = settings.FLAG_COLOUR_REFLAG_MAX_PATH_RATIO = 0.03


@pytest.fixture
def model_version(db):
    from curation.training.models import ModelVersion

    return ModelVersion.objects.create(kind=ModelVersion.Kind.CATEGORY, status=ModelVersion.Status.READY)


@pytest.fixture
def catalog(db):
    """Six products: p[0..2] shirts, p[3..4] jeans, p[5] shoes; every leaf exists in the tree."""
    for path in CLASSES:
        category_path(path)
    return [
        make_product(SHIRTS, colour="Red"), make_product(SHIRTS, colour="Blue"), make_product(SHIRTS, colour="Red"),
        make_product(JEANS, colour="Blue"), make_product(JEANS, colour="Black"), make_product(SHOES, colour="White"),
    ]


def one_hot_proba(rows: list[tuple[int, float]], n_classes: int = 3) -> np.ndarray:
    """Each row: (top class, its probability); the rest of the mass spread over the other classes."""
    proba = np.zeros((len(rows), n_classes))
    for i, (cls, p) in enumerate(rows):
        proba[i, :] = (1 - p) / (n_classes - 1)
        proba[i, cls] = p
    return proba


@pytest.fixture
def raise_flags(catalog, model_version):
    """raise_flags({product_index: (class index, probability)}) -> RefreshResult, over the whole catalog;
    products not named are predicted as their own category at 0.9."""
    from curation.review.services import flags_refresh

    def _raise(predictions: dict[int, tuple[int, float]], version=None):
        rows = []
        for i, product in enumerate(catalog):
            own = CLASSES.index(product.category.path) if product.category.path in CLASSES else 0
            rows.append(predictions.get(i, (own, 0.9)))
        return flags_refresh(model_version=version or model_version, kind="category",
                             product_ids=[p.id for p in catalog], proba=one_hot_proba(rows), class_values=CLASSES)

    return _raise
