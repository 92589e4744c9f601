"""The pairs API: the labeling JSON, outfits CRUD, product search, export and role checks."""

from __future__ import annotations

import csv
import io
import json

import pytest

from curation.pairs.models import CandidatePair, Outfit, PairLabel

pytestmark = pytest.mark.django_db


def test_next_returns_pair_prefetch_counts_and_source_for_stylists(catalog, make_pairs, api_client_for):
    pairs = make_pairs(catalog, 3)
    client = api_client_for("stylist")
    data = client.get("/api/pairs/next/").json()
    assert data["pair"]["id"] == pairs[0].pk and data["prefetch"]["id"] == pairs[1].pk
    assert set(data["pair"]["a"]) == {"id", "sku", "title", "brand", "category", "colour", "image_url"}
    assert data["pair"]["a"]["image_url"].startswith("/media/products/")
    assert data["pair"]["source"] == "exploration" and "model_score" in data["pair"]
    assert data["counts"] == {"today": 0, "queue_left": 3, "queue_left_capped": False}
    assert data["empty_reason"] is None


def test_submit_is_idempotent_and_counts_move(catalog, make_pairs, api_client_for):
    pairs = make_pairs(catalog, 3)
    client = api_client_for("stylist")
    body = {"pair_id": pairs[0].pk, "value": "yes", "reasons": ["style"], "note": "nice", "duration_ms": 800}
    first = client.post("/api/pairs/submit/", body, format="json")
    assert first.status_code == 201
    again = client.post("/api/pairs/submit/", body, format="json")
    assert again.status_code == 200 and again.json()["label_id"] == first.json()["label_id"]
    assert again.json()["created"] is False
    assert first.json()["counts"] == {"today": 1, "queue_left": 2, "queue_left_capped": False}
    assert PairLabel.objects.count() == 1


def test_submit_bad_input_names_the_field(catalog, make_pairs, api_client_for):
    make_pairs(catalog, 1)
    client = api_client_for("stylist")
    res = client.post("/api/pairs/submit/", {"pair_id": 424242, "value": "yes"}, format="json")
    assert res.status_code == 400 and "no candidate pair with id 424242" in res.json()["pair_id"][0]
    res = client.post("/api/pairs/submit/", {"pair_id": 1, "value": "perhaps"}, format="json")
    assert res.status_code == 400 and "value" in res.json()
    res = client.post("/api/pairs/submit/", {"pair_id": 1, "value": "yes", "reasons": ["bad_tag"]}, format="json")
    assert res.status_code == 400 and "reasons" in res.json()


def test_skip_and_undo(catalog, make_pairs, api_client_for):
    pairs = make_pairs(catalog, 3)
    client = api_client_for("stylist")
    client.get("/api/pairs/next/")
    res = client.post("/api/pairs/skip/", {"pair_id": pairs[0].pk}, format="json")
    assert res.status_code == 200 and "counts" in res.json()
    assert client.get("/api/pairs/next/").json()["pair"]["id"] == pairs[1].pk
    nothing = client.post("/api/pairs/undo/", {}, format="json")
    assert nothing.status_code == 409 and "Nothing to undo" in nothing.json()["detail"]
    client.post("/api/pairs/submit/", {"pair_id": pairs[1].pk, "value": "no"}, format="json")
    res = client.post("/api/pairs/undo/", {}, format="json")
    assert res.status_code == 200 and res.json()["pair"]["id"] == pairs[1].pk
    assert res.json()["counts"]["today"] == 0
    assert client.get("/api/pairs/next/").json()["pair"]["id"] == pairs[1].pk


def test_empty_queue_explains(catalog, api_client_for):
    data = api_client_for("stylist").get("/api/pairs/next/").json()
    assert data["pair"] is None and data["prefetch"] is None
    assert data["empty_code"] == "nothing_to_label" and data["empty_reason"]


@pytest.mark.parametrize("role, allowed", [("stylist", True), ("admin", True), ("crowd", False), ("merchandiser", False)])
def test_every_endpoint_checks_the_role(role, allowed, catalog, api_client_for):
    client = api_client_for(role)
    calls = [
        client.get("/api/pairs/next/"),
        client.post("/api/pairs/skip/", {"pair_id": 1}, format="json"),
        client.post("/api/pairs/undo/", {}, format="json"),
        client.get("/api/pairs/products/"),
        client.get("/api/pairs/outfits/"),
        client.get("/api/pairs/export/"),
    ]
    for res in calls:
        assert (res.status_code != 403) is allowed, (res.request["PATH_INFO"], res.status_code)


def test_anonymous_is_refused(client, db):
    assert client.get("/api/pairs/next/").status_code in (401, 403)


