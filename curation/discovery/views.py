"""HTML pages: the product page (lists load as JSON through static/js/discovery.js) and search by photo."""

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from curation.accounts.roles import DISCOVERY, role_required
from curation.catalog.models import Category, Product
from curation.discovery import selectors


@role_required(*DISCOVERY)
def product_page(request, sku: str):
    try:
        product = selectors.product_by_sku(sku=sku)
    except Product.DoesNotExist as exc:
        raise Http404(f"No product with sku {sku!r}.") from exc
    urls = {
        "similar": reverse("discovery-similar", args=[product.sku]),
        "replacements": reverse("discovery-replacements", args=[product.sku]),
        "complete": reverse("discovery-complete", args=[product.sku]),
    }
    return render(request, "discovery/product.html", {"product": product, "urls": urls})


@role_required(*DISCOVERY)
def photo_search_page(request):
    # Slots and their subcategories, for the optional category filter.
    categories = Category.objects.filter(level__lte=settings.DISCOVERY_SLOT_LEVEL + 1).order_by("path")
    return render(
        request,
        "discovery/search.html",
        {
            "categories": categories,
            "search_url": reverse("discovery-photo-search"),
            "max_bytes": settings.MAX_IMAGE_BYTES,
            "max_mb": f"{settings.MAX_IMAGE_BYTES / (1024 * 1024):.0f}",
        },
    )
