"""Category paths, audited category/colour changes, product upsert."""

from __future__ import annotations

import pytest
from django.db.models.query import QuerySet

from curation.catalog.models import AttributeChange, Category, CategoryChange, Product
from curation.catalog.services import (
    category_create,
    category_get_or_create_path,
    product_attribute_change,
    product_category_change,
    product_upsert,
)
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def test_category_path_creates_each_level_once():
    leaf = category_get_or_create_path(names=["Apparel", "Topwear", "Shirts"])
    assert (leaf.path, leaf.level, leaf.name) == ("Apparel > Topwear > Shirts", 2, "Shirts")
    assert leaf.parent.path == "Apparel > Topwear" and leaf.parent.parent.parent is None
    assert category_get_or_create_path(names="Apparel > Topwear > Shirts") == leaf
    sibling = category_get_or_create_path(names="Apparel > Topwear > Tshirts")
    assert sibling.parent == leaf.parent
    assert Category.objects.count() == 4
    assert category_create(name="Polos", parent=leaf.parent).path == "Apparel > Topwear > Polos"


@pytest.mark.parametrize("names", ["Apparel >  > Shirts", ["Apparel", ""], ["Apparel", "A>B"], []])
def test_category_path_refuses_bad_levels(names):
    with pytest.raises(ValueError):
        category_get_or_create_path(names=names)
    assert Category.objects.count() == 0


def test_category_change_is_audited_and_marks_verified(make_user):
    product = make_product(category="Apparel > Topwear > Shirts")
    old = product.category
    new = category_get_or_create_path(names="Apparel > Topwear > Tshirts")
    user = make_user("merchandiser")
    change = product_category_change(product=product, new_category=new, user=user, reason="review: model was right")
    assert (change.old_category, change.new_category, change.changed_by, change.reason) == (old, new, user, "review: model was right")
    stored = Product.objects.get(pk=product.pk)
    assert stored.category == new and stored.category_verified_at is not None
    assert product.category == new  # the caller's instance follows
    # Same category again: no audit row, verification refreshed.
    assert product_category_change(product=product, new_category=new, user=user, reason="again") is None
    assert CategoryChange.objects.filter(product=product).count() == 1


def test_category_change_by_the_system_is_not_a_verification():
    product = make_product()
    new = category_get_or_create_path(names="Apparel > Bottomwear > Jeans")
    change = product_category_change(product=product, new_category=new, user=None, reason="import")
    assert change.changed_by is None
    assert Product.objects.get(pk=product.pk).category_verified_at is None


def test_category_change_with_flag(make_user):
    from curation.review.models import CatalogFlag

    product = make_product()
    flag = CatalogFlag.objects.create(product=product, catalog_value=product.category.path, predicted_value="Apparel > X", confidence=0.9)
    new = category_get_or_create_path(names="Apparel > X")
    change = product_category_change(product=product, new_category=new, user=make_user("merchandiser"), reason="flag", flag=flag)
    assert change.flag == flag and list(flag.changes.all()) == [change]


def test_category_change_is_all_or_nothing(monkeypatch, make_user):
    product = make_product()
    new = category_get_or_create_path(names="Apparel > Bottomwear > Jeans")

    def broken_update(self, **kwargs):
        raise RuntimeError("lost the database")

    monkeypatch.setattr(QuerySet, "update", broken_update)
    with pytest.raises(RuntimeError):
        product_category_change(product=product, new_category=new, user=make_user("merchandiser"), reason="x")
    monkeypatch.undo()
    assert CategoryChange.objects.count() == 0
    assert Product.objects.get(pk=product.pk).category.path == "Apparel > Topwear > Shirts"


def test_colour_change_is_audited(make_user):
    product = make_product(colour="Red")
    user = make_user("merchandiser")
    change = product_attribute_change(product=product, attribute="colour", new_value="Maroon", user=user, reason="review")
    assert (change.old_value, change.new_value, change.changed_by) == ("Red", "Maroon", user)
    stored = Product.objects.get(pk=product.pk)
    assert stored.colour == "Maroon" and stored.colour_verified_at is not None
    assert product_attribute_change(product=product, attribute="colour", new_value="Maroon", user=user, reason="x") is None
    with pytest.raises(ValueError):
        product_attribute_change(product=product, attribute="title", new_value="x", user=user, reason="x")
    assert AttributeChange.objects.count() == 1


def test_upsert_creates_then_updates_only_what_changed():
    category = category_get_or_create_path(names="A > B")
    first = product_upsert(sku="S1", title="One", category=category, fields={"colour": "Red", "in_stock": True})
    assert first.created and CategoryChange.objects.filter(product=first.product).count() == 1
    same = product_upsert(sku="S1", title="One", category=category, fields={"colour": "Red", "in_stock": True})
    assert not same.created and same.changed_fields == []
    changed = product_upsert(sku="S1", title="One", category=category, fields={"colour": "Blue", "in_stock": False})
    assert sorted(changed.changed_fields) == ["colour", "in_stock"] and not changed.category_changed
    with pytest.raises(ValueError, match="unknown product fields"):
        product_upsert(sku="S1", title="One", category=category, fields={"sku": "S2"})
