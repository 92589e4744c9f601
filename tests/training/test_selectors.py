"""Training selectors: which side attributes a training run reads."""

from __future__ import annotations

import pytest

from curation.training import selectors
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def test_auto_side_attributes_are_the_descriptive_columns_then_every_imported_attribute():
    make_product(sku="A-1", attributes={"occasion": "party", "material": "wool"})
    make_product(sku="A-2", attributes={"occasion": "office"})
    make_product(sku="A-3", attributes={})
    assert selectors.imported_attribute_names() == ["material", "occasion"]
    assert selectors.side_attribute_names(["auto"]) == ["gender", "usage", "season", "colour", "material", "occasion"]
    # Named ones keep their place, and nothing is read twice.
    assert selectors.side_attribute_names(["occasion", "auto", "brand"]) == [
        "occasion", "gender", "usage", "season", "colour", "material", "brand"]
    assert selectors.side_attribute_names(["colour", "occasion"]) == ["colour", "occasion"]
    assert selectors.side_attribute_names([]) == []


def test_auto_side_attributes_without_imported_attributes_are_the_columns_alone():
    make_product(sku="B-1")
    assert selectors.imported_attribute_names() == []
    assert selectors.side_attribute_names(["AUTO"]) == ["gender", "usage", "season", "colour"]
