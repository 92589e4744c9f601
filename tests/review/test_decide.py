"""Deciding flags: the product changes, the audit row is written, the flag closes; all or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from curation.catalog.models import AttributeChange, CategoryChange, Product
from curation.review.models import CatalogFlag
from curation.review.services import FlagConflict, ReviewError, flag_decide, flags_bulk_decide, flags_refresh
from tests.review.conftest import JEANS, SHIRTS, SHOES

pytestmark = pytest.mark.django_db


@pytest.fixture
def merch(make_user):
    return make_user("merchandiser")


def test_accept_changes_category_and_audits(raise_flags, catalog, merch):
    raise_flags({0: (1, 0.8)})
    flag = CatalogFlag.objects.get()
    flag_decide(flag_id=flag.id, user=merch, action="accept")
    product = Product.objects.get(pk=catalog[0].pk)
    assert product.category.path == JEANS
    assert product.category_verified_at is not None
    change = CategoryChange.objects.get(product=product)
    assert (change.old_category.path, change.new_category.path, change.changed_by, change.flag_id) == (SHIRTS, JEANS, merch, flag.id)
    flag.refresh_from_db()
    assert (flag.state, flag.decided_value, flag.decided_by) == ("fixed", JEANS, merch)
    assert flag.decided_at is not None


def test_keep_records_verified_without_a_change(raise_flags, catalog, merch):
    raise_flags({0: (1, 0.8)})
    flag = CatalogFlag.objects.get()
    flag_decide(flag_id=flag.id, user=merch, action="keep")
    product = Product.objects.get(pk=catalog[0].pk)
    assert product.category.path == SHIRTS and product.category_verified_at is not None
    assert not CategoryChange.objects.exists()
    flag.refresh_from_db()
    assert (flag.state, flag.decided_value) == ("kept", SHIRTS)


def test_choose_another_category_by_path_or_id(raise_flags, catalog, merch):
    from curation.catalog.models import Category

    raise_flags({0: (1, 0.8), 3: (0, 0.9)})
    first, second = CatalogFlag.objects.order_by("product_id")
    flag_decide(flag_id=first.id, user=merch, action="choose", value=SHOES)
    flag_decide(flag_id=second.id, user=merch, action="choose", value=str(Category.objects.get(path=SHOES).id))
    assert Product.objects.get(pk=catalog[0].pk).category.path == SHOES
    assert Product.objects.get(pk=catalog[3].pk).category.path == SHOES
    assert set(CatalogFlag.objects.values_list("state", flat=True)) == {"recategorised"}
    assert CategoryChange.objects.filter(new_category__path=SHOES).count() == 2


def test_choosing_the_predicted_or_catalog_value_counts_as_accept_or_keep(raise_flags, catalog, merch):
    raise_flags({0: (1, 0.8), 3: (0, 0.9)})
    first, second = CatalogFlag.objects.order_by("product_id")
    assert flag_decide(flag_id=first.id, user=merch, action="choose", value=JEANS).state == "fixed"
    assert flag_decide(flag_id=second.id, user=merch, action="choose", value=JEANS).state == "kept"


def test_colour_accept_writes_attribute_change(catalog, model_version, merch):
    flags_refresh(model_version=model_version, kind="colour", product_ids=[catalog[1].id],
                  proba=np.array([[0.9, 0.1]]), class_values=["Red", "Blue"])
    flag = CatalogFlag.objects.get()
    flag_decide(flag_id=flag.id, user=merch, action="accept")
    product = Product.objects.get(pk=catalog[1].pk)
    assert product.colour == "Red" and product.colour_verified_at is not None and product.category_verified_at is None
    change = AttributeChange.objects.get()
    assert (change.attribute, change.old_value, change.new_value, change.flag_id, change.changed_by) == ("colour", "Blue", "Red", flag.id, merch)


def test_decided_flag_cannot_be_decided_again(raise_flags, merch):
    raise_flags({0: (1, 0.8)})
    flag = CatalogFlag.objects.get()
    flag_decide(flag_id=flag.id, user=merch, action="keep")
    with pytest.raises(FlagConflict, match="already kept"):
        flag_decide(flag_id=flag.id, user=merch, action="accept")


def test_stale_flag_is_refused_when_the_product_changed_meanwhile(raise_flags, catalog, merch):
    from curation.catalog.services import product_category_change
    from tests.factories import category_path

    raise_flags({0: (1, 0.8)})
    product_category_change(product=catalog[0], new_category=category_path(SHOES), user=merch, reason="admin edit")
    with pytest.raises(FlagConflict, match="changed from"):
        flag_decide(flag_id=CatalogFlag.objects.get().id, user=merch, action="accept")
    assert Product.objects.get(pk=catalog[0].pk).category.path == SHOES


@pytest.mark.parametrize(
    "action,value,message",
    [("delete", None, "action='delete'"), ("choose", None, "value: required"), ("choose", "No > Such", "no category 'No > Such'")],
)
def test_bad_decisions_name_the_problem_and_change_nothing(raise_flags, catalog, merch, action, value, message):
    raise_flags({0: (1, 0.8)})
    with pytest.raises(ReviewError, match=message):
        flag_decide(flag_id=CatalogFlag.objects.get().id, user=merch, action=action, value=value)
    assert CatalogFlag.objects.get().state == "open"
    assert not CategoryChange.objects.exists()


def test_bulk_accept_all(raise_flags, catalog, merch):
    raise_flags({0: (1, 0.8), 3: (0, 0.9), 5: (0, 0.7)})
    ids = list(CatalogFlag.objects.values_list("id", flat=True))
    decided = flags_bulk_decide(flag_ids=ids, user=merch)
    assert [f.state for f in decided] == ["fixed"] * 3
    assert [Product.objects.get(pk=catalog[i].pk).category.path for i in (0, 3, 5)] == [JEANS, SHIRTS, SHIRTS]
    assert CategoryChange.objects.count() == 3


def test_bulk_accept_is_all_or_nothing(raise_flags, catalog, merch):
    raise_flags({0: (1, 0.8), 3: (0, 0.9)})
    first, second = CatalogFlag.objects.order_by("product_id")
    flag_decide(flag_id=second.id, user=merch, action="keep")
    with pytest.raises(FlagConflict, match=f"flag #{second.id} is already kept"):
        flags_bulk_decide(flag_ids=[first.id, second.id], user=merch)
    assert CatalogFlag.objects.get(pk=first.id).state == "open"
    assert Product.objects.get(pk=catalog[0].pk).category.path == SHIRTS
    assert not CategoryChange.objects.exists()
