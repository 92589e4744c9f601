"""The catalog page in Chromium: thumbnails load, filters narrow the grid, a card opens the product."""

from __future__ import annotations

import pytest

from tests.factories import make_product

pytestmark = pytest.mark.browser


def test_catalog_filters_and_thumbnails(page, live_server, login_as):
    make_product(sku="BLUE1", title="Oxford Blue Shirt", colour="Blue", color=(30, 30, 200))
    make_product(sku="RED1", title="Linen Red Shirt", colour="Red")
    make_product(sku="SHOE1", title="Runner", category="Footwear > Shoes > Sneakers", colour="White", color=(240, 240, 240))
    login_as(page, live_server, "merchandiser")
    page.goto(f"{live_server.url}/catalog/")
    assert page.locator("[data-testid=catalog-count]").inner_text().startswith("3 products")
    # Every thumbnail is a real, decoded image served from /media/.
    page.wait_for_function("Array.from(document.querySelectorAll('.product-thumb img')).every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".product-thumb img").count() == 3

    page.select_option("select[name=colour]", "Blue")
    page.click("[data-testid=catalog-filters] button[type=submit]")
    page.wait_for_url("**colour=Blue**")
    assert [s for s in page.locator(".product-thumb").evaluate_all("els => els.map(e => e.dataset.sku)")] == ["BLUE1"]

    page.fill("input[name=q]", "runner")
    page.select_option("select[name=colour]", "")
    page.click("[data-testid=catalog-filters] button[type=submit]")
    page.wait_for_url("**q=runner**")
    card = page.locator(".product-thumb")
    assert card.count() == 1 and card.get_attribute("href") == "/discover/products/SHOE1/"
    assert page.js_errors == []