def test_outfit_crud_and_ownership(catalog, api_client_for):
    alice = api_client_for("stylist", "alice")
    bob = api_client_for("stylist", "bob")
    ids = [catalog[0].pk, catalog[2].pk, catalog[4].pk]
    res = alice.post("/api/pairs/outfits/", {"name": "City", "product_ids": ids}, format="json")
    assert res.status_code == 201, res.json()
    outfit = res.json()
    assert [p["id"] for p in outfit["items"]] == ids and outfit["created_by"] == "alice"
    url = f"/api/pairs/outfits/{outfit['id']}/"
    assert bob.get(url).status_code == 200
    assert bob.patch(url, {"name": "Mine now"}, format="json").status_code == 403
    assert bob.delete(url).status_code == 403
    res = alice.patch(url, {"name": "City walk", "product_ids": ids[:2]}, format="json")
    assert res.status_code == 200 and res.json()["name"] == "City walk" and len(res.json()["items"]) == 2
    listed = alice.get("/api/pairs/outfits/?mine=1").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == outfit["id"]
    assert bob.get("/api/pairs/outfits/?mine=1").json()["count"] == 0
    assert alice.delete(url).status_code == 204
    assert not Outfit.objects.exists()


def test_admin_may_change_anyones_outfit(catalog, api_client_for):
    alice = api_client_for("stylist", "alice")
    outfit = alice.post("/api/pairs/outfits/", {"name": "A", "product_ids": [catalog[0].pk, catalog[2].pk]}, format="json").json()
    admin = api_client_for("admin", "boss")
    assert admin.delete(f"/api/pairs/outfits/{outfit['id']}/").status_code == 204


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "", "product_ids": [1, 2]}, "name"),
        ({"name": "One item", "product_ids": ["first"]}, "product_ids"),
    ],
)
def test_outfit_bad_input_names_the_field(catalog, api_client_for, body, field):
    res = api_client_for("stylist").post("/api/pairs/outfits/", body, format="json")
    assert res.status_code == 400 and field in res.json()


def test_outfit_needs_two_existing_products(catalog, api_client_for):
    client = api_client_for("stylist")
    res = client.post("/api/pairs/outfits/", {"name": "Solo", "product_ids": [catalog[0].pk, catalog[0].pk]}, format="json")
    assert res.status_code == 400 and "at least 2 different products" in res.json()["product_ids"][0]
    res = client.post("/api/pairs/outfits/", {"name": "Ghost", "product_ids": [catalog[0].pk, 987654]}, format="json")
    assert res.status_code == 400 and "no product with id 987654" in res.json()["product_ids"][0]
    assert not Outfit.objects.exists()


def test_product_search_by_text_category_and_colour(db, api_client_for):
    from tests.factories import make_product

    make_product("Apparel > Topwear > Shirts", title="Linen shirt", colour="White", brand="Acme")
    make_product("Footwear > Shoes > Sneakers", title="Canvas sneaker", colour="White")
    make_product("Footwear > Shoes > Sneakers", title="Leather sneaker", colour="Black")
    client = api_client_for("stylist")
    titles = lambda qs: sorted(p["title"] for p in client.get(f"/api/pairs/products/?{qs}").json())  # noqa: E731
    assert titles("q=sneaker") == ["Canvas sneaker", "Leather sneaker"]
    assert titles("q=acme") == ["Linen shirt"]
    assert titles("category=shoes&colour=white") == ["Canvas sneaker"]


def test_export_labels_and_outfits_as_csv_and_jsonl(catalog, make_pairs, api_client_for):
    pairs = make_pairs(catalog, 2)
    client = api_client_for("stylist", "alice")
    client.post("/api/pairs/submit/", {"pair_id": pairs[0].pk, "value": "yes", "reasons": ["style", "season"]}, format="json")
    client.post("/api/pairs/outfits/", {"name": "Look", "product_ids": [catalog[0].pk, catalog[3].pk]}, format="json")

    res = client.get("/api/pairs/export/?kind=labels&fmt=csv")
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(res.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["user"], row["value"], row["reasons"], row["a_sku"]) == ("alice", "yes", "style;season", pairs[0].a.sku)
    assert row["labeled_at"]

    res = client.get("/api/pairs/export/?kind=outfits&fmt=jsonl")
    lines = [json.loads(line) for line in b"".join(res.streaming_content).decode().splitlines()]
    assert [(line["name"], line["sku"], line["created_by"]) for line in lines] == [
        ("Look", catalog[0].sku, "alice"),
        ("Look", catalog[3].sku, "alice"),
    ]
    bad = client.get("/api/pairs/export/?kind=everything")
    assert bad.status_code == 400 and "kind" in bad.json()


def test_openapi_schema_lists_the_pairs_endpoints(api_client_for):
    res = api_client_for("stylist").get("/api/schema/?format=json")
    assert res.status_code == 200
    paths = json.loads(res.content)["paths"]
    for p in ("/api/pairs/next/", "/api/pairs/submit/", "/api/pairs/skip/", "/api/pairs/undo/", "/api/pairs/outfits/", "/api/pairs/outfits/{id}/", "/api/pairs/export/"):
        assert p in paths, p
