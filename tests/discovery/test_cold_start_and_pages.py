"""Cold start through the Celery task, the HTML pages' role checks, and the OpenAPI schema."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from curation.accounts.roles import ROLES
from curation.discovery import services
from curation.training import serving
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def test_a_new_product_is_embedded_and_found_without_a_retrain(api_client_for, catalog, active_set, django_capture_on_commit_callbacks):
    twin = make_product("Footwear > Shoes > Sneakers", color=(240, 240, 240), shape="ellipse", sku="SNEAK-NEW")
    client = api_client_for("stylist")
    before = client.get("/api/discover/products/SNEAK-1/similar/", {"k": 3}).json()
    assert "SNEAK-NEW" not in [item["sku"] for item in before["results"]]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.products_cold_start(product_ids=[twin.id])
    assert callbacks, "the task is sent only once the import's transaction commits"

    assert serving.active_embeddings().has(twin.id)
    after = client.get("/api/discover/products/SNEAK-1/similar/", {"k": 3}).json()
    assert after["results"][0]["sku"] == "SNEAK-NEW"
    own = client.get("/api/discover/products/SNEAK-NEW/similar/", {"k": 3}).json()
    assert own["message"] is None and own["results"][0]["sku"] == "SNEAK-1"


def test_cold_start_with_no_products_sends_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        services.products_cold_start(product_ids=[])
    assert callbacks == []


@pytest.mark.parametrize("role", ROLES)
def test_product_page_for_every_role_holds_the_three_lists(role_client, catalog, role):
    response = role_client(role).get("/discover/products/SHIRT-OOS/")
    assert response.status_code == 200
    html = response.content.decode()
    for url in ("/api/discover/products/SHIRT-OOS/similar/", "/api/discover/products/SHIRT-OOS/replacements/",
                "/api/discover/products/SHIRT-OOS/complete-the-look/"):
        assert f'data-url="{url}"' in html
    assert "Out of stock" in html and "js/discovery.js" in html


def test_pages_check_login_role_and_sku(client, catalog, role_client):
    from django.contrib.auth import get_user_model

    anonymous = client.get("/discover/products/SHIRT-RED/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert client.get("/discover/search/").status_code == 302
    client.force_login(get_user_model().objects.create_user("nobody", password="pw-test-12345"))
    assert client.get("/discover/products/SHIRT-RED/").status_code == 403
    assert client.get("/discover/search/").status_code == 403
    assert role_client("crowd").get("/discover/products/NOPE-1/").status_code == 404


def test_search_page_offers_the_category_filter(role_client, catalog):
    html = role_client("merchandiser").get("/discover/search/").content.decode()
    assert 'data-search-url="/api/discover/search/"' in html
    assert "Apparel &gt; Bottomwear" in html and 'name="image"' in html


def test_schema_documents_every_endpoint_with_examples_and_token_auth():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    expected = {
        "/api/discover/products/{sku}/similar/": "get",
        "/api/discover/products/{sku}/replacements/": "get",
        "/api/discover/products/{sku}/complete-the-look/": "get",
        "/api/discover/search/": "post",
        "/api/scores/pair/": "post",
        "/api/scores/outfit/": "post",
    }
    for path, method in expected.items():
        operation = paths[path][method]
        assert "discovery" in operation["tags"]
        ok = operation["responses"]["200"]["content"]["application/json"]
        assert ok.get("examples"), f"{path} has no response example"
        assert {"401", "403"} <= set(operation["responses"]), path
    assert "multipart/form-data" in paths["/api/discover/search/"]["post"]["requestBody"]["content"]
    assert "examples" in paths["/api/scores/pair/"]["post"]["requestBody"]["content"]["application/json"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_card_urls_are_the_product_pages(catalog):
    from django.urls import resolve, reverse

    from curation.discovery.selectors import Card
    from curation.discovery.serializers import product_card, product_page_url

    from urllib.parse import unquote

    assert product_page_url("SHIRT-RED") == reverse("discovery:product", args=["SHIRT-RED"])
    assert resolve(unquote(product_page_url("A B?x"))).kwargs == {"sku": "A B?x"}
    card = product_card(Card.of(catalog["shirt"]), 0.5)
    assert resolve(card["url"]).kwargs == {"sku": "SHIRT-RED"}
    assert card["score"] == 0.5 and card["category"] == "Apparel > Topwear > Shirts"
    assert card["image_url"] == catalog["shirt"].image.url != ""
