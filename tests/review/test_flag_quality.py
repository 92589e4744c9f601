"""flag_quality_against_demo_truth and its command, on a hand-made truth table."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from curation.catalog.models import Category, DemoTruth
from curation.review.selectors import flag_quality_against_demo_truth
from tests.review.conftest import JEANS

pytestmark = pytest.mark.django_db


def _truth(product, true_path, wrong):
    DemoTruth.objects.create(product=product, true_category=Category.objects.get(path=true_path), miscategorised=wrong,
                             formality=1, hue=0.0, pattern="solid")


def test_precision_recall_and_suggestions(raise_flags, catalog):
    # p0 (shirts) truly jeans, p1 (shirts) truly shoes, p2 right; p3 p4 p5 right.
    _truth(catalog[0], JEANS, True)
    _truth(catalog[1], "Footwear > Shoes > Sneakers", True)
    for p in catalog[2:]:
        _truth(p, p.category.path, False)
    raise_flags({0: (1, 0.9), 2: (1, 0.8), 3: (0, 0.7)})  # p0 right flag+suggestion; p2, p3 false alarms; p1 missed
    quality = flag_quality_against_demo_truth()
    assert quality == {"products": 6, "miscategorised": 2, "flagged": 3, "true_positives": 1,
                       "precision": pytest.approx(0.3333), "recall": 0.5, "suggestion_right": 1}
    out = StringIO()
    call_command("review_flag_quality", stdout=out)
    assert json.loads(out.getvalue())["recall"] == 0.5


def test_command_explains_missing_demo_catalog(catalog):
    with pytest.raises(CommandError, match="make_demo_catalog"):
        call_command("review_flag_quality")
