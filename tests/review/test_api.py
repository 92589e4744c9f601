"""Review API: role checks, list filters, decide, bulk decide, stats, OpenAPI."""

from __future__ import annotations

import pytest

from curation.catalog.models import Product
from curation.review.models import CatalogFlag
from tests.review.conftest import JEANS, SHIRTS, SHOES

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role,expected", [("merchandiser", 200), ("admin", 200), ("stylist", 403), ("crowd", 403)])
def test_roles(api_client_for, raise_flags, role, expected):
    raise_flags({0: (1, 0.8)})
    c = api_client_for(role)
    flag_id = CatalogFlag.objects.get().id
    assert c.get("/api/review/flags/").status_code == expected
    assert c.get(f"/api/review/flags/{flag_id}/").status_code == expected
    assert c.get("/api/review/stats/").status_code == expected
    decided = c.post(f"/api/review/flags/{flag_id}/decide/", {"action": "keep"}, format="json")
    assert decided.status_code == expected
    assert CatalogFlag.objects.get().state == ("kept" if expected == 200 else "open")


def test_list_sorted_and_filtered(api_client_for, raise_flags, catalog):
    raise_flags({0: (1, 0.7), 3: (0, 0.95), 5: (0, 0.8)})
    c = api_client_for("merchandiser")
    body = c.get("/api/review/flags/").json()
    assert body["count"] == 3
    assert [r["confidence"] for r in body["results"]] == pytest.approx([0.95, 0.8, 0.7])
    ratios = [r["path_ratio"] for r in body["results"]]
    assert ratios == sorted(ratios) and ratios[-1] < 0.4
    first = body["results"][0]
    assert first["sku"] == catalog[3].sku and first["catalog_value"] == JEANS and first["predicted_value"] == SHIRTS
    assert first["history_url"] == f"/review/products/{catalog[3].sku}/history/"
    assert len(first["top_predictions"]) == 3
    assert c.get("/api/review/flags/", {"category": "Footwear"}).json()["count"] == 1
    assert c.get("/api/review/flags/", {"kind": "colour"}).json()["count"] == 0
    assert c.get("/api/review/flags/", {"state": "bogus"}).status_code == 400
    assert c.get("/api/review/flags/", {"model_version": "x"}).status_code == 400


def test_decide_returns_flag_and_stats(api_client_for, raise_flags, catalog):
    raise_flags({0: (1, 0.8)})
    c = api_client_for("merchandiser")
    flag_id = CatalogFlag.objects.get().id
    got = c.post(f"/api/review/flags/{flag_id}/decide/", {"action": "choose", "value": SHOES}, format="json")
    assert got.status_code == 200, got.content
    body = got.json()
    assert body["flag"]["state"] == "recategorised" and body["flag"]["decided_by"] == c.user.username
    assert body["stats"] == {"open": 0, "fixed": 1, "kept": 0, "decided": 1, "precision": 1.0}
    assert Product.objects.get(pk=catalog[0].pk).category.path == SHOES
    again = c.post(f"/api/review/flags/{flag_id}/decide/", {"action": "accept"}, format="json")
    assert again.status_code == 409 and "already recategorised" in again.json()["detail"]


@pytest.mark.parametrize(
    "payload,field",
    [({"action": "nuke"}, "action"), ({"action": "choose"}, "value"), ({}, "action")],
)
def test_decide_validation(api_client_for, raise_flags, payload, field):
    raise_flags({0: (1, 0.8)})
    c = api_client_for("merchandiser")
    got = c.post(f"/api/review/flags/{CatalogFlag.objects.get().id}/decide/", payload, format="json")
    assert got.status_code == 400 and field in got.json()


def test_decide_unknown_category_and_missing_flag(api_client_for, raise_flags):
    raise_flags({0: (1, 0.8)})
    c = api_client_for("merchandiser")
    flag_id = CatalogFlag.objects.get().id
    bad = c.post(f"/api/review/flags/{flag_id}/decide/", {"action": "choose", "value": "X > Y"}, format="json")
    assert bad.status_code == 400 and "no category 'X > Y'" in bad.json()["detail"]
    assert c.post("/api/review/flags/999999/decide/", {"action": "keep"}, format="json").status_code == 404


def test_bulk_decide(api_client_for, raise_flags, catalog):
    raise_flags({0: (1, 0.8), 3: (0, 0.9)})
    c = api_client_for("merchandiser")
    ids = list(CatalogFlag.objects.values_list("id", flat=True))
    got = c.post("/api/review/flags/bulk-decide/", {"flag_ids": ids}, format="json")
    assert got.status_code == 200, got.content
    assert got.json()["decided"] == 2 and got.json()["stats"]["fixed"] == 2
    assert Product.objects.get(pk=catalog[0].pk).category.path == JEANS
    conflict = c.post("/api/review/flags/bulk-decide/", {"flag_ids": ids}, format="json")
    assert conflict.status_code == 409
    assert c.post("/api/review/flags/bulk-decide/", {"flag_ids": []}, format="json").status_code == 400
    assert c.post("/api/review/flags/bulk-decide/", {"flag_ids": [999999]}, format="json").status_code == 400


def test_bulk_decide_forbidden_for_crowd(api_client_for, raise_flags):
    raise_flags({0: (1, 0.8)})
    c = api_client_for("crowd")
    got = c.post("/api/review/flags/bulk-decide/", {"flag_ids": [CatalogFlag.objects.get().id]}, format="json")
    assert got.status_code == 403 and CatalogFlag.objects.get().state == "open"


def test_detail_has_evidence(api_client_for, raise_flags):
    raise_flags({0: (1, 0.8)})
    body = api_client_for("merchandiser").get(f"/api/review/flags/{CatalogFlag.objects.get().id}/").json()
    assert body["flag"]["predicted_value"] == JEANS
    assert body["evidence"]["available"] is False and body["evidence"]["reason"]


def test_endpoints_in_openapi_schema(api_client_for):
    c = api_client_for("merchandiser")
    schema = c.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for route in ("/api/review/flags/", "/api/review/flags/{flag_id}/decide/", "/api/review/flags/bulk-decide/", "/api/review/stats/"):
        assert route in schema
