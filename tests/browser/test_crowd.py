"""Browser: a crowd worker labels blind with the keyboard and cannot reach other roles' pages; an
admin sees the crowd quality page with its plot and reinstates a worker."""

from __future__ import annotations

from django.utils import timezone

from tests.factories import make_product


def _crowd_pairs(n: int):
    from curation.pairs.models import CandidatePair

    products = [make_product(color=(40 * i % 255, 90, 160), colour=f"Colour {i}") for i in range(n + 1)]
    pairs = []
    for i in range(n):
        a, b = sorted((products[i], products[i + 1]), key=lambda p: p.id)
        pairs.append(CandidatePair.objects.create(a=a, b=b, source="uncertain", audience="crowd", model_score=0.4242, priority=1))
    return pairs


def _patient(page):
    # The live server shares the machine with the rest of the suite; give it time to answer.
    page.set_default_timeout(30_000)
    page.set_default_navigation_timeout(30_000)


def _pair_id(page) -> str:
    return page.locator("#labeler").get_attribute("data-pair-id")


def test_crowd_worker_labels_blind_with_the_keyboard(page, live_server, login_as, settings):
    from curation.pairs.models import PairLabel

    settings.CROWD_GOLD_RATE = 0.0
    _crowd_pairs(3)
    _patient(page)
    user = login_as(page, live_server, "crowd")
    page.goto(f"{live_server.url}/crowd/label/")
    page.wait_for_selector('#labeler[data-state="ready"]')
    first = _pair_id(page)
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.querySelector('#labeler').dataset.pairId !== '{first}'")
    second = _pair_id(page)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.querySelector('#labeler').dataset.pairId !== '{second}'")
    page.wait_for_function("document.querySelector('[data-count=\"today\"]').textContent === '2'")
    labels = dict(PairLabel.objects.filter(user=user).values_list("pair_id", "value"))
    assert labels == {int(first): "yes", int(second): "no"}
    assert set(PairLabel.objects.filter(user=user).values_list("kind", flat=True)) == {"crowd"}

    # Blind: no score, no source, no other votes anywhere on the page; "I" reveals nothing.
    page.keyboard.press("i")
    text = page.locator("body").inner_text()
    for hidden in ("0.42", "model score", "uncertain", "Why this pair", "votes"):
        assert hidden.lower() not in text.lower()
    assert page.locator(".lab-why").count() == 0
    assert page.js_errors == []

    for url in ("/pairs/label/", "/review/", "/crowd/quality/", "/models/"):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403, url
    assert page.locator('a[href="/pairs/label/"]').count() == 0


def test_admin_sees_quality_page_with_its_plot_and_reinstates(page, live_server, login_as):
    from curation.crowd import services
    from curation.accounts.services import user_create_with_role

    pairs = _crowd_pairs(2)
    workers = [user_create_with_role(username=f"crowd-w{i}", password="pw-test-12345", role="crowd") for i in range(3)]
    for pair in pairs:
        for w in workers:
            services._reserve(pair.id, w, timezone.now())
            services.crowd_vote_submit(worker=w, pair_id=pair.id, value="yes", duration_ms=2500)
    services.worker_suspend(profile=services.worker_profile_get(user=workers[2]), reason="gold accuracy 1/10")

    _patient(page)
    login_as(page, live_server, "admin")
    page.goto(f"{live_server.url}/crowd/quality/")
    plot = page.locator('svg[data-testid="labels-per-day-plot"]')
    plot.wait_for()
    bars = plot.locator("rect")
    assert bars.count() == 1 and bars.first.get_attribute("data-value") == "6"
    assert page.locator('[data-worker="crowd-w0"]').is_visible()
    assert page.locator('[data-testid="batches"] tbody tr').count() == 1

    page.locator('[data-worker="crowd-w2"] button[data-reinstate]').click()
    page.wait_for_selector("text=crowd-w2 is active again")
    assert services.worker_profile_get(user=workers[2]).status == "active"
    assert page.js_errors == []
