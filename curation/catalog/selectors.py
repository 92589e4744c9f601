"""Catalog reads: the filtered product list (page and API share it), choices for filters, demo truth."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import Q, QuerySet

from curation.catalog.models import Category, DemoTruth, Product

# Ids per ``id__in`` query when a service reads or updates rows for a whole catalog: one SQL
# parameter per id, and SQLite refuses more than 250,000 in one statement (Debian's build; SQLite's
# own default is 32,766), so a 300,000-product catalog would fail there in one query.
IN_QUERY_CHUNK = 5000


def id_chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ``ids``, ascending, in lists of at most ``IN_QUERY_CHUNK``: for ``id__in``
    filters over catalog-sized sets (ascending, so chunks read in turn keep the rows in id order)."""
    unique = sorted({int(i) for i in ids})
    for start in range(0, len(unique), IN_QUERY_CHUNK):
        yield unique[start : start + IN_QUERY_CHUNK]


def product_list(
    *,
    search: str = "",
    category_id: int | None = None,
    category_path: str = "",
    colour: str = "",
    in_stock: bool | None = None,
) -> QuerySet[Product]:
    """Products matching every given filter; a category includes all its descendants."""
    qs = Product.objects.select_related("category")
    for word in search.split():
        qs = qs.filter(Q(title__icontains=word) | Q(sku__iexact=word) | Q(brand__icontains=word))
    if category_id is not None:
        category = Category.objects.filter(pk=category_id).first()
        if category is None:
            return qs.none()
        category_path = category.path
    if category_path:
        qs = qs.filter(Q(category__path=category_path) | Q(category__path__startswith=category_path + " > "))
    if colour:
        qs = qs.filter(colour__iexact=colour)
    if in_stock is not None:
        qs = qs.filter(in_stock=in_stock)
    return qs.order_by("sku")


def category_choices() -> list[Category]:
    return list(Category.objects.order_by("path"))


def colour_choices() -> list[str]:
    return sorted(c for c in Product.objects.exclude(colour="").values_list("colour", flat=True).distinct())


def demo_pair_is_complementary(a_id: int, b_id: int) -> bool | None:
    """The demo catalog's hidden style rule for two products; None unless both are demo products."""
    from curation.catalog.demo import demo_facts_for, style_complementary

    truths = {t.product_id: t for t in DemoTruth.objects.select_related("true_category").filter(product_id__in=[a_id, b_id])}
    if a_id not in truths or b_id not in truths:
        return None
    facts = [
        demo_facts_for(
            true_category_path=truths[pid].true_category.path,
            formality=truths[pid].formality,
            hue=truths[pid].hue,
            pattern=truths[pid].pattern,
        )
        for pid in (a_id, b_id)
    ]
    if facts[0] is None or facts[1] is None:
        return None
    return style_complementary(facts[0], facts[1])
