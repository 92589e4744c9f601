"""HTML pages of the review: the flag queue and a product's history. Decisions go through the API."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404, render

from curation.accounts.roles import REVIEW_CATALOG, role_required
from curation.catalog.models import Product
from curation.review import selectors
from curation.review.models import CatalogFlag
from curation.review.serializers import FlagSerializer


@role_required(*REVIEW_CATALOG)
def review_page(request):
    kind = request.GET.get("kind") or ""
    kind = kind if kind in CatalogFlag.Kind.values else ""
    category = request.GET.get("category") or ""
    version = request.GET.get("model_version") or ""
    version = version if version.isdigit() else ""
    flags_qs = selectors.flags_queryset(kind=kind or None, category=category or None,
                                        model_version=int(version) if version else None)
    total = flags_qs.count()
    # The page holds one screenful of work; the rest follows after a reload (the queue is sorted).
    flags = list(flags_qs[: settings.REVIEW_PAGE_FLAGS])
    context = {
        "flags": flags,
        "flags_json": FlagSerializer(flags, many=True).data,
        "total": total,
        "stats": selectors.review_stats(),
        "choices": selectors.flag_filter_choices(),
        "filters": {"kind": kind, "category": category, "model_version": version},
        "picker": {"category": selectors.category_picker_values(), "colour": selectors.colour_picker_values()},
    }
    return render(request, "review/review.html", context)


@role_required(*REVIEW_CATALOG)
def product_history(request, sku: str):
    product = get_object_or_404(Product.objects.select_related("category"), sku=sku)
    return render(request, "review/history.html", {"product": product, "events": selectors.product_history(product=product)})
