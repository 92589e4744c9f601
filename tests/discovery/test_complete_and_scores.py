"""Complete-the-look and the pair/outfit score endpoints (stand-in scorers from conftest)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from curation.discovery.selectors import NO_PAIR_MODEL
from curation.training import serving
from tests.discovery.conftest import FakeOutfitScorer, FakePairScorer
from tests.factories import make_product

pytestmark = pytest.mark.django_db

SLOT_MEMBERS = {
    "Bottomwear": {"JEANS-1", "CHINO-1", "SKIRT-1"},
    "Shoes": {"SNEAK-1", "BOOT-1"},  # BOOT-OOS is sold out
}


def complete_url(sku: str) -> str:
    return f"/api/discover/products/{sku}/complete-the-look/"


def test_complete_the_look_ranks_each_other_slot_by_pair_score(api_client_for, catalog, active_set, fake_scorers):
    response = api_client_for("stylist").get(complete_url("SHIRT-RED"), {"per_slot": 2})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["pair_model_version"], data["outfit_model_version"], data["embedding_version"]) == (901, 902, active_set.pk)
    assert [slot["slot"] for slot in data["slots"]] == ["Bottomwear", "Shoes"]
    shirt = catalog["shirt"]
    by_sku = {p.sku: p for p in catalog.values()}
    for slot in data["slots"]:
        members = sorted(SLOT_MEMBERS[slot["slot"]])
        expected_scores = FakePairScorer().score([(shirt.id, by_sku[s].id) for s in members])
        expected = [s for _, s in sorted(zip(-expected_scores, members))][:2]
        assert [item["sku"] for item in slot["results"]] == expected
        assert slot["results"][0]["score"] == pytest.approx(float(max(expected_scores)), abs=1e-5)


def test_complete_the_look_generates_an_outfit_with_the_outfit_scorer(api_client_for, catalog, active_set, fake_scorers):
    _, outfit_scorer = fake_scorers
    data = api_client_for("crowd").get(complete_url("SHIRT-RED")).json()
    outfit = data["outfit"]
    skus = [item["sku"] for item in outfit["items"]]
    assert skus[0] == "SHIRT-RED"
    assert len(skus) == 3
    assert skus[1] in SLOT_MEMBERS["Bottomwear"] and skus[2] in SLOT_MEMBERS["Shoes"]
    given, pools = outfit_scorer.calls[-1]
    assert given == [catalog["shirt"].id] and set(pools) == {"Bottomwear", "Shoes"}
    ids = [item["id"] for item in outfit["items"]]
    assert outfit["score"] == pytest.approx(float(FakeOutfitScorer().score([ids])[0]), abs=1e-5)
    assert outfit["model_version"] == 902
    assert data["outfit_message"] is None


def test_popular_items_join_the_shortlist(api_client_for, catalog, active_set, fake_scorers, settings):
    from curation.pairs.models import Outfit, OutfitItem

    shirt = catalog["shirt"]
    bottoms = {catalog[name].id for name in ("jeans", "chinos", "skirt")}
    ranked = serving.active_embeddings().neighbours(shirt.id, 3, allowed_ids=bottoms)
    nearest_id, farthest_id = ranked[0][0], ranked[-1][0]
    outfit = Outfit.objects.create(name="Weekend")
    OutfitItem.objects.create(outfit=outfit, product_id=farthest_id)
    settings.DISCOVERY_SHORTLIST_NEAREST = 1
    settings.DISCOVERY_SHORTLIST_POPULAR = 1
    data = api_client_for("stylist").get(complete_url("SHIRT-RED"), {"per_slot": 5}).json()
    bottom = next(slot for slot in data["slots"] if slot["slot"] == "Bottomwear")
    assert {item["id"] for item in bottom["results"]} == {nearest_id, farthest_id}


def test_complete_the_look_without_a_pair_model_says_so(api_client_for, catalog, active_set, monkeypatch):
    monkeypatch.setattr(serving, "active_pair_scorer", lambda: None)
    data = api_client_for("stylist").get(complete_url("SHIRT-RED")).json()
    assert data["slots"] == [] and data["outfit"] is None
    assert data["message"] == NO_PAIR_MODEL


def test_complete_the_look_without_an_outfit_scorer_still_lists_slots(api_client_for, catalog, active_set, fake_scorers, monkeypatch):
    monkeypatch.setattr(serving, "active_outfit_scorer", lambda: None)
    data = api_client_for("stylist").get(complete_url("SHIRT-RED")).json()
    assert len(data["slots"]) == 2 and data["outfit"] is None
    assert "No outfit scorer" in data["outfit_message"]


def test_complete_the_look_auth_role_and_bad_input(api_client_for, no_role_client, catalog):
    url = complete_url("SHIRT-RED")
    assert APIClient().get(url).status_code in (401, 403)
    assert no_role_client.get(url).status_code == 403
    bad = api_client_for("stylist").get(url, {"per_slot": "0"})
    assert bad.status_code == 400 and "per_slot" in bad.json()
    assert api_client_for("stylist", "s2").get(complete_url("NOPE")).status_code == 404


# --- Scores -------------------------------------------------------------------------------------


def test_pair_score_answers_the_score_and_model_version(api_client_for, catalog, active_set, fake_scorers):
    response = api_client_for("crowd").post("/api/scores/pair/", {"sku_a": "SHIRT-RED", "sku_b": "JEANS-1"}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    expected = FakePairScorer().score([(catalog["shirt"].id, catalog["jeans"].id)])[0]
    assert data == {"sku_a": "SHIRT-RED", "sku_b": "JEANS-1", "score": pytest.approx(float(expected), abs=1e-5), "model_version": 901}


@pytest.mark.parametrize(
    "body, words",
    [
        ({"sku_a": "SHIRT-RED", "sku_b": "NOPE-1"}, "Unknown sku: NOPE-1"),
        ({"sku_a": "SHIRT-RED", "sku_b": "SHIRT-RED"}, "repeated: SHIRT-RED"),
        ({"sku_a": "SHIRT-RED"}, "sku_b"),
    ],
)
def test_pair_score_bad_input(api_client_for, catalog, active_set, fake_scorers, body, words):
    response = api_client_for("stylist").post("/api/scores/pair/", body, format="json")
    assert response.status_code == 400
    assert words in response.content.decode()


def test_pair_score_for_a_product_without_embedding(api_client_for, catalog, active_set, fake_scorers):
    make_product("Apparel > Topwear > Shirts", sku="NEW-2")
    response = api_client_for("stylist").post("/api/scores/pair/", {"sku_a": "NEW-2", "sku_b": "JEANS-1"}, format="json")
    assert response.status_code == 400
    assert "No embedding yet for: NEW-2" in response.json()["detail"]


def test_pair_score_without_an_active_model_is_503(api_client_for, catalog, active_set, monkeypatch):
    monkeypatch.setattr(serving, "active_pair_scorer", lambda: None)
    response = api_client_for("stylist").post("/api/scores/pair/", {"sku_a": "SHIRT-RED", "sku_b": "JEANS-1"}, format="json")
    assert response.status_code == 503
    assert "No siamese pair model" in response.json()["detail"]


def test_score_endpoints_auth_and_role(no_role_client, catalog):
    body = {"sku_a": "SHIRT-RED", "sku_b": "JEANS-1"}
    assert APIClient().post("/api/scores/pair/", body, format="json").status_code in (401, 403)
    assert no_role_client.post("/api/scores/pair/", body, format="json").status_code == 403
    outfit = {"skus": ["SHIRT-RED", "JEANS-1"]}
    assert APIClient().post("/api/scores/outfit/", outfit, format="json").status_code in (401, 403)
    assert no_role_client.post("/api/scores/outfit/", outfit, format="json").status_code == 403


def test_outfit_score_answers_the_score_and_model_version(api_client_for, catalog, active_set, fake_scorers):
    skus = ["SHIRT-RED", "JEANS-1", "SNEAK-1"]
    response = api_client_for("merchandiser").post("/api/scores/outfit/", {"skus": skus}, format="json")
    assert response.status_code == 200, response.content
    ids = [catalog[name].id for name in ("shirt", "jeans", "sneaker")]
    assert response.json() == {"skus": skus, "score": pytest.approx(float(FakeOutfitScorer().score([ids])[0]), abs=1e-5), "model_version": 902}


@pytest.mark.parametrize(
    "body, words",
    [({"skus": ["SHIRT-RED"]}, "skus"), ({"skus": ["SHIRT-RED", "GHOST"]}, "Unknown sku: GHOST"), ({}, "skus")],
)
def test_outfit_score_bad_input(api_client_for, catalog, active_set, fake_scorers, body, words):
    response = api_client_for("stylist").post("/api/scores/outfit/", body, format="json")
    assert response.status_code == 400
    assert words in response.content.decode()


def test_outfit_score_without_an_active_model_is_503(api_client_for, catalog, active_set, monkeypatch):
    monkeypatch.setattr(serving, "active_outfit_scorer", lambda: None)
    response = api_client_for("stylist").post("/api/scores/outfit/", {"skus": ["SHIRT-RED", "JEANS-1"]}, format="json")
    assert response.status_code == 503


def test_a_slot_missing_from_the_wide_search_falls_back_to_a_slot_search(api_client_for, catalog, active_set, fake_scorers, settings):
    settings.DISCOVERY_SHORTLIST_NEAREST = 1
    settings.DISCOVERY_SHORTLIST_POPULAR = 0
    settings.DISCOVERY_OVERFETCH = 1  # the wide search sees 3 products: the shirt's look-alikes
    emb = serving.active_embeddings()
    shirt = catalog["shirt"]
    wide = {pid for pid, _ in emb.neighbours(shirt.id, 3)}
    shoes = {catalog["sneaker"].id, catalog["boot"].id}
    assert not wide & shoes, "the test needs shoes outside the wide search"
    nearest_shoe = emb.neighbours(shirt.id, 1, allowed_ids=shoes)[0][0]
    data = api_client_for("stylist").get(complete_url("SHIRT-RED")).json()
    shoe_slot = next(slot for slot in data["slots"] if slot["slot"] == "Shoes")
    assert [item["id"] for item in shoe_slot["results"]] == [nearest_shoe]
