"""HTML views: the product list with search and filters."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from curation.accounts.roles import BROWSE_CATALOG, role_required
from curation.catalog import selectors

PAGE_SIZE = 48


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


@role_required(*BROWSE_CATALOG)
def product_list(request):
    search = request.GET.get("q", "").strip()
    category_id = _int_or_none(request.GET.get("category"))
    colour = request.GET.get("colour", "").strip()
    stock_raw = request.GET.get("in_stock", "")
    in_stock = {"1": True, "0": False}.get(stock_raw)
    products = selectors.product_list(search=search, category_id=category_id, colour=colour, in_stock=in_stock)
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    # Pagination links keep the filters: everything in the query string except the page number.
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "catalog/product_list.html",
        {
            "page": page,
            "total": page.paginator.count,
            "categories": selectors.category_choices(),
            "colours": selectors.colour_choices(),
            "search": search,
            "category_id": category_id,
            "colour": colour,
            "in_stock": stock_raw if in_stock is not None else "",
            "query": query.urlencode(),
        },
    )
