"""Reads of the review domain: the flag queue, its numbers, evidence, history, training weights."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from django.conf import settings
from django.db.models import Count, Q, QuerySet

from curation.catalog.models import AttributeChange, Category, CategoryChange, Product
from curation.catalog.selectors import id_chunks
from curation.review.models import CatalogFlag

logger = logging.getLogger(__name__)
State = CatalogFlag.State


def flags_queryset(*, state: str | None = State.OPEN, kind: str | None = None, category: str | None = None,
                   model_version: int | None = None) -> QuerySet[CatalogFlag]:
    """Flags, the catalog values the model doubts most first. ``category`` is a category path: the flag's catalog value is it
    or lies under it; ``model_version`` a ModelVersion id."""
    qs = CatalogFlag.objects.select_related("product", "product__category", "model_version", "decided_by")
    if state:
        qs = qs.filter(state=state)
    if kind:
        qs = qs.filter(kind=kind)
    if category:
        qs = qs.filter(Q(catalog_value=category) | Q(catalog_value__startswith=category + " > "))
    if model_version:
        qs = qs.filter(model_version_id=model_version)
    return qs.order_by("path_ratio", "-confidence", "id")


@dataclass(frozen=True)
class ReviewStats:
    open: int
    fixed: int
    kept: int
    decided: int
    precision: float | None  # fixed / decided; None before the first decision

    def as_dict(self) -> dict:
        return {"open": self.open, "fixed": self.fixed, "kept": self.kept, "decided": self.decided, "precision": self.precision}


def review_stats(*, kind: str | None = None) -> ReviewStats:
    """Header numbers. "Fixed" counts accepted predictions and re-categorisations alike: both say the
    flag found a real catalog error, so precision of past flags = fixed / (fixed + kept)."""
    qs = CatalogFlag.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    counts = dict(qs.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    fixed = counts.get(State.FIXED, 0) + counts.get(State.RECATEGORISED, 0)
    kept = counts.get(State.KEPT, 0)
    decided = fixed + kept
    return ReviewStats(open=counts.get(State.OPEN, 0), fixed=fixed, kept=kept, decided=decided,
                       precision=round(fixed / decided, 4) if decided else None)


def flag_filter_choices() -> dict:
    """Values the review page's filters offer: catalog categories of open flags and model versions."""
    open_flags = CatalogFlag.objects.filter(state=State.OPEN)
    versions = sorted({v for v in open_flags.values_list("model_version_id", flat=True) if v is not None}, reverse=True)
    return {
        "categories": list(Category.objects.values_list("path", flat=True).order_by("path")),
        "kinds": CatalogFlag.Kind.choices,
        "model_versions": versions,
    }


def category_picker_values() -> list[dict]:
    """Every category of the tree for the searchable picker; leaves (where products live) first."""
    rows = list(Category.objects.annotate(n_children=Count("children")).values("id", "path", "level", "n_children"))
    return [{"id": r["id"], "path": r["path"], "leaf": r["n_children"] == 0} for r in sorted(rows, key=lambda r: (r["n_children"] > 0, r["path"]))]


def colour_picker_values() -> list[str]:
    return sorted({c for c in Product.objects.exclude(colour="").values_list("colour", flat=True).distinct()})


def neighbour_evidence(*, product_id: int, kind: str = CatalogFlag.Kind.CATEGORY, k: int = 10) -> dict:
    """What the product's nearest visual neighbours are catalogued as, from the active embeddings.

    Returns {"available": bool, "reason": str, "neighbours": [{sku, title, value, score, image_url}],
    "votes": [{"value", "count"}]}; degrades to available=False when no embeddings are active or
    the product is not embedded yet.
    """
    try:
        from curation.training.serving import active_embeddings

        embeddings = active_embeddings()
    except ImportError:
        return {"available": False, "reason": "The model serving layer is not installed.", "neighbours": [], "votes": []}
    except Exception:  # a broken artifact must not take the review page down with it
        logger.exception("active_embeddings() failed; review shows no neighbour evidence")
        return {"available": False, "reason": "The active embeddings could not be loaded.", "neighbours": [], "votes": []}
    if embeddings is None:
        return {"available": False, "reason": "No embeddings are active yet: train a model first.", "neighbours": [], "votes": []}
    if not embeddings.has(product_id):
        return {"available": False, "reason": "This product is not in the active embeddings yet.", "neighbours": [], "votes": []}
    hits = [(pid, score) for pid, score in embeddings.neighbours(product_id, k + 1) if pid != product_id and pid >= 0][:k]
    products = Product.objects.select_related("category").in_bulk([pid for pid, _ in hits])
    neighbours = []
    for pid, score in hits:
        p = products.get(pid)
        if p is None:
            continue
        value = p.category.path if kind == CatalogFlag.Kind.CATEGORY else p.colour
        neighbours.append({"sku": p.sku, "title": p.title, "value": value, "score": round(float(score), 4),
                           "image_url": p.image.url if p.image else ""})
    votes = Counter(n["value"] for n in neighbours)
    return {"available": True, "reason": "", "neighbours": neighbours,
            "votes": [{"value": v, "count": c} for v, c in votes.most_common()]}


