"""Crowd fixtures: many pairs cheaply (products without image files), gold pairs with a stylist's
label, crowd workers."""

from __future__ import annotations

import itertools

import pytest

from tests.factories import category_path

_sku = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    # Throttle history lives in the cache; each test starts with none.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def make_products(n: int):
    from curation.catalog.models import Product

    category = category_path("Apparel > Topwear > Shirts")
    start = next(_sku) * 100_000
    Product.objects.bulk_create(
        [Product(sku=f"CRW{start + i}", title=f"Crowd product {i}", brand="Acme", colour="Blue", category=category) for i in range(n)]
    )
    return list(Product.objects.filter(sku__startswith="CRW").order_by("id"))[-n:]


def make_pairs(n: int, *, audience="crowd", state="open", source="exploration", is_gold=False, products=None):
    """n distinct unordered pairs over a small product set."""
    from curation.pairs.models import CandidatePair

    size = 2
    while size * (size - 1) // 2 < n:
        size += 1
    products = products or make_products(size)
    combos = list(itertools.combinations(products, 2))[:n]
    pairs = [
        CandidatePair(a=min(p, q, key=lambda x: x.id), b=max(p, q, key=lambda x: x.id), source=source, audience=audience,
                      state=state, is_gold=is_gold, priority=0.5, model_score=0.42)
        for p, q in combos
    ]
    CandidatePair.objects.bulk_create(pairs)
    return list(CandidatePair.objects.filter(audience=audience, state=state, is_gold=is_gold).order_by("-id")[:n])[::-1]


def make_gold(n: int, stylist, *, values=None):
    """n decided pairs a stylist labelled, marked gold; values cycle yes/no unless given."""
    from curation.pairs.models import PairLabel

    pairs = make_pairs(n, audience="stylist", state="decided", source="similar", is_gold=True)
    values = values or ["yes" if i % 2 == 0 else "no" for i in range(n)]
    PairLabel.objects.bulk_create([PairLabel(pair=p, user=stylist, kind="stylist", value=v) for p, v in zip(pairs, values)])
    return {p.id: v for p, v in zip(pairs, values)}


@pytest.fixture
def crowd_workers(make_user):
    def _make(n: int, prefix: str = "worker"):
        return [make_user("crowd", f"{prefix}{i}") for i in range(n)]

    return _make


@pytest.fixture
def stylist(make_user):
    return make_user("stylist", "gold-stylist")
