"""Reads for the training app: what the pipeline learns from, what the models page shows."""

from __future__ import annotations

from datetime import datetime
from itertools import combinations

from django.db.models import Max

from curation.catalog.models import Product
from curation.catalog.selectors import id_chunks
from curation.pairs.models import Outfit, OutfitItem, PairLabel
from curation.training.models import EmbeddingSet, ModelVersion, PipelineRun

# (a_id, b_id, value 0/1, weight, source)
TrainingPair = tuple[int, int, int, float, str]


def training_pairs() -> list[TrainingPair]:
    """Every labelled pair the siamese model learns from (docs/contracts.md).

    The pairs app owns the rule (stylist labels win, outfit pairs, crowd aggregates weighted by
    their confidence); this reads its selector (docs/contracts.md).
    """
    from curation.pairs.selectors import training_pairs as pairs_app_training_pairs

    return [(int(a), int(b), int(v), float(w), str(s)) for a, b, v, w, s in pairs_app_training_pairs()]


def training_outfits() -> list[list[int]]:
    """Curated outfits as lists of product ids (outfits of fewer than two products are useless)."""
    items: dict[int, list[int]] = {}
    for outfit_id, product_id in OutfitItem.objects.order_by("outfit_id", "position", "id").values_list("outfit_id", "product_id"):
        items.setdefault(outfit_id, []).append(product_id)
    return [ids for ids in items.values() if len(ids) >= 2]


# Side attributes that are Product columns; any other name is a key of Product.attributes.
PRODUCT_ATTRIBUTE_FIELDS = ("gender", "usage", "season", "colour", "brand")


# What TRAIN_SIDE_ATTRIBUTES=auto reads besides every imported attribute: the descriptive product
# columns. Brand is left to be named: hundreds of brands say little about what goes together.
AUTO_SIDE_ATTRIBUTE_FIELDS = ("gender", "usage", "season", "colour")


def imported_attribute_names() -> list[str]:
    """Every key of the products' imported attributes (``import_catalog --attribute-columns``), sorted.
    (One pass over the catalog's attribute dicts, once per training run.)"""
    keys = {key for attrs in Product.objects.values_list("attributes", flat=True).iterator(chunk_size=5000)
            if isinstance(attrs, dict) for key in attrs}
    return sorted(str(key) for key in keys)


def side_attribute_names(setting) -> list[str]:
    """The side-attribute names TRAIN_SIDE_ATTRIBUTES asks for, in order, without repeats: "auto"
    stands for the descriptive product columns then every imported attribute (an unknown catalog's
    own properties, e.g. pattern or material, are read without naming them)."""
    names: list[str] = []
    for name in setting:
        expanded = [*AUTO_SIDE_ATTRIBUTE_FIELDS, *imported_attribute_names()] if str(name).lower() == "auto" else [str(name)]
        names.extend(n for n in expanded if n not in names)
    return names


def product_attribute_values(product_ids, names) -> list[tuple[str, ...]]:
    """Each product's values of the named side attributes, in the order of ``product_ids`` ("" where
    a product has none, or no longer exists)."""
    return product_categories_and_attributes(product_ids, names)[1]


def product_categories_and_attributes(product_ids, names) -> tuple[list[int], list[tuple[str, ...]]]:
    """Each product's category id (-1 where it no longer exists) and its values of the named side
    attributes ("" where it has none), in the order of ``product_ids``: one query per 5,000 products
    for both (``id_chunks``), as a type-aware pair model reads both on every request."""
    names = list(names)
    fields = [n for n in names if n in PRODUCT_ATTRIBUTE_FIELDS]
    extra = [n for n in names if n not in PRODUCT_ATTRIBUTE_FIELDS]
    ids = [int(p) for p in product_ids]
    found: dict[int, tuple[int, tuple[str, ...]]] = {}
    for chunk in id_chunks(ids):
        rows = Product.objects.filter(id__in=chunk).values_list("id", "category_id", *fields, "attributes")
        for pid, category_id, *values, attributes in rows:
            by_name = dict(zip(fields, values))
            attributes = attributes if isinstance(attributes, dict) else {}
            by_name.update({n: attributes.get(n) for n in extra})
            found[pid] = (category_id, tuple("" if by_name[n] is None else str(by_name[n]) for n in names))
    missing = (-1, ("",) * len(names))
    rows = [found.get(p, missing) for p in ids]
    return [category for category, _ in rows], [values for _, values in rows]


def outfit_pairs(outfits: list[list[int]]) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for ids in outfits for a, b in combinations(ids, 2) if a != b}


def newest_label_time() -> datetime | None:
    """The newest label of any source: a pair label or an outfit change."""
    times = [
        PairLabel.objects.aggregate(t=Max("created_at"))["t"],
        Outfit.objects.aggregate(t=Max("updated_at"))["t"],
    ]
    try:
        from curation.crowd.models import AggregatedLabel

        times.append(AggregatedLabel.objects.aggregate(t=Max("computed_at"))["t"])
    except ImportError:  # the crowd app is optional for the registry
        pass
    times = [t for t in times if t is not None]
    return max(times) if times else None


def labels_since(when: datetime | None) -> int:
    """How many pair labels and outfits arrived after ``when`` (all of them when None)."""
    labels = PairLabel.objects.all()
    outfits = Outfit.objects.all()
    if when is not None:
        labels = labels.filter(created_at__gt=when)
        outfits = outfits.filter(updated_at__gt=when)
    return labels.count() + outfits.count()


def active_version(kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).select_related("embedding_set").first()


def any_active_model() -> bool:
    return ModelVersion.objects.filter(
        status=ModelVersion.Status.ACTIVE, kind__in=[ModelVersion.Kind.SIAMESE, ModelVersion.Kind.CATEGORY]
    ).exists()


def new_labels_since_active() -> int:
    """Labels newer than those the active siamese model was trained on."""
    active = active_version(ModelVersion.Kind.SIAMESE)
    return labels_since(active.newest_label_at if active else None)


def run_in_flight() -> PipelineRun | None:
    return PipelineRun.objects.filter(status__in=[PipelineRun.Status.QUEUED, PipelineRun.Status.RUNNING]).first()


def versions_for_page(*, limit: int = 60):
    return ModelVersion.objects.select_related("run", "embedding_set").order_by("-created_at", "-id")[:limit]


def runs_recent(*, limit: int = 20):
    return PipelineRun.objects.select_related("requested_by").order_by("-created_at", "-id")[:limit]


def active_embedding_set() -> EmbeddingSet | None:
    return EmbeddingSet.objects.filter(is_active=True).first()


def catalog_size() -> int:
    return Product.objects.count()
