"""Catalog-error flags: raising them after a model run, and the merchandiser's decisions.

Every write of the review domain happens here. A decision changes the product, writes the audit
row (catalog.CategoryChange or catalog.AttributeChange) and closes the flag in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from curation.catalog.models import Category, Product
from curation.catalog.selectors import id_chunks
from curation.review.models import CatalogFlag

Kind = CatalogFlag.Kind
State = CatalogFlag.State
DECIDED_STATES = (State.FIXED, State.RECATEGORISED, State.KEPT)

ACCEPT = "accept"
KEEP = "keep"
CHOOSE = "choose"
ACTIONS = (ACCEPT, KEEP, CHOOSE)
TOP_K = 3
SEP = " > "  # Category.path separator


class ReviewError(ValueError):
    """A decision or a refresh that cannot be applied; the message says why."""


class FlagConflict(ReviewError):
    """The flag is no longer open, or the product changed since the flag was raised."""


@dataclass(frozen=True)
class RefreshResult:
    created: int
    superseded: int
    skipped_confirmed: int
    compared: int


# --- Raising flags ------------------------------------------------------------------------------


def _product_value(product: Product, kind: str) -> str:
    return product.category.path if kind == Kind.CATEGORY else product.colour


def _class_values_as_text(*, kind: str, class_values: Sequence) -> list[str]:
    """Category classes may come as Category ids or paths; flags store paths (what people read)."""
    values = list(class_values)
    if kind != Kind.CATEGORY:
        return [str(v) for v in values]
    ids = [v for v in values if isinstance(v, (int, np.integer))]
    paths_by_id = dict(Category.objects.filter(id__in=ids).values_list("id", "path")) if ids else {}
    known_paths = set(Category.objects.filter(path__in=[v for v in values if isinstance(v, str)]).values_list("path", flat=True))
    text: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, (int, np.integer)):
            if int(value) not in paths_by_id:
                raise ReviewError(f"class_values[{i}]: no category with id {int(value)}")
            text.append(paths_by_id[int(value)])
        elif isinstance(value, str):
            if value not in known_paths:
                raise ReviewError(f"class_values[{i}]: no category with path {value!r}")
            text.append(value)
        else:
            raise ReviewError(f"class_values[{i}]: expected a category id or path, got {type(value).__name__}")
    return text


def _confirmed_values(*, kind: str, product_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(product, value) pairs a merchandiser decided on: kept, accepted or chose that value."""
    decided = CatalogFlag.objects.filter(kind=kind, state__in=DECIDED_STATES)
    return {row for chunk in id_chunks(product_ids) for row in decided.filter(product_id__in=chunk).values_list("product_id", "decided_value")}


def _path_ratios(proba: np.ndarray, values: Sequence[str], current: Sequence[str], *, hierarchical: bool) -> np.ndarray:
    """Per row, how far the catalog value is from what the model would say: the geometric mean,
    over the levels of the catalog value's path ("Apparel", "Apparel > Topwear", "Apparel > Topwear
    > Shirts"), of p(the catalog's node) / p(the likeliest node of that level), where a node's
    probability is the sum of its leaves'. 1 = the model agrees at every level; a random wrong
    category usually breaks a parent level too, which is why this beats the leaf alone. Colours
    have one level. A value the model has no class for counts as probability 1e-6."""
    def split(value: str) -> list[str]:
        parts = value.split(SEP) if hierarchical else [value]
        return [SEP.join(parts[: i + 1]) for i in range(len(parts))]

    class_nodes = [split(v) for v in values]
    depth = max((len(n) for n in class_nodes), default=0)
    levels = []  # per level: (probability of every node, of the likeliest node, node -> column)
    for level in range(depth):
        column: dict[str, int] = {}
        leaf_to_node = np.array([column.setdefault(n[min(level, len(n) - 1)], len(column)) for n in class_nodes])
        node_proba = proba @ np.eye(len(column))[leaf_to_node]  # (N, leaves) x (leaves, nodes): sums of leaves
        levels.append((node_proba, node_proba.max(1), column))
    out = np.ones(len(proba))
    for row, value in enumerate(current):
        logs = []
        for level, node in enumerate(split(value)[:depth]):
            node_proba, top, column = levels[level]
            p_given = node_proba[row, column[node]] if node in column else 0.0
            logs.append(np.log(max(p_given, 1e-6) / max(top[row], 1e-6)))
        out[row] = float(np.exp(np.mean(logs))) if logs else 1.0
    return out


