"""Discovery in the browser: the product page's three lists, search by photo, a refused upload."""

from __future__ import annotations

import pytest

# The discovery fixtures: the tiny catalog, its active embedding set, stand-in scorers.
from tests.discovery.conftest import _fresh_serving, active_set, catalog, fake_scorers  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def db(transactional_db):
    """The live server reads from another thread: the catalog must be committed."""


def test_product_page_shows_similar_replacements_and_complete_the_look(page, live_server, login_as, catalog, active_set, fake_scorers):
    login_as(page, live_server, "merchandiser")
    page.goto(f"{live_server.url}/discover/products/SHIRT-OOS/")
    assert page.locator('[data-testid="stock"]').inner_text() == "Out of stock"

    similar = page.locator("#similar")
    page.wait_for_selector('#similar[data-loaded="1"]')
    assert similar.locator(".thumb").count() > 0
    assert f"Embeddings version {active_set.pk}" in similar.locator('[data-role="version"]').inner_text()

    page.wait_for_selector('#replacements[data-loaded="1"]')
    replacements = page.locator("#replacements .thumb")
    assert sorted(replacements.evaluate_all("els => els.map(e => e.dataset.sku)")) == ["SHIRT-BLUE", "SHIRT-RED", "SHIRT-RED-2"]

    page.wait_for_selector('#complete[data-loaded="1"]')
    slots = page.locator("#complete .slot")
    assert slots.evaluate_all("els => els.map(e => e.dataset.slot)") == ["Bottomwear", "Shoes"]
    assert "pair model version 901" in page.locator('#complete [data-role="version"]').inner_text()
    outfit = page.locator('[data-testid="outfit"]')
    assert outfit.is_visible()
    assert outfit.locator(".thumb").count() == 3

    # Including out-of-stock items reloads the list with them.
    similar.locator('[data-role="include-out-of-stock"]').check()
    page.wait_for_function("document.querySelectorAll('#similar .thumb').length > 0 && [...document.querySelectorAll('#similar .thumb')].some(e => e.textContent.includes('out of stock'))")
    assert page.js_errors == []


def test_product_page_without_models_says_so(page, live_server, login_as, catalog):
    login_as(page, live_server, "crowd")
    page.goto(f"{live_server.url}/discover/products/SHIRT-RED/")
    page.wait_for_selector('#similar[data-loaded="1"]')
    assert "No embeddings are active yet" in page.locator('#similar [data-role="message"]').inner_text()
    assert "is in stock" in page.locator('#replacements [data-role="message"]').inner_text()
    page.wait_for_selector('#complete[data-loaded="1"]')
    assert "No embeddings are active yet" in page.locator('#complete [data-role="message"]').inner_text()


def test_search_by_photo_finds_the_products_own_item_first(page, live_server, login_as, catalog, active_set, settings):
    login_as(page, live_server, "stylist")
    page.goto(f"{live_server.url}/discover/search/")
    page.set_input_files('[data-testid="photo-input"]', str(settings.MEDIA_ROOT / catalog["sneaker"].image.name))
    page.click("#photo-search button[type=submit]")
    page.wait_for_selector('#photo-results[data-loaded="1"]')
    first = page.locator("#photo-results .thumb").first
    assert first.get_attribute("data-sku") == "SNEAK-1"
    assert page.locator('[data-testid="search-error"]').is_hidden()
    assert page.js_errors == []


def test_a_bad_upload_shows_its_message(page, live_server, login_as, catalog, active_set):
    login_as(page, live_server, "crowd")
    page.goto(f"{live_server.url}/discover/search/")
    page.set_input_files(
        '[data-testid="photo-input"]', files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"these are not pixels"}]
    )
    page.click("#photo-search button[type=submit]")
    error = page.locator('[data-testid="search-error"]')
    error.wait_for(state="visible")
    assert "notes.jpg is not an image we can read" in error.inner_text()
    assert page.locator("#photo-results .thumb").count() == 0