def product_history(*, product: Product) -> list[dict]:
    """A product's category and attribute changes and its flags, newest first, as one timeline."""
    events: list[dict] = []
    for ch in CategoryChange.objects.filter(product=product).select_related("old_category", "new_category", "changed_by"):
        events.append({"at": ch.changed_at, "what": "category", "old": ch.old_category.path if ch.old_category else "",
                       "new": ch.new_category.path, "who": ch.changed_by.username if ch.changed_by else "",
                       "reason": ch.reason, "flag_id": ch.flag_id, "type": "change"})
    for ch in AttributeChange.objects.filter(product=product).select_related("changed_by"):
        events.append({"at": ch.changed_at, "what": ch.attribute, "old": ch.old_value, "new": ch.new_value,
                       "who": ch.changed_by.username if ch.changed_by else "", "reason": ch.reason,
                       "flag_id": ch.flag_id, "type": "change"})
    for flag in CatalogFlag.objects.filter(product=product).select_related("decided_by"):
        events.append({"at": flag.created_at, "what": flag.kind, "old": flag.catalog_value, "new": flag.predicted_value,
                       "who": "model v%s" % flag.model_version_id if flag.model_version_id else "model",
                       "reason": f"flagged at {flag.confidence:.0%}", "flag_id": flag.pk, "type": "flag"})
        if flag.decided_at:
            events.append({"at": flag.decided_at, "what": flag.kind, "old": flag.catalog_value, "new": flag.decided_value,
                           "who": flag.decided_by.username if flag.decided_by else "", "reason": flag.get_state_display(),
                           "flag_id": flag.pk, "type": "decision"})
    # Same instant: the decision reads after the change it caused.
    rank = {"flag": 0, "change": 1, "decision": 2}
    events.sort(key=lambda e: (e["at"], rank[e["type"]], e["flag_id"] or 0), reverse=True)
    return events


def training_sample_weights(product_ids: Sequence[int], *, kind: str = CatalogFlag.Kind.CATEGORY) -> np.ndarray:
    """Per-product sample weights for the next category (or colour) model, aligned with ``product_ids``.

    Products whose value a merchandiser confirmed or fixed (category_verified_at / colour_verified_at)
    weigh REVIEW_VERIFIED_SAMPLE_WEIGHT; the rest 1.0. Their labels are known right, so the model
    should fit them first and they pull look-alike products' predictions their way.
    """
    ids = [int(p) for p in product_ids]
    field = "category_verified_at" if kind == CatalogFlag.Kind.CATEGORY else "colour_verified_at"
    confirmed = Product.objects.filter(**{f"{field}__isnull": False})
    verified = {pid for chunk in id_chunks(ids) for pid in confirmed.filter(id__in=chunk).values_list("id", flat=True)}
    weight = float(settings.REVIEW_VERIFIED_SAMPLE_WEIGHT)
    return np.array([weight if pid in verified else 1.0 for pid in ids], dtype=np.float32)


def flag_quality_against_demo_truth(*, model_version: int | None = None) -> dict:
    """Precision and recall of category flags against the demo catalog's hidden truth (catalog.DemoTruth).

    Flags counted: those raised by ``model_version`` (any state but superseded), or the open ones.
    A flag is right when its product really is miscategorised; ``suggestion_right`` counts right
    flags whose predicted category is the true one (what "accept" would restore).
    """
    from curation.catalog.models import DemoTruth

    truths = {t.product_id: t for t in DemoTruth.objects.select_related("true_category")}
    if not truths:
        raise ValueError("no DemoTruth rows: run `manage.py make_demo_catalog` first")
    flags = CatalogFlag.objects.filter(kind=CatalogFlag.Kind.CATEGORY, product_id__in=list(truths))
    flags = flags.filter(model_version_id=model_version).exclude(state=State.SUPERSEDED) if model_version else flags.filter(state=State.OPEN)
    flagged = {f.product_id: f for f in flags}
    wrong = {pid for pid, t in truths.items() if t.miscategorised}
    hits = wrong & set(flagged)
    suggestion_right = sum(1 for pid in hits if flagged[pid].predicted_value == truths[pid].true_category.path)
    return {
        "products": len(truths),
        "miscategorised": len(wrong),
        "flagged": len(flagged),
        "true_positives": len(hits),
        "precision": round(len(hits) / len(flagged), 4) if flagged else None,
        "recall": round(len(hits) / len(wrong), 4) if wrong else None,
        "suggestion_right": suggestion_right,
    }
