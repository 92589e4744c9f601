"""A stylist labels pairs with the keyboard (reasons, undo, skip) and builds an outfit."""

from __future__ import annotations

import pytest

SHIRTS = "Apparel > Topwear > Shirts"
JEANS = "Apparel > Bottomwear > Jeans"
SNEAKERS = "Footwear > Shoes > Sneakers"


@pytest.fixture
def open_pairs(transactional_db):
    """Four open stylist pairs, highest priority first."""
    from curation.pairs.models import CandidatePair
    from tests.factories import make_product

    shirts = [make_product(SHIRTS, title=f"Oxford shirt {i}", colour="White") for i in range(2)]
    jeans = [make_product(JEANS, title=f"Slim jeans {i}", colour="Blue") for i in range(2)]
    pairs = []
    for s in shirts:
        for j in jeans:
            a, b = sorted((s.pk, j.pk))
            pairs.append(CandidatePair.objects.create(a_id=a, b_id=b, source="similar", priority=100 - len(pairs)))
    return pairs


def _wait_pair(page, pair):
    page.wait_for_selector(f'#labeler[data-pair-id="{pair.pk}"]')


def _wait_today(page, n):
    page.wait_for_function(f"document.querySelector('[data-count=today]').textContent === '{n}'")


def test_stylist_labels_with_the_keyboard_uses_a_reason_undoes_and_skips(page, live_server, login_as, open_pairs):
    from curation.pairs.models import CandidatePair, PairLabel, PairSkip

    p0, p1, p2, p3 = open_pairs
    user = login_as(page, live_server, "stylist", "stella")
    page.goto(f"{live_server.url}/pairs/label/")
    _wait_pair(page, p0)
    assert "Oxford shirt" in page.inner_text("#labeler .lab-pair") or "Slim jeans" in page.inner_text("#labeler .lab-pair")
    assert page.inner_text('[data-count="left"]') == "4"

    page.keyboard.press("2")  # reason tag 2: style
    assert page.is_checked('input[name=reason][value="style"]')
    page.keyboard.press("ArrowRight")  # complementary
    _wait_pair(page, p1)
    assert not page.is_checked('input[name=reason][value="style"]')  # reasons reset for the next pair
    page.keyboard.press("n")  # not complementary
    _wait_pair(page, p2)
    _wait_today(page, 2)

    page.keyboard.press("u")  # undo the "no" on p1: it comes back on screen
    _wait_pair(page, p1)
    _wait_today(page, 1)
    assert not PairLabel.objects.filter(pair=p1).exists()
    page.keyboard.press("c")  # decide again: complementary
    _wait_pair(page, p2)
    page.keyboard.press(" ")  # skip p2
    _wait_pair(page, p3)
    _wait_today(page, 2)
    page.wait_for_function("document.querySelector('[data-count=left]').textContent === '2'")

    labels = {lab.pair_id: lab for lab in PairLabel.objects.filter(user=user)}
    assert set(labels) == {p0.pk, p1.pk}
    assert (labels[p0.pk].value, labels[p0.pk].reasons, labels[p0.pk].kind) == ("yes", ["style"], "stylist")
    assert labels[p1.pk].value == "yes"
    assert labels[p0.pk].duration_ms is not None
    assert PairSkip.objects.filter(user=user, pair=p2).exists()
    assert CandidatePair.objects.get(pk=p2.pk).reserved_by_id is None
    assert CandidatePair.objects.get(pk=p0.pk).is_gold
    assert page.js_errors == []


def test_help_source_and_empty_queue(page, live_server, login_as, open_pairs):
    from curation.pairs.models import CandidatePair

    CandidatePair.objects.exclude(pk=open_pairs[0].pk).delete()
    login_as(page, live_server, "stylist", "stella")
    page.goto(f"{live_server.url}/pairs/label/")
    _wait_pair(page, open_pairs[0])
    page.keyboard.press("?")
    assert page.is_visible('[data-testid="help"]')
    page.keyboard.press("Escape")
    assert not page.is_visible('[data-testid="help"]')
    assert not page.is_visible('[data-testid="why"]')
    page.keyboard.press("i")
    assert "Similar to a pair already known" in page.inner_text('[data-testid="why"]')
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector('#labeler[data-state="empty"]')
    assert "Nothing to label" in page.inner_text('[data-testid="empty"]')
    assert page.js_errors == []


def test_crowd_worker_cannot_open_the_stylist_page(page, live_server, login_as):
    login_as(page, live_server, "crowd", "carl")
    res = page.goto(f"{live_server.url}/pairs/label/")
    assert res.status == 403


def test_stylist_builds_and_saves_an_outfit_then_edits_it(page, live_server, login_as, transactional_db):
    from curation.pairs.models import Outfit
    from tests.factories import make_product

    shirt = make_product(SHIRTS, title="Linen shirt", colour="White")
    jeans = make_product(JEANS, title="Dark jeans", colour="Navy Blue")
    sneaker = make_product(SNEAKERS, title="Canvas sneaker", colour="White")
    user = login_as(page, live_server, "stylist", "stella")
    page.goto(f"{live_server.url}/pairs/outfits/new/")
    page.fill('.builder-search-form input[name="q"]', "shirt")
    page.click('.builder-search-form button[type="submit"]')
    page.click(f'[data-testid="search-results"] .ptile[data-product-id="{shirt.pk}"]')
    page.fill('.builder-search-form input[name="q"]', "")
    page.fill('.builder-search-form input[name="category"]', "bottomwear")
    page.click('.builder-search-form button[type="submit"]')
    page.click(f'[data-testid="search-results"] .ptile[data-product-id="{jeans.pk}"]')
    page.fill('.builder-search-form input[name="category"]', "")
    page.fill('.builder-search-form input[name="colour"]', "white")
    page.click('.builder-search-form button[type="submit"]')
    page.wait_for_selector(f'[data-testid="search-results"] .ptile[data-product-id="{sneaker.pk}"]')
    assert page.locator('[data-testid="search-results"] .ptile').count() == 2  # white shirt and white sneaker
    page.click(f'[data-testid="search-results"] .ptile[data-product-id="{sneaker.pk}"]')
    assert page.inner_text('[data-testid="item-count"]') == "(3)"
    page.click('[data-testid="outfit-items"] .ptile[data-product-id="%d"] .remove' % sneaker.pk)
    page.fill('input[name="name"]', "Weekend")
    page.click('[data-action="save"]')
    page.wait_for_selector('.builder-status:has-text("Saved")')

    outfit = Outfit.objects.get()
    assert (outfit.name, outfit.created_by_id, outfit.source) == ("Weekend", user.pk, "builder")
    assert list(outfit.items.values_list("product_id", flat=True)) == [shirt.pk, jeans.pk]

    page.goto(f"{live_server.url}/pairs/outfits/")
    page.click('a:has-text("Weekend")')
    page.wait_for_selector(f'[data-testid="outfit-items"] .ptile[data-product-id="{jeans.pk}"]')
    page.fill('input[name="name"]', "Weekend in town")
    page.click('[data-action="save"]')
    page.wait_for_selector('.builder-status:has-text("Saved")')
    outfit.refresh_from_db()
    assert outfit.name == "Weekend in town" and Outfit.objects.count() == 1
    assert page.js_errors == []