def flags_refresh(*, model_version, kind: str, product_ids: Sequence[int], proba: np.ndarray, class_values: Sequence) -> RefreshResult:
    """Raise flags from one out-of-fold model run (called by the training pipeline).

    A product is flagged when the top prediction differs from its catalog value and the catalog
    value's path ratio (see ``_path_ratios``) is <= FLAG_MAX_PATH_RATIO. A value a merchandiser
    already confirmed is flagged again only at <= FLAG_REFLAG_MAX_PATH_RATIO. Ranking by the path
    ratio instead of the top prediction's probability is what makes the flags worth a
    merchandiser's time: on the 6,001 real photos of ../shared with 5% of categories corrupted
    (frozen random-init features at 224 px, the app's out-of-fold model) "top differs at >= 0.6"
    raised 643 flags at precision 0.32, recall 0.68; path ratio <= 0.1 raises 356 at 0.76 / 0.91,
    <= 0.03 raises 258 at 0.86 / 0.74. Colours use FLAG_COLOUR_MAX_PATH_RATIO and
    FLAG_COLOUR_REFLAG_MAX_PATH_RATIO: on the same photos with 5% of colours corrupted, <= 0.1
    raised 1,078 colour flags at precision 0.26, <= 0.01 raises 314 at 0.58 / 0.61. Every older open flag of a product this run looked at is
    superseded, flagged again or not: the open flags always say what the newest model thinks.
    Products with no catalog value for the kind (a blank colour) are not compared.
    """
    if kind not in Kind.values:
        raise ReviewError(f"kind={kind!r}: expected one of {', '.join(Kind.values)}")
    proba = np.asarray(proba, dtype=np.float64)
    ids = [int(p) for p in product_ids]
    if proba.ndim != 2:
        raise ReviewError(f"proba must be 2-d (products x classes), got shape {proba.shape}")
    if proba.shape[0] != len(ids):
        raise ReviewError(f"proba has {proba.shape[0]} rows but product_ids has {len(ids)}")
    if proba.shape[1] != len(class_values):
        raise ReviewError(f"proba has {proba.shape[1]} columns but class_values has {len(class_values)}")
    if len(set(ids)) != len(ids):
        raise ReviewError("product_ids has duplicates")
    if not np.all(np.isfinite(proba)):
        bad = int(np.argwhere(~np.isfinite(proba))[0][0])
        raise ReviewError(f"proba row {bad} (product {ids[bad]}) is not finite")
    values = _class_values_as_text(kind=kind, class_values=class_values)

    if kind == Kind.COLOUR:
        max_ratio, reflag_ratio = settings.FLAG_COLOUR_MAX_PATH_RATIO, settings.FLAG_COLOUR_REFLAG_MAX_PATH_RATIO
    else:
        max_ratio, reflag_ratio = settings.FLAG_MAX_PATH_RATIO, settings.FLAG_REFLAG_MAX_PATH_RATIO
    products = {p.id: p for chunk in id_chunks(ids) for p in Product.objects.filter(id__in=chunk).select_related("category")}
    missing = [pid for pid in ids if pid not in products]
    if missing:
        raise ReviewError(f"product_ids not in the catalog: {missing[:10]}{' …' if len(missing) > 10 else ''}")

    order = np.argsort(-proba, axis=1, kind="stable")[:, :TOP_K]
    current_values = [_product_value(products[pid], kind) for pid in ids]
    ratios = _path_ratios(proba, values, current_values, hierarchical=kind == Kind.CATEGORY)
    confirmed = _confirmed_values(kind=kind, product_ids=ids)
    new_flags: list[CatalogFlag] = []
    skipped = 0
    compared = 0
    for row, pid in enumerate(ids):
        product = products[pid]
        current = _product_value(product, kind)
        if not current:
            continue
        compared += 1
        top = order[row]
        predicted = values[top[0]]
        confidence = float(proba[row, top[0]])
        ratio = float(ratios[row])
        if predicted == current or ratio > max_ratio:
            continue
        if (pid, current) in confirmed and ratio > reflag_ratio:
            skipped += 1
            continue
        new_flags.append(
            CatalogFlag(
                product_id=pid,
                kind=kind,
                catalog_value=current,
                predicted_value=predicted,
                confidence=confidence,
                path_ratio=ratio,
                top_predictions=[{"value": values[j], "probability": round(float(proba[row, j]), 4)} for j in top],
                model_version=model_version,
            )
        )

    with transaction.atomic():
        open_flags = CatalogFlag.objects.filter(kind=kind, state=State.OPEN)
        superseded = sum(open_flags.filter(product_id__in=chunk).update(state=State.SUPERSEDED) for chunk in id_chunks(ids))
        CatalogFlag.objects.bulk_create(new_flags, batch_size=500)
    return RefreshResult(created=len(new_flags), superseded=superseded, skipped_confirmed=skipped, compared=compared)


