"""Similar items and replacements: success, filters, graceful messages, auth, roles, bad input."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from curation.discovery.selectors import NO_EMBEDDINGS
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def similar_url(sku: str) -> str:
    return f"/api/discover/products/{sku}/similar/"


def test_similar_lists_nearest_in_stock_products_with_the_embedding_version(api_client_for, catalog, active_set):
    response = api_client_for("crowd").get(similar_url("SHIRT-RED"), {"k": 5})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model_version"] == active_set.pk
    assert data["product"]["sku"] == "SHIRT-RED"
    skus = [item["sku"] for item in data["results"]]
    assert len(skus) == 5
    # The twin has the very same image: nearest, cosine 1.
    assert skus[0] == "SHIRT-RED-2"
    assert data["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert "SHIRT-RED" not in skus
    assert all(item["in_stock"] for item in data["results"])
    scores = [item["score"] for item in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert data["message"] is None


def test_similar_can_include_out_of_stock_products(api_client_for, catalog, active_set):
    client = api_client_for("stylist")
    everything = client.get(similar_url("SHIRT-RED"), {"k": 10, "in_stock": "0"}).json()["results"]
    assert {item["sku"] for item in everything} == {p.sku for p in catalog.values()} - {"SHIRT-RED"}
    assert any(not item["in_stock"] for item in everything)


def test_similar_without_active_embeddings_says_so(api_client_for, catalog):
    data = api_client_for("merchandiser").get(similar_url("SHIRT-RED")).json()
    assert data == {**data, "model_version": None, "results": [], "message": NO_EMBEDDINGS}


def test_a_product_added_after_the_set_was_built_gets_a_message(api_client_for, catalog, active_set):
    make_product("Apparel > Topwear > Shirts", sku="NEW-1")
    data = api_client_for("stylist").get(similar_url("NEW-1")).json()
    assert data["results"] == []
    assert "NEW-1 has no embedding yet" in data["message"]


@pytest.mark.parametrize(
    "query, field",
    [({"k": "0"}, "k"), ({"k": "many"}, "k"), ({"k": "51"}, "k"), ({"in_stock": "perhaps"}, "in_stock")],
)
def test_similar_rejects_bad_parameters_naming_the_field(api_client_for, catalog, query, field):
    response = api_client_for("stylist").get(similar_url("SHIRT-RED"), query)
    assert response.status_code == 400
    assert field in response.json()


def test_similar_unknown_sku_is_404_naming_it(api_client_for, db):
    response = api_client_for("stylist").get(similar_url("NOPE-9"))
    assert response.status_code == 404
    assert "NOPE-9" in response.json()["detail"]


def test_similar_refuses_anonymous_and_bad_tokens(catalog):
    anonymous = APIClient().get(similar_url("SHIRT-RED"))
    assert anonymous.status_code in (401, 403)
    assert "credentials were not provided" in anonymous.json()["detail"]
    bad_token = APIClient(HTTP_AUTHORIZATION="Token not-a-real-token").get(similar_url("SHIRT-RED"))
    assert bad_token.status_code in (401, 403)
    assert "Invalid token" in bad_token.json()["detail"]


def test_similar_refuses_a_user_without_a_role(no_role_client, catalog):
    response = no_role_client.get(similar_url("SHIRT-RED"))
    assert response.status_code == 403
    assert "This endpoint is for" in response.json()["detail"]


def test_token_authentication_works(make_user, catalog, active_set):
    user = make_user("crowd", "token-user")
    token = Token.objects.create(user=user)
    response = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").get(similar_url("SHIRT-RED"), {"k": 2})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


# --- Replacements -------------------------------------------------------------------------------


def test_replacements_are_same_category_in_stock_most_similar_first(api_client_for, catalog, active_set):
    response = api_client_for("merchandiser").get("/api/discover/products/SHIRT-OOS/replacements/")
    assert response.status_code == 200
    data = response.json()
    assert data["model_version"] == active_set.pk
    results = data["results"]
    assert {item["sku"] for item in results} == {"SHIRT-RED", "SHIRT-RED-2", "SHIRT-BLUE"}
    assert all(item["category"] == "Apparel > Topwear > Shirts" and item["in_stock"] for item in results)
    assert [item["score"] for item in results] == sorted((item["score"] for item in results), reverse=True)
    assert results[-1]["sku"] == "SHIRT-BLUE"  # the blue ellipse is least like a red rectangle


def test_replacements_for_an_in_stock_product_say_it_is_in_stock(api_client_for, catalog, active_set):
    data = api_client_for("crowd").get("/api/discover/products/SHIRT-RED/replacements/").json()
    assert data["results"] == []
    assert "is in stock" in data["message"]


def test_replacements_when_nothing_of_the_category_is_in_stock(api_client_for, catalog, active_set):
    data = api_client_for("crowd").get("/api/discover/products/TEE-RED-OOS/replacements/").json()
    assert data["results"] == []
    assert "Apparel > Topwear > Tshirts" in data["message"]


def test_replacements_auth_role_and_bad_input(api_client_for, no_role_client, catalog):
    url = "/api/discover/products/SHIRT-OOS/replacements/"
    assert APIClient().get(url).status_code in (401, 403)
    assert no_role_client.get(url).status_code == 403
    assert api_client_for("stylist").get(url, {"k": "-1"}).status_code == 400
    assert api_client_for("stylist").get("/api/discover/products/NOPE/replacements/").status_code == 404
