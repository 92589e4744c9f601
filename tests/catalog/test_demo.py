"""make_demo_catalog: deterministic, recognisable silhouettes, the hidden rule, outfits, ~3% wrong."""

from __future__ import annotations

import io
from itertools import combinations

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from curation.catalog import demo
from curation.catalog.demo import KINDS, StyleFacts, demo_plan, demo_render, style_complementary
from curation.catalog.models import CategoryChange, DemoTruth, Product
from curation.catalog.selectors import demo_pair_is_complementary
from curation.pairs.models import Outfit


def test_plan_is_deterministic_for_a_seed():
    a, b = demo_plan(products=80, seed=5), demo_plan(products=80, seed=5)
    assert [(i.sku, i.kind, i.catalog_kind, i.colour, i.hue, i.pattern, i.formality) for i in a.items] == [
        (i.sku, i.kind, i.catalog_kind, i.colour, i.hue, i.pattern, i.formality) for i in b.items
    ]
    assert a.outfits == b.outfits
    assert [demo_render(i) for i in a.items[:10]] == [demo_render(i) for i in b.items[:10]]
    other = demo_plan(products=80, seed=6)
    assert [(i.kind, i.colour) for i in other.items] != [(i.kind, i.colour) for i in a.items]


def test_plan_covers_every_category_and_seeds_about_three_percent_errors():
    plan = demo_plan(products=400, seed=1)
    assert len(plan.items) == 400
    assert {i.kind for i in plan.items} == set(KINDS)
    wrong = [i for i in plan.items if i.miscategorised]
    assert len(wrong) == 12
    assert all(i.catalog_kind == demo.CONFUSION[i.kind] for i in wrong)
    assert {i.pattern for i in plan.items} == set(demo.PATTERNS)
    # Colour variants share a model.
    assert len({i.product_model for i in plan.items}) < 400


def _mask(item) -> np.ndarray:
    pixels = np.asarray(Image.open(io.BytesIO(demo_render(item))).convert("L"))
    return pixels < 235


def test_each_category_has_its_own_silhouette():
    # Same colour, pattern, formality and placement: only the category changes the shape.
    base = demo_plan(products=1, seed=0).items[0]
    shape = {"scale": 0.9, "dx": 0, "dy": 0, "widen": 1.0, "stripe_vertical": True, "period": 12, "detail": 0.5}
    masks = {}
    for kind in KINDS:
        item = demo.DemoItem(**{**base.__dict__, "kind": kind, "catalog_kind": kind, "formality": 1, "pattern": "solid",
                                "rgb": (40, 60, 160), "shape": shape})
        masks[kind] = _mask(item)
        assert 0.03 < masks[kind].mean() < 0.7, f"{kind} silhouette missing or fills the frame"
    for a, b in combinations(KINDS, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.85, f"{a} and {b} look alike (IoU {iou:.2f})"


def test_formality_changes_the_shoe_silhouette():
    base = demo_plan(products=1, seed=0).items[0]
    masks = [_mask(demo.DemoItem(**{**base.__dict__, "kind": "shoes", "formality": f, "pattern": "solid"})) for f in range(3)]
    for a, b in combinations(masks, 2):
        assert (a & b).sum() / (a | b).sum() < 0.9


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (StyleFacts("top", 1, 10.0, "solid"), StyleFacts("bottom", 1, 350.0, "stripes"), True),  # 20 degrees across 0
        (StyleFacts("top", 1, 10.0, "solid"), StyleFacts("bottom", 1, 190.0, "solid"), True),  # complementary hues
        (StyleFacts("top", 1, 10.0, "solid"), StyleFacts("bottom", 1, 100.0, "solid"), False),  # 90 degrees: clash
        (StyleFacts("top", 1, 100.0, "dots"), StyleFacts("shoes", 1, -1.0, "solid"), True),  # a neutral goes with all
        (StyleFacts("top", 0, 10.0, "solid"), StyleFacts("bottom", 2, 10.0, "solid"), False),  # formality differs
        (StyleFacts("top", 1, 10.0, "checks"), StyleFacts("bottom", 1, 10.0, "dots"), False),  # two patterns
        (StyleFacts("dress", 1, -1.0, "solid"), StyleFacts("top", 1, -1.0, "solid"), False),  # dress + top
        (StyleFacts("top", 1, -1.0, "solid"), StyleFacts("top", 1, -1.0, "solid"), False),  # same slot
    ],
)
def test_style_rule(a, b, expected):
    assert style_complementary(a, b) is expected
    assert style_complementary(b, a) is expected


@pytest.mark.django_db
def test_command_writes_catalog_truth_and_outfits(settings):
    out = io.StringIO()
    call_command("make_demo_catalog", "--products", "100", "--seed", "3", stdout=out, stderr=io.StringIO())
    assert "100 products" in out.getvalue()
    assert Product.objects.count() == 100 == DemoTruth.objects.count()
    assert CategoryChange.objects.filter(old_category__isnull=True).count() == 100
    wrong = DemoTruth.objects.filter(miscategorised=True).select_related("product")
    assert wrong.count() == 3
    for truth in wrong:
        assert truth.product.category_id != truth.true_category_id
    for truth in DemoTruth.objects.filter(miscategorised=False).select_related("product"):
        assert truth.product.category_id == truth.true_category_id
    product = Product.objects.first()
    assert product.image and product.image_sha256 and (product.image_width, product.image_height) == demo.IMAGE_SIZE

    outfits = Outfit.objects.filter(source=Outfit.Source.DEMO).prefetch_related("items")
    assert outfits.count() >= 5
    for outfit in outfits:
        ids = [item.product_id for item in outfit.items.all()]
        assert len(ids) >= 2
        for a, b in combinations(ids, 2):
            assert demo_pair_is_complementary(a, b) is True


@pytest.mark.django_db
def test_if_empty_and_rerun(settings):
    call_command("make_demo_catalog", "--products", "12", "--seed", "4", stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("make_demo_catalog", "--products", "12", "--seed", "9", "--if-empty", stdout=out, stderr=io.StringIO())
    assert "nothing to do" in out.getvalue() and Product.objects.count() == 12
    with pytest.raises(CommandError, match="already exist"):
        call_command("make_demo_catalog", "--products", "12", "--seed", "4", stdout=io.StringIO(), stderr=io.StringIO())
    assert Product.objects.count() == 12


@pytest.mark.django_db
def test_demo_truth_selector_is_none_for_real_products():
    from tests.factories import make_product

    a, b = make_product(), make_product()
    assert demo_pair_is_complementary(a.pk, b.pk) is None


@pytest.mark.django_db
def test_failed_generation_leaves_nothing(settings, monkeypatch):
    from pathlib import Path

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo.OutfitItem.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        call_command("make_demo_catalog", "--products", "40", "--seed", "2", stdout=io.StringIO(), stderr=io.StringIO())
    assert Product.objects.count() == 0 and DemoTruth.objects.count() == 0 and Outfit.objects.count() == 0
    assert [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()] == []