# --- Deciding -----------------------------------------------------------------------------------


def _category_by_value(value) -> Category:
    if isinstance(value, Category):
        return value
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return Category.objects.get(id=int(value))
        return Category.objects.get(path=str(value))
    except Category.DoesNotExist:
        raise ReviewError(f"value: no category {value!r} (give a category id or its full path)") from None


def _apply(*, flag: CatalogFlag, product: Product, target: str, user) -> None:
    """Write the decided value through the catalog's audited verbs; an unchanged value is only
    marked verified (a person confirmed it)."""
    from curation.catalog.services import product_attribute_change, product_category_change

    reason = f"review flag #{flag.pk}"
    if flag.kind == Kind.CATEGORY:
        product_category_change(product=product, new_category=_category_by_value(target), user=user, reason=reason, flag=flag)
    else:
        try:
            product_attribute_change(product=product, attribute="colour", new_value=target, user=user, reason=reason, flag=flag)
        except ValueError as exc:  # the catalog's own check of the value (length, blank)
            raise ReviewError(f"value: {exc}") from None


def _decide_locked(*, flag: CatalogFlag, user, action: str, value=None) -> CatalogFlag:
    """Apply one decision to a flag already locked by the caller's transaction."""
    if action not in ACTIONS:
        raise ReviewError(f"action={action!r}: expected one of {', '.join(ACTIONS)}")
    if flag.state != State.OPEN:
        raise FlagConflict(f"flag #{flag.pk} is already {flag.state}")
    product = Product.objects.select_for_update().select_related("category").get(pk=flag.product_id)
    current = _product_value(product, flag.kind)
    if current != flag.catalog_value:
        raise FlagConflict(
            f"flag #{flag.pk}: {product.sku}'s {flag.kind} changed from {flag.catalog_value!r} to {current!r} since it was flagged"
        )

    if action == ACCEPT:
        target = flag.predicted_value
    elif action == KEEP:
        target = current
    else:
        if value in (None, ""):
            raise ReviewError("value: required when action is 'choose'")
        target = _category_by_value(value).path if flag.kind == Kind.CATEGORY else str(value).strip()
        if not target:
            raise ReviewError("value: a colour name is required")

    if target == current:
        state = State.KEPT
    else:
        state = State.FIXED if target == flag.predicted_value else State.RECATEGORISED
    _apply(flag=flag, product=product, target=target, user=user)

    flag.state = state
    flag.decided_value = target
    flag.decided_by = user
    flag.decided_at = timezone.now()  # after the audit row, so the history reads change then decision
    flag.save(update_fields=["state", "decided_value", "decided_by", "decided_at"])
    return flag


def flag_decide(*, flag_id: int, user, action: str, value=None) -> CatalogFlag:
    """Accept the prediction, keep the catalog value, or choose another value (``value``).

    Choosing the catalog value counts as keeping it; choosing the predicted value as accepting.
    """
    with transaction.atomic():
        try:
            flag = CatalogFlag.objects.select_for_update().get(pk=flag_id)
        except CatalogFlag.DoesNotExist:
            raise ReviewError(f"flag #{flag_id} does not exist") from None
        return _decide_locked(flag=flag, user=user, action=action, value=value)


def flags_bulk_decide(*, flag_ids: Sequence[int], user, action: str = ACCEPT) -> list[CatalogFlag]:
    """Accept (or keep) a selection of flags: all of them or, if any cannot be decided, none."""
    if action not in (ACCEPT, KEEP):
        raise ReviewError(f"action={action!r}: bulk decisions are 'accept' or 'keep'")
    ids = sorted({int(i) for i in flag_ids})
    if not ids:
        raise ReviewError("flag_ids: select at least one flag")
    with transaction.atomic():
        # Locks in id order so two bulk decisions on overlapping selections cannot deadlock.
        flags = list(CatalogFlag.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        missing = sorted(set(ids) - {f.pk for f in flags})
        if missing:
            raise ReviewError(f"flag_ids: no flags {missing}")
        return [_decide_locked(flag=f, user=user, action=action) for f in flags]
