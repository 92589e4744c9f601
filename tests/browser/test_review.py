"""A merchandiser decides flags with the keyboard; a crowd worker is kept out."""

from __future__ import annotations

import numpy as np
import pytest

SHIRTS = "Apparel > Topwear > Shirts"
JEANS = "Apparel > Bottomwear > Jeans"
SNEAKERS = "Footwear > Shoes > Sneakers"
CLASSES = [SHIRTS, JEANS, SNEAKERS]


@pytest.fixture
def flagged(transactional_db):
    """Three flags, most doubted catalog value first (path ratios about 0.03, 0.075, 0.089, all under
    the default FLAG_MAX_PATH_RATIO): p0 shirts→jeans (0.99), p1 jeans→shirts (0.97), p2 shirts→jeans (0.95)."""
    from curation.review.services import flags_refresh
    from curation.training.models import ModelVersion
    from tests.factories import category_path, make_product

    for path in CLASSES:
        category_path(path)
    products = [make_product(SHIRTS, sku="B-ACCEPT"), make_product(JEANS, sku="B-KEEP"), make_product(SHIRTS, sku="B-CHOOSE")]
    proba = np.array([[0.005, 0.99, 0.005], [0.97, 0.02, 0.01], [0.025, 0.95, 0.025]])
    version = ModelVersion.objects.create(kind="category", status="ready")
    flags_refresh(model_version=version, kind="category", product_ids=[p.id for p in products], proba=proba, class_values=CLASSES)
    return products


def _category(sku):
    from curation.catalog.models import Product

    return Product.objects.select_related("category").get(sku=sku).category.path


def _row_state(page, sku):
    return page.locator("tr[data-testid=flag-row]", has_text=sku).locator(".state")


def test_merchandiser_accepts_keeps_and_recategorises_with_the_keyboard(page, live_server, login_as, flagged):
    from playwright.sync_api import expect

    login_as(page, live_server, "merchandiser")
    page.goto(f"{live_server.url}/review/")
    stats = page.locator("[data-testid=review-stats]")
    expect(stats.locator("[data-stat=open]")).to_have_text("3")
    expect(page.locator("[data-testid=catalog-value]")).to_have_text(SHIRTS)
    expect(page.locator("[data-testid=predicted-value]")).to_have_text(JEANS)
    # No embeddings active: the page says so instead of breaking (the first call imports the ML stack: slow).
    expect(page.locator("[data-testid=no-evidence]")).to_be_visible(timeout=60_000)

    page.keyboard.press("a")  # accept the most confident flag
    expect(_row_state(page, "B-ACCEPT")).to_have_text("fixed")
    expect(page.locator("[data-testid=catalog-value]")).to_have_text(JEANS)  # moved on to B-KEEP
    page.keyboard.press("k")
    expect(_row_state(page, "B-KEEP")).to_have_text("kept")

    page.keyboard.press("c")  # on B-CHOOSE: the picker opens with the search focused
    expect(page.locator("#picker")).to_be_visible()
    page.keyboard.type("sneak")
    expect(page.locator("#picker-options li")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(_row_state(page, "B-CHOOSE")).to_have_text("recategorised")
    expect(stats.locator("[data-stat=open]")).to_have_text("0")
    expect(stats.locator("[data-stat=fixed]")).to_have_text("2")
    expect(stats.locator("[data-stat=kept]")).to_have_text("1")
    expect(stats.locator("[data-stat=precision]")).to_have_text("67%")

    assert (_category("B-ACCEPT"), _category("B-KEEP"), _category("B-CHOOSE")) == (JEANS, JEANS, SNEAKERS)

    page.goto(f"{live_server.url}/review/products/B-CHOOSE/history/")
    expect(page.locator("[data-testid=current-category]")).to_have_text(SNEAKERS)
    change = page.locator("tr[data-event=change]")
    expect(change).to_have_count(1)
    expect(change).to_contain_text(SHIRTS)
    expect(change).to_contain_text(SNEAKERS)
    expect(change).to_contain_text("merchandiser-b")
    page.goto(f"{live_server.url}/review/products/B-KEEP/history/")
    expect(page.locator("tr[data-event=change]")).to_have_count(0)
    expect(page.locator("tr[data-event=decision]")).to_contain_text("Kept catalog value")
    assert page.js_errors == []


def test_keyboard_navigation_and_bulk_accept(page, live_server, login_as, flagged):
    from playwright.sync_api import expect

    login_as(page, live_server, "merchandiser")
    page.goto(f"{live_server.url}/review/")
    current = page.locator("tr.current")
    expect(current).to_contain_text("B-ACCEPT")
    page.keyboard.press("ArrowDown")
    expect(current).to_contain_text("B-KEEP")
    page.keyboard.press("n")
    expect(current).to_contain_text("B-CHOOSE")
    page.keyboard.press("x")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("p")
    expect(current).to_contain_text("B-ACCEPT")
    page.keyboard.press("x")
    expect(page.locator("#selected-count")).to_have_text("2")
    page.once("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("Shift+A")
    expect(_row_state(page, "B-ACCEPT")).to_have_text("fixed")
    expect(_row_state(page, "B-CHOOSE")).to_have_text("fixed")
    expect(_row_state(page, "B-KEEP")).to_have_text("open")
    assert (_category("B-ACCEPT"), _category("B-KEEP"), _category("B-CHOOSE")) == (JEANS, JEANS, JEANS)
    assert page.js_errors == []


def test_crowd_worker_gets_403_on_page_and_api(page, live_server, login_as, flagged):
    from curation.review.models import CatalogFlag

    login_as(page, live_server, "crowd")
    response = page.goto(f"{live_server.url}/review/")
    assert response.status == 403
    assert page.request.get(f"{live_server.url}/api/review/flags/").status == 403
    flag_id = CatalogFlag.objects.first().id
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    posted = page.request.post(f"{live_server.url}/api/review/flags/{flag_id}/decide/", data={"action": "accept"},
                               headers={"X-CSRFToken": token, "Referer": live_server.url})
    assert posted.status == 403
    assert CatalogFlag.objects.get(pk=flag_id).state == "open"
