"""The /catalog/ page and the products/categories API: role checks, filters, pagination, schema."""

from __future__ import annotations

import pytest

from curation.accounts.roles import BROWSE_CATALOG
from tests.factories import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def products():
    return [
        make_product(sku="SHIRT1", title="Oxford Blue Shirt", category="Apparel > Topwear > Shirts", colour="Blue"),
        make_product(sku="SHIRT2", title="Linen Red Shirt", category="Apparel > Topwear > Shirts", colour="Red", in_stock=False),
        make_product(sku="JEANS1", title="Slim Blue Jeans", category="Apparel > Bottomwear > Jeans", colour="Blue", brand="Denimco"),
        make_product(sku="SHOE1", title="Runner", category="Footwear > Shoes > Sneakers", colour="White"),
    ]


def skus_on_page(response) -> list[str]:
    return [p.sku for p in response.context["page"].object_list]


@pytest.mark.parametrize("role", BROWSE_CATALOG)
def test_catalog_page_for_each_browsing_role(role_client, products, role):
    response = role_client(role).get("/catalog/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/discover/products/SHIRT1/"' in html
    assert products[0].image.url in html


def test_catalog_page_needs_login_and_a_role(client, make_user, products):
    response = client.get("/catalog/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    from django.contrib.auth import get_user_model

    nobody = get_user_model().objects.create_user("nobody", password="pw-test-12345")
    client.force_login(nobody)
    assert client.get("/catalog/").status_code == 403


def test_catalog_page_filters(role_client, products):
    c = role_client("merchandiser")
    assert skus_on_page(c.get("/catalog/", {"q": "blue"})) == ["JEANS1", "SHIRT1"]
    assert skus_on_page(c.get("/catalog/", {"q": "denimco"})) == ["JEANS1"]
    assert skus_on_page(c.get("/catalog/", {"q": "shoe1"})) == ["SHOE1"]
    apparel = products[0].category.ancestor_at(0)
    assert skus_on_page(c.get("/catalog/", {"category": apparel.pk})) == ["JEANS1", "SHIRT1", "SHIRT2"]
    assert skus_on_page(c.get("/catalog/", {"colour": "blue", "category": products[0].category.pk})) == ["SHIRT1"]
    assert skus_on_page(c.get("/catalog/", {"in_stock": "0"})) == ["SHIRT2"]
    assert skus_on_page(c.get("/catalog/", {"category": "999999"})) == []
    assert skus_on_page(c.get("/catalog/", {"category": "junk"})) == ["JEANS1", "SHIRT1", "SHIRT2", "SHOE1"]


def test_catalog_page_pagination_keeps_filters(role_client):
    for i in range(50):
        make_product(sku=f"P{i:03d}", colour="Green")
    response = role_client("stylist").get("/catalog/", {"colour": "Green"})
    assert len(skus_on_page(response)) == 48
    assert "colour=Green&amp;page=2" in response.content.decode()
    assert skus_on_page(role_client("stylist", "s2").get("/catalog/", {"colour": "Green", "page": 2})) == ["P048", "P049"]


def test_empty_catalog_explains_how_to_fill_it(role_client):
    assert "make_demo_catalog" in role_client("admin").get("/catalog/").content.decode()


@pytest.mark.parametrize("role", BROWSE_CATALOG)
def test_products_api_for_each_role(api_client_for, products, role):
    response = api_client_for(role).get("/api/products/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4 and len(body["results"]) == 4
    first = body["results"][0]
    assert first["sku"] == "JEANS1" and first["category"] == "Apparel > Bottomwear > Jeans"
    assert first["image_url"].startswith("http://testserver/media/products/")


def test_products_api_refuses_anonymous_and_roleless(client, products):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    assert APIClient().get("/api/products/").status_code in (401, 403)
    api = APIClient()
    api.force_authenticate(get_user_model().objects.create_user("nobody"))
    response = api.get("/api/categories/")
    assert response.status_code == 403 and "This endpoint is for" in response.json()["detail"]


def test_products_api_filters_and_detail(api_client_for, products):
    api = api_client_for("stylist")
    skus = lambda params: [p["sku"] for p in api.get("/api/products/", params).json()["results"]]  # noqa: E731
    assert skus({"q": "shirt"}) == ["SHIRT1", "SHIRT2"]
    assert skus({"category_path": "Apparel > Topwear"}) == ["SHIRT1", "SHIRT2"]
    assert skus({"category": products[2].category.pk}) == ["JEANS1"]
    assert skus({"colour": "Blue", "in_stock": "true"}) == ["JEANS1", "SHIRT1"]
    assert skus({"in_stock": "false"}) == ["SHIRT2"]
    assert api.get("/api/products/", {"category": "abc"}).status_code == 400
    detail = api.get("/api/products/SHOE1/")
    assert detail.status_code == 200 and detail.json()["title"] == "Runner"
    assert api.get("/api/products/NOPE/").status_code == 404


def test_products_api_paginates(api_client_for, settings):
    for i in range(55):
        make_product(sku=f"P{i:03d}")
    body = api_client_for("crowd").get("/api/products/").json()
    assert body["count"] == 55 and len(body["results"]) == 50 and body["next"].endswith("page=2")


def test_categories_api(api_client_for, products):
    body = api_client_for("merchandiser").get("/api/categories/").json()
    paths = [c["path"] for c in body["results"]]
    assert paths == sorted(paths) and "Apparel > Topwear > Shirts" in paths and "Apparel" in paths
    shirts = next(c for c in body["results"] if c["path"] == "Apparel > Topwear > Shirts")
    assert shirts["product_count"] == 2 and shirts["level"] == 2


def test_schema_lists_catalog_endpoints(api_client_for):
    response = api_client_for("admin").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in ("/api/products/", "/api/products/{sku}/", "/api/categories/"):
        assert path in text
    assert "category_path" in text
