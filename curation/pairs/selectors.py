"""Reads of the pairs domain: payloads for the labeling page, training pairs, exports."""

from __future__ import annotations

from itertools import combinations
from typing import Iterator

from django.db.models import Q, QuerySet

from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel

# --- Payloads (the labeling JSON of docs/contracts.md) ------------------------------------------


def product_card(product) -> dict:
    return {
        "id": product.pk,
        "sku": product.sku,
        "title": product.title,
        "brand": product.brand,
        "category": product.category.path if product.category_id else "",
        "colour": product.colour,
        "image_url": product.image.url if product.image else "",
    }


def pair_payload(pair: CandidatePair | None, *, blind: bool = False) -> dict | None:
    """PAIR of the contract; ``blind`` (the crowd) leaves out where it came from and the score."""
    if pair is None:
        return None
    data = {"id": pair.pk, "a": product_card(pair.a), "b": product_card(pair.b)}
    if not blind:
        data["source"] = pair.source
        data["model_score"] = pair.model_score
    return data


def pairs_with_products(qs: QuerySet) -> QuerySet:
    return qs.select_related("a__category", "b__category")


# --- Training data ------------------------------------------------------------------------------


def outfit_pairs() -> set[tuple[int, int]]:
    """Every unordered pair inside a curated outfit, as (smaller id, larger id)."""
    by_outfit: dict[int, list[int]] = {}
    for outfit_id, product_id in OutfitItem.objects.values_list("outfit_id", "product_id").order_by("outfit_id", "position"):
        by_outfit.setdefault(outfit_id, []).append(product_id)
    pairs: set[tuple[int, int]] = set()
    for ids in by_outfit.values():
        for a, b in combinations(sorted(set(ids)), 2):
            pairs.add((a, b))
    return pairs


def _stylist_decisions() -> dict[tuple[int, int], int]:
    """(a, b) -> 1/0 from stylist labels; when stylists disagree the majority wins, then the latest."""
    votes: dict[tuple[int, int], list[tuple[int, object]]] = {}
    rows = PairLabel.objects.filter(kind=PairLabel.Kind.STYLIST).values_list("pair__a_id", "pair__b_id", "value", "created_at")
    for a, b, value, at in rows:
        votes.setdefault((a, b), []).append((1 if value == PairLabel.Value.COMPLEMENTARY else 0, at))
    out = {}
    for key, vs in votes.items():
        yes = sum(v for v, _ in vs)
        no = len(vs) - yes
        out[key] = 1 if yes > no else 0 if no > yes else max(vs, key=lambda t: t[1])[0]
    return out


def training_pairs() -> list[tuple[int, int, int, float, str]]:
    """(a_id, b_id, value 0/1, weight, source) for the siamese model, one row per pair.

    Stylist labels win over everything (weight 1); outfit pairs are positives (weight 1); crowd
    aggregates count with their confidence as weight, except escalated ones, which wait for a
    stylist (and once a stylist has decided, the stylist row is the one used).
    """
    from curation.crowd.models import AggregatedLabel

    rows: dict[tuple[int, int], tuple[int, int, int, float, str]] = {}
    for (a, b), value in _stylist_decisions().items():
        rows[(a, b)] = (a, b, value, 1.0, "stylist")
    for a, b in outfit_pairs():
        rows.setdefault((a, b), (a, b, 1, 1.0, "outfit"))
    crowd = AggregatedLabel.objects.filter(escalated=False).values_list("pair__a_id", "pair__b_id", "value", "confidence")
    for a, b, value, confidence in crowd:
        rows.setdefault((a, b), (a, b, 1 if value == PairLabel.Value.COMPLEMENTARY else 0, float(confidence), "crowd"))
    return sorted(rows.values())


def positive_pairs() -> list[tuple[int, int]]:
    """Known complementary pairs, the seeds of "similar to observed" candidates."""
    return [(a, b) for a, b, value, _, _ in training_pairs() if value == 1]


# --- Outfits and product search ------------------------------------------------------------------


def outfits_visible() -> QuerySet:
    return Outfit.objects.select_related("created_by").prefetch_related("items__product__category")


def outfit_payload(outfit: Outfit) -> dict:
    return {
        "id": outfit.pk,
        "name": outfit.name,
        "external_id": outfit.external_id,
        "source": outfit.source,
        "created_by": outfit.created_by.username if outfit.created_by else None,
        "created_at": outfit.created_at.isoformat(),
        "updated_at": outfit.updated_at.isoformat(),
        "items": [product_card(item.product) for item in outfit.items.all()],
    }


def products_search(*, q: str = "", category: str = "", colour: str = "", limit: int = 40) -> QuerySet:
    """Products for the outfit builder: words of ``q`` in title, brand or sku (all must match);
    ``category`` matches any level of the category path; ``colour`` is exact (any case)."""
    from curation.catalog.models import Product

    qs = Product.objects.select_related("category")
    for word in q.split():
        qs = qs.filter(Q(title__icontains=word) | Q(brand__icontains=word) | Q(sku__iexact=word))
    if category:
        qs = qs.filter(category__path__icontains=category)
    if colour:
        qs = qs.filter(colour__iexact=colour)
    return qs.order_by("title", "id")[:limit]


# --- Exports ------------------------------------------------------------------------------------

LABEL_EXPORT_FIELDS = (
    "label_id", "pair_id", "a_sku", "b_sku", "value", "kind", "reasons", "note",
    "duration_ms", "user", "labeled_at", "pair_source", "pair_state",
)
OUTFIT_EXPORT_FIELDS = ("outfit_id", "external_id", "name", "source", "created_by", "created_at", "updated_at", "position", "sku")


def labels_export_rows() -> Iterator[dict]:
    """Every pair label, who and when, oldest first (streamed: no list of all rows in memory)."""
    qs = (
        PairLabel.objects.order_by("created_at", "id")
        .values_list(
            "id", "pair_id", "pair__a__sku", "pair__b__sku", "value", "kind", "reasons", "note",
            "duration_ms", "user__username", "created_at", "pair__source", "pair__state",
        )
    )
    for row in qs.iterator(chunk_size=2000):
        data = dict(zip(LABEL_EXPORT_FIELDS, row))
        data["labeled_at"] = data["labeled_at"].isoformat()
        yield data


def outfits_export_rows() -> Iterator[dict]:
    """One row per outfit item, with the outfit's who/when."""
    qs = OutfitItem.objects.order_by("outfit_id", "position", "id").values_list(
        "outfit_id", "outfit__external_id", "outfit__name", "outfit__source", "outfit__created_by__username",
        "outfit__created_at", "outfit__updated_at", "position", "product__sku",
    )
    for row in qs.iterator(chunk_size=2000):
        data = dict(zip(OUTFIT_EXPORT_FIELDS, row))
        data["created_at"] = data["created_at"].isoformat()
        data["updated_at"] = data["updated_at"].isoformat()
        yield data
