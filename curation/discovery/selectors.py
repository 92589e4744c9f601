"""Discovery reads: similar items, replacements, complete-the-look, search by photo, scores.

Everything model-shaped comes through the door ``curation.training.serving``; this module only
turns product ids into rows and applies the business filters (in stock, same category, slots).
Each answer carries the version of the model that produced it, or a message saying why there is
nothing to show (no active model yet, product not embedded yet).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db.models import Count, Q, QuerySet

from curation.catalog.models import Category, Product

NO_EMBEDDINGS = "No embeddings are active yet: an admin can train and activate a model on the Models page."
NO_PAIR_MODEL = "No siamese pair model is active yet: complete-the-look needs one (train it on the Models page)."
NO_OUTFIT_MODEL = "No outfit scorer is active yet, so no generated outfit."

# What a product card shows (serializers.product_card): list queries read these columns as plain
# values, without building model instances (the similar-items list is the hot path).
CARD_VALUES = ("id", "sku", "title", "brand", "category__path", "colour", "image", "in_stock")

# Search(k, allowed_ids) -> [(product_id, score)], best first.
Search = Callable[[int, "set[int] | None"], list[tuple[int, float]]]


class DiscoveryUnavailable(Exception):
    """The model an answer needs is not active (HTTP 503: try again after training)."""


class DiscoveryInputError(Exception):
    """The request names something that cannot be scored or searched (HTTP 400)."""


@dataclass(frozen=True)
class Card:
    """What a list shows of a product."""

    id: int
    sku: str
    title: str
    brand: str
    category: str
    colour: str
    image: str  # storage name, "" when the product has no image
    in_stock: bool

    @classmethod
    def of(cls, product: Product) -> "Card":
        return cls(
            product.id, product.sku, product.title, product.brand, product.category.path, product.colour,
            product.image.name or "", product.in_stock,
        )


def cards_by_id(queryset: QuerySet, ids: Iterable[int]) -> dict[int, Card]:
    return {row[0]: Card(*row) for row in queryset.filter(id__in=list(ids)).values_list(*CARD_VALUES)}


@dataclass
class Ranked:
    product: Card
    score: float


@dataclass
class ProductList:
    model_version: int | None
    items: list[Ranked] = field(default_factory=list)
    message: str | None = None


@dataclass
class SlotList:
    slot: str
    items: list[Ranked]


@dataclass
class CompleteTheLook:
    pair_model_version: int | None
    outfit_model_version: int | None
    embedding_version: int | None
    slots: list[SlotList] = field(default_factory=list)
    outfit: list[Card] = field(default_factory=list)
    outfit_score: float | None = None
    message: str | None = None
    outfit_message: str | None = None


def _serving():
    # Imported on use: the door loads ml/ (torch, faiss) and a page that never asks for a
    # model should not pay for that import.
    from curation.training import serving

    return serving


def product_by_sku(*, sku: str) -> Product:
    return Product.objects.select_related("category").get(sku=sku)


def _ranked_from_hits(hits: Iterable[tuple[int, float]], queryset: QuerySet, *, exclude: set[int], k: int) -> list[Ranked]:
    """Keep the hits ``queryset`` admits, in hit order, at most ``k``; one query."""
    ordered = [(int(pid), float(score)) for pid, score in hits if int(pid) >= 0 and int(pid) not in exclude]
    if not ordered:
        return []
    rows = cards_by_id(queryset, [pid for pid, _ in ordered])
    ranked = [Ranked(rows[pid], score) for pid, score in ordered if pid in rows]
    return ranked[:k]


def _filtered_search(search: Search, *, queryset: QuerySet, k: int, exclude: set[int]) -> list[Ranked]:
    """The ``k`` best hits that ``queryset`` admits.

    Asking the index for a few times ``k`` and filtering the rows afterwards is one cheap query
    when most of the catalog qualifies (in stock); when the filter is narrow (one category), the
    ids it admits go to the index as ``allowed_ids``, which still returns ``k`` results.
    """
    fetch = (k + len(exclude)) * settings.DISCOVERY_OVERFETCH
    hits = search(fetch, None)
    ranked = _ranked_from_hits(hits, queryset, exclude=exclude, k=k)
    if len(ranked) >= k or len(hits) < fetch:
        return ranked
    allowed = set(queryset.values_list("id", flat=True)) - exclude
    if not allowed:
        return []
    return _ranked_from_hits(search(k, allowed), queryset, exclude=exclude, k=k)


def similar_products(*, product: Product, k: int, in_stock_only: bool = True) -> ProductList:
    """You may also like: the visually nearest products (in stock unless told otherwise)."""
    embeddings = _serving().active_embeddings()
    if embeddings is None:
        return ProductList(None, message=NO_EMBEDDINGS)
    if not embeddings.has(product.id):
        return ProductList(embeddings.version_id, message=_not_embedded(product))
    queryset = Product.objects.filter(in_stock=True) if in_stock_only else Product.objects.all()
    ranked = _filtered_search(
        lambda n, allowed: embeddings.neighbours(product.id, n, allowed_ids=allowed),
        queryset=queryset,
        k=k,
        exclude={product.id},
    )
    return ProductList(embeddings.version_id, ranked, None if ranked else "No similar products found.")


def replacements_for(*, product: Product, k: int) -> ProductList:
    """Replacements for a sold-out product: same category, in stock, most similar first."""
    if product.in_stock:
        return ProductList(None, message=f"{product.sku} is in stock: replacements are listed when it sells out.")
    embeddings = _serving().active_embeddings()
    if embeddings is None:
        return ProductList(None, message=NO_EMBEDDINGS)
    if not embeddings.has(product.id):
        return ProductList(embeddings.version_id, message=_not_embedded(product))
    queryset = Product.objects.filter(in_stock=True, category_id=product.category_id)
    ranked = _filtered_search(
        lambda n, allowed: embeddings.neighbours(product.id, n, allowed_ids=allowed),
        queryset=queryset,
        k=k,
        exclude={product.id},
    )
    message = None if ranked else f"No other product of {product.category.path} is in stock."
    return ProductList(embeddings.version_id, ranked, message)


def _not_embedded(product: Product) -> str:
    return (
        f"{product.sku} has no embedding yet: new products are embedded shortly after they are added "
        "(or at the next retrain)."
    )


# --- Category slots -----------------------------------------------------------------------------


def category_slots() -> dict[int, Category]:
    """category id -> its slot: the ancestor at DISCOVERY_SLOT_LEVEL (or itself when shallower).

    An outfit takes one item per slot (Topwear, Bottomwear, Footwear...). The category table is
    small (hundreds of rows), so the whole tree is read once per call.
    """
    level = settings.DISCOVERY_SLOT_LEVEL
    categories = {c.id: c for c in Category.objects.all()}
    slots: dict[int, Category] = {}
    for cid, node in categories.items():
        cursor = node
        while cursor.level > level and cursor.parent_id in categories:
            cursor = categories[cursor.parent_id]
        slots[cid] = cursor
    return slots


def popular_product_ids(*, category_ids: Sequence[int], limit: int) -> list[int]:
    """In-stock products of these categories most often in curated outfits or positive labels."""
    from curation.pairs.models import CandidatePair, OutfitItem, PairLabel

    counts: Counter[int] = Counter()
    in_scope = Q(product__in_stock=True, product__category_id__in=category_ids)
    for row in (
        OutfitItem.objects.filter(in_scope).values("product_id").annotate(n=Count("id")).order_by("-n")[: limit * 2]
    ):
        counts[row["product_id"]] += row["n"]
    positive = CandidatePair.objects.filter(labels__value=PairLabel.Value.COMPLEMENTARY)
    for side in ("a", "b"):
        rows = (
            positive.filter(**{f"{side}__in_stock": True, f"{side}__category_id__in": category_ids})
            .values(f"{side}_id")
            .annotate(n=Count("labels"))
            .order_by("-n")[: limit * 2]
        )
        for row in rows:
            counts[row[f"{side}_id"]] += row["n"]
    return [pid for pid, _ in counts.most_common(limit)]


def _nearest_by_slot(embeddings, *, product: Product, categories_by_slot: dict[int, list[int]]) -> dict[int, list[int]]:
    """Up to DISCOVERY_SHORTLIST_NEAREST in-stock visual neighbours of ``product`` in each slot.

    One unfiltered search, wide enough to cover every slot in the usual case, bucketed by slot
    with one query; a slot left short falls back to a search restricted to that slot's ids.
    """
    want = settings.DISCOVERY_SHORTLIST_NEAREST
    slot_of = {cid: slot_id for slot_id, cids in categories_by_slot.items() for cid in cids}
    fetch = want * (len(categories_by_slot) + 1) * settings.DISCOVERY_OVERFETCH
    hits = [pid for pid, _ in embeddings.neighbours(product.id, fetch) if pid >= 0]
    rows = dict(
        Product.objects.filter(id__in=hits, in_stock=True, category_id__in=list(slot_of)).values_list("id", "category_id")
    )
    nearest: dict[int, list[int]] = {slot_id: [] for slot_id in categories_by_slot}
    for pid in hits:
        if pid in rows and len(nearest[slot_of[rows[pid]]]) < want:
            nearest[slot_of[rows[pid]]].append(pid)
    if len(hits) < fetch:
        return nearest  # the whole index was searched: nothing more to find
    for slot_id, found in nearest.items():
        if len(found) < max(1, want // 2):
            allowed = set(
                Product.objects.filter(in_stock=True, category_id__in=categories_by_slot[slot_id]).values_list("id", flat=True)
            )
            if allowed:
                nearest[slot_id] = [pid for pid, _ in embeddings.neighbours(product.id, want, allowed_ids=allowed) if pid >= 0]
    return nearest


def complete_the_look(*, product: Product, per_slot: int) -> CompleteTheLook:
    """For each other slot, the items the siamese model scores highest with ``product``, and an
    outfit (one item per slot) chosen by the outfit scorer.

    Scoring every catalog item would not be fast, so each slot's candidates are a shortlist: the
    product's visual neighbours within the slot plus the slot's most popular items.
    """
    serving = _serving()
    embeddings = serving.active_embeddings()
    pair_scorer = serving.active_pair_scorer()
    outfit_scorer = serving.active_outfit_scorer()
    result = CompleteTheLook(
        pair_model_version=pair_scorer.version_id if pair_scorer else None,
        outfit_model_version=outfit_scorer.version_id if outfit_scorer else None,
        embedding_version=embeddings.version_id if embeddings else None,
    )
    if embeddings is None:
        result.message = NO_EMBEDDINGS
        return result
    if pair_scorer is None:
        result.message = NO_PAIR_MODEL
        return result
    if not embeddings.has(product.id):
        result.message = _not_embedded(product)
        return result

    slots = category_slots()
    own_slot = slots[product.category_id]
    categories_by_slot: dict[int, list[int]] = {}
    slot_nodes: dict[int, Category] = {}
    for cid, slot in slots.items():
        if slot.id != own_slot.id:
            categories_by_slot.setdefault(slot.id, []).append(cid)
            slot_nodes[slot.id] = slot

    nearest_by_slot = _nearest_by_slot(embeddings, product=product, categories_by_slot=categories_by_slot)
    candidates_by_slot: dict[int, list[int]] = {}
    for slot_id, category_ids in categories_by_slot.items():
        popular = popular_product_ids(category_ids=category_ids, limit=settings.DISCOVERY_SHORTLIST_POPULAR)
        shortlist = [pid for pid in dict.fromkeys(nearest_by_slot.get(slot_id, []) + popular) if embeddings.has(pid)]
        if shortlist:
            candidates_by_slot[slot_id] = shortlist
    if not candidates_by_slot:
        result.message = "No in-stock products in other category slots to complete the look with."
        return result

    flat = [(slot_id, pid) for slot_id, pids in candidates_by_slot.items() for pid in pids]
    scores = np.asarray(pair_scorer.score([(product.id, pid) for _, pid in flat]), dtype=float).reshape(-1)
    by_slot: dict[int, list[tuple[int, float]]] = {}
    for (slot_id, pid), score in zip(flat, scores):
        if np.isfinite(score):  # NaN: the scorer has no features for this product
            by_slot.setdefault(slot_id, []).append((pid, float(score)))
    if not by_slot:
        result.message = "The pair model could not score any candidate for this product."
        return result
    rows = cards_by_id(Product.objects.all(), [pid for _, pid in flat])
    for slot_id in sorted(by_slot, key=lambda s: slot_nodes[s].path):
        best = sorted(by_slot[slot_id], key=lambda item: -item[1])[:per_slot]
        result.slots.append(SlotList(slot_nodes[slot_id].name, [Ranked(rows[pid], score) for pid, score in best]))

    if outfit_scorer is None:
        result.outfit_message = NO_OUTFIT_MODEL
        return result
    # The outfit scorer chooses among each slot's best pair-scored candidates.
    pool = {
        slot_nodes[slot_id].name: [pid for pid, _ in sorted(by_slot[slot_id], key=lambda item: -item[1])[: settings.DISCOVERY_OUTFIT_POOL]]
        for slot_id in by_slot
    }
    chosen = outfit_scorer.complete(given=[product.id], candidates_by_slot=pool, top=1)
    outfit_ids = [product.id] + [int(hits[0][0]) for slot, hits in sorted(chosen.items()) if hits]
    result.outfit = [Card.of(product)] + [rows[pid] for pid in outfit_ids[1:] if pid in rows]
    result.outfit_score = float(np.asarray(outfit_scorer.score([outfit_ids]), dtype=float).reshape(-1)[0])
    return result


# --- Search by photo ----------------------------------------------------------------------------


def categories_matching(*, names: Sequence[str]) -> list[int]:
    """Category ids for ids or paths ("Apparel > Topwear"), each with its descendants."""
    ids: set[int] = set()
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if name.isdigit():
            node = Category.objects.filter(pk=int(name)).first()
        else:
            node = Category.objects.filter(Q(path__iexact=name) | Q(name__iexact=name)).order_by("level").first()
        if node is None:
            raise DiscoveryInputError(f"Unknown category {name!r}: use a category id or its path, e.g. 'Apparel > Topwear'.")
        ids.update(
            Category.objects.filter(Q(pk=node.pk) | Q(path__startswith=node.path + " > ")).values_list("id", flat=True)
        )
    return sorted(ids)


def photo_search(*, image, k: int, category_ids: Sequence[int] | None = None) -> ProductList:
    """The in-stock products most similar to a photo (a PIL image), optionally within categories."""
    serving = _serving()
    embeddings = serving.active_embeddings()
    if embeddings is None:
        raise DiscoveryUnavailable(NO_EMBEDDINGS)
    vector = np.asarray(serving.embed_images([image]), dtype=np.float32)[0]
    queryset = Product.objects.filter(in_stock=True)
    if category_ids:
        queryset = queryset.filter(category_id__in=category_ids)
    ranked = _filtered_search(
        lambda n, allowed: embeddings.search_vector(vector, n, allowed_ids=allowed), queryset=queryset, k=k, exclude=set()
    )
    return ProductList(embeddings.version_id, ranked, None if ranked else "No in-stock product matches.")


# --- Scores -------------------------------------------------------------------------------------


def products_for_skus(*, skus: Sequence[str]) -> list[Product]:
    """The products for ``skus``, in order; unknown or repeated skus are named in the error."""
    cleaned = [str(s).strip() for s in skus]
    repeated = sorted({s for s in cleaned if cleaned.count(s) > 1})
    if repeated:
        raise DiscoveryInputError(f"Each sku may appear once; repeated: {', '.join(repeated)}.")
    rows = {p.sku: p for p in Product.objects.select_related("category").filter(sku__in=cleaned)}
    unknown = [s for s in cleaned if s not in rows]
    if unknown:
        raise DiscoveryInputError(f"Unknown sku: {', '.join(unknown)}.")
    return [rows[s] for s in cleaned]


def _require_embedded(products: Sequence[Product]) -> None:
    embeddings = _serving().active_embeddings()
    if embeddings is None:
        raise DiscoveryUnavailable(NO_EMBEDDINGS)
    missing = [p.sku for p in products if not embeddings.has(p.id)]
    if missing:
        raise DiscoveryInputError(f"No embedding yet for: {', '.join(missing)} (new products are embedded shortly after import).")


def pair_score(*, sku_a: str, sku_b: str) -> tuple[list[Product], float, int]:
    """f(a, b) from the active siamese model: (products, score, model version)."""
    products = products_for_skus(skus=[sku_a, sku_b])
    scorer = _serving().active_pair_scorer()
    if scorer is None:
        raise DiscoveryUnavailable(NO_PAIR_MODEL)
    _require_embedded(products)
    score = float(np.asarray(scorer.score([(products[0].id, products[1].id)]), dtype=float).reshape(-1)[0])
    return products, score, scorer.version_id


def outfit_score(*, skus: Sequence[str]) -> tuple[list[Product], float, int]:
    """f(i, j, k, ...) from the active outfit scorer: (products, score, model version)."""
    products = products_for_skus(skus=skus)
    scorer = _serving().active_outfit_scorer()
    if scorer is None:
        raise DiscoveryUnavailable("No outfit scorer is active yet: train one on the Models page.")
    _require_embedded(products)
    score = float(np.asarray(scorer.score([[p.id for p in products]]), dtype=float).reshape(-1)[0])
    return products, score, scorer.version_id
