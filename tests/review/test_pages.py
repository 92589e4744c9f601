"""The review page and the history page (server side; the keyboard flow is in tests/browser)."""

from __future__ import annotations

import json

import pytest

from curation.review.models import CatalogFlag
from curation.review.services import flag_decide

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role,expected", [("merchandiser", 200), ("admin", 200), ("stylist", 403), ("crowd", 403)])
def test_pages_check_roles(role_client, raise_flags, catalog, role, expected):
    raise_flags({0: (1, 0.8)})
    c = role_client(role)
    assert c.get("/review/").status_code == expected
    assert c.get(f"/review/products/{catalog[0].sku}/history/").status_code == expected


def test_anonymous_goes_to_login(client):
    assert client.get("/review/")["Location"].startswith("/accounts/login/")


def test_review_page_lists_flags_by_confidence_with_header_numbers(role_client, raise_flags, catalog):
    raise_flags({0: (1, 0.7), 3: (0, 0.95)})
    page = role_client("merchandiser").get("/review/")
    html = page.content.decode()
    flags = json.loads(html.split('id="flags-data" type="application/json">')[1].split("</script>")[0])
    assert [f["sku"] for f in flags] == [catalog[3].sku, catalog[0].sku]
    assert html.index(catalog[3].sku) < html.index(catalog[0].sku)
    assert page.context["stats"].open == 2
    assert 'data-stat="open">2<' in html
    assert "review.js" in html and 'id="picker-data"' in html


def test_review_page_filters(role_client, raise_flags, catalog):
    raise_flags({0: (1, 0.7), 3: (0, 0.95)})
    c = role_client("merchandiser")
    assert [f.product_id for f in c.get("/review/", {"category": "Apparel > Topwear"}).context["flags"]] == [catalog[0].id]
    assert c.get("/review/", {"kind": "colour"}).context["flags"] == []
    assert "No open flags for these filters" in c.get("/review/", {"kind": "colour"}).content.decode()


def test_review_page_size_setting(role_client, raise_flags, settings):
    settings.REVIEW_PAGE_FLAGS = 1
    raise_flags({0: (1, 0.7), 3: (0, 0.95)})
    page = role_client("merchandiser").get("/review/")
    assert len(page.context["flags"]) == 1 and page.context["total"] == 2


def test_history_page_shows_changes(role_client, raise_flags, catalog, make_user):
    raise_flags({0: (1, 0.8)})
    flag_decide(flag_id=CatalogFlag.objects.get().id, user=make_user("merchandiser", username="mia"), action="accept")
    html = role_client("admin").get(f"/review/products/{catalog[0].sku}/history/").content.decode()
    assert 'data-testid="current-category">Apparel &gt; Bottomwear &gt; Jeans<' in html
    assert "Apparel &gt; Bottomwear &gt; Jeans" in html and "Apparel &gt; Topwear &gt; Shirts" in html
    assert html.count('data-event="change"') == 1 and html.count('data-event="decision"') == 1 and "mia" in html
    assert role_client("merchandiser", username="m2").get("/review/products/NOPE/history/").status_code == 404
