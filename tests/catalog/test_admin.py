"""Admin pages: every catalog table is there; writes made in the admin still go through services."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from curation.catalog.models import Category, CategoryChange, Product
from curation.catalog.services import category_get_or_create_path
from tests.factories import make_image_bytes, make_product

pytestmark = pytest.mark.django_db


def product_form(product: Product, **changes) -> dict:
    data = {
        "sku": product.sku, "title": product.title, "brand": product.brand, "gender": product.gender,
        "category": product.category_id, "colour": product.colour, "season": product.season, "usage": product.usage,
        "product_model": product.product_model, "attributes": "{}", "in_stock": "on",
        "category_verified_at_0": "", "category_verified_at_1": "", "colour_verified_at_0": "", "colour_verified_at_1": "",
        "category_changes-TOTAL_FORMS": "0", "category_changes-INITIAL_FORMS": "0",
        "category_changes-MIN_NUM_FORMS": "0", "category_changes-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("model", ["category", "product", "categorychange", "attributechange", "demotruth"])
def test_admin_lists_every_catalog_table(role_client, model):
    make_product()
    assert role_client("admin").get(f"/admin/catalog/{model}/").status_code == 200


def test_audit_tables_are_read_only(role_client):
    admin = role_client("admin")
    assert admin.get("/admin/catalog/categorychange/add/").status_code == 403
    assert admin.get("/admin/catalog/demotruth/add/").status_code == 403


def test_category_change_in_admin_is_audited(role_client):
    product = make_product()
    new = category_get_or_create_path(names="Apparel > Bottomwear > Jeans")
    admin = role_client("admin")
    response = admin.post(f"/admin/catalog/product/{product.pk}/change/", product_form(product, category=new.pk, title="Renamed"))
    assert response.status_code == 302, response.content.decode()[:2000]
    product.refresh_from_db()
    assert product.category == new and product.title == "Renamed" and product.category_verified_at is not None
    change = CategoryChange.objects.filter(product=product).first()
    assert change.new_category == new and change.changed_by == admin.user and change.reason == "changed in admin"


def test_admin_upload_is_validated_and_stored_by_content(role_client, settings):
    product = make_product()
    admin = role_client("admin")
    settings.MAX_IMAGE_PIXELS = 100
    big = SimpleUploadedFile("big.png", make_image_bytes(size=(20, 20), fmt="PNG"), content_type="image/png")
    response = admin.post(f"/admin/catalog/product/{product.pk}/change/", product_form(product, image=big))
    assert response.status_code == 200 and "too many pixels" in response.content.decode()
    settings.MAX_IMAGE_PIXELS = 40_000_000
    data = make_image_bytes(size=(30, 40), fmt="PNG")
    good = SimpleUploadedFile("new.png", data, content_type="image/png")
    response = admin.post(f"/admin/catalog/product/{product.pk}/change/", product_form(product, image=good))
    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.image_width, product.image_height) == (30, 40)
    assert product.image.name == f"products/{product.image_sha256[:2]}/{product.image_sha256}.png"
    assert product.image.read() == data


def test_admin_adds_a_category_with_its_path(role_client):
    parent = category_get_or_create_path(names="Apparel > Topwear")
    response = role_client("admin").post("/admin/catalog/category/add/", {"name": "Polos", "parent": parent.pk})
    assert response.status_code == 302
    assert Category.objects.get(name="Polos").path == "Apparel > Topwear > Polos"


def test_admin_is_for_admins_only(role_client):
    assert role_client("merchandiser").get("/admin/catalog/product/").status_code == 302
