"""Fixtures for the pairs tests: small catalogs across categories and open candidate pairs."""

from __future__ import annotations

import pytest

from tests.factories import make_product

CATEGORIES = (
    "Apparel > Topwear > Shirts",
    "Apparel > Bottomwear > Jeans",
    "Footwear > Shoes > Sneakers",
    "Accessories > Bags > Handbags",
)


@pytest.fixture
def catalog(db):
    """Two products in each of four category groups (8 products)."""
    products = []
    for i, cat in enumerate(CATEGORIES):
        for j in range(2):
            products.append(make_product(category=cat, color=(40 * i, 200 - 40 * j, 90), title=f"{cat.split('>')[-1].strip()} {j}"))
    return products


@pytest.fixture
def make_pairs(db):
    """make_pairs(products, n, audience=...) -> n open pairs of distinct products, priority descending."""
    from curation.pairs.models import CandidatePair

    def _make(products, n, audience="stylist", source="exploration"):
        pairs = []
        for i, pa in enumerate(products):
            for pb in products[i + 1 :]:
                if len(pairs) == n:
                    return pairs
                a, b = sorted((pa.pk, pb.pk))
                pairs.append(
                    CandidatePair.objects.create(a_id=a, b_id=b, source=source, audience=audience, priority=1000 - len(pairs))
                )
        return pairs

    return _make
