"""Reads: queue order and filters, header numbers, history, training weights, neighbour evidence."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.review import selectors
from curation.review.models import CatalogFlag
from curation.review.services import flag_decide
from tests.review.conftest import JEANS, SHIRTS

pytestmark = pytest.mark.django_db


def test_queue_is_sorted_by_confidence_and_filters(raise_flags, catalog, model_version):
    from curation.training.models import ModelVersion

    raise_flags({0: (1, 0.7), 3: (0, 0.95), 5: (0, 0.8)})
    assert [f.confidence for f in selectors.flags_queryset()] == pytest.approx([0.95, 0.8, 0.7])
    assert [f.product_id for f in selectors.flags_queryset(category="Apparel > Bottomwear")] == [catalog[3].id]
    assert [f.product_id for f in selectors.flags_queryset(category="Apparel")] == [catalog[3].id, catalog[0].id]
    assert selectors.flags_queryset(category="Apparel > Bottom").count() == 0  # a path, not a prefix of a name
    assert selectors.flags_queryset(kind="colour").count() == 0
    assert selectors.flags_queryset(model_version=model_version.id).count() == 3
    other = ModelVersion.objects.create(kind="category", status="ready")
    assert selectors.flags_queryset(model_version=other.id).count() == 0


def test_stats_count_fixed_kept_and_precision(raise_flags, make_user):
    merch = make_user("merchandiser")
    assert selectors.review_stats().precision is None
    raise_flags({0: (1, 0.7), 3: (0, 0.95), 5: (0, 0.8), 1: (2, 0.9)})
    a, b, c, d = CatalogFlag.objects.order_by("id")
    flag_decide(flag_id=a.id, user=merch, action="accept")
    flag_decide(flag_id=b.id, user=merch, action="choose", value="Footwear > Shoes > Sneakers")
    flag_decide(flag_id=c.id, user=merch, action="keep")
    stats = selectors.review_stats()
    assert (stats.open, stats.fixed, stats.kept, stats.decided) == (1, 2, 1, 3)
    assert stats.precision == pytest.approx(2 / 3, abs=1e-4)


def test_training_sample_weights_weigh_verified_products_up(raise_flags, catalog, make_user, settings, monkeypatch):
    settings.REVIEW_VERIFIED_SAMPLE_WEIGHT = 4.0
    merch = make_user("merchandiser")
    raise_flags({0: (1, 0.7), 3: (0, 0.95)})
    a, b = CatalogFlag.objects.order_by("product_id")
    flag_decide(flag_id=a.id, user=merch, action="accept")
    flag_decide(flag_id=b.id, user=merch, action="keep")
    ids = [p.id for p in catalog]
    weights = selectors.training_sample_weights(ids)
    assert weights.dtype == np.float32 and weights.shape == (6,)
    assert weights.tolist() == [4.0, 1.0, 1.0, 4.0, 1.0, 1.0]
    assert selectors.training_sample_weights(ids, kind="colour").tolist() == [1.0] * 6
    # A whole catalog's ids go to the database in chunks (SQLite's limit on parameters per statement).
    from curation.catalog import selectors as catalog_selectors

    monkeypatch.setattr(catalog_selectors, "IN_QUERY_CHUNK", 2)
    with CaptureQueriesContext(connection) as queries:
        assert selectors.training_sample_weights(ids[::-1]).tolist() == [1.0, 1.0, 4.0, 1.0, 1.0, 4.0]
    assert len(queries.captured_queries) == 3


def test_history_lists_flag_change_and_decision(raise_flags, catalog, make_user):
    merch = make_user("merchandiser", username="mia")
    raise_flags({0: (1, 0.8)})
    flag = CatalogFlag.objects.get()
    flag_decide(flag_id=flag.id, user=merch, action="accept")
    events = selectors.product_history(product=catalog[0])
    assert [(e["type"], e["old"], e["new"]) for e in events] == [
        ("decision", SHIRTS, JEANS), ("change", SHIRTS, JEANS), ("flag", SHIRTS, JEANS),
    ]
    assert events[1]["who"] == "mia" and events[1]["flag_id"] == flag.id


def test_evidence_degrades_without_active_embeddings(catalog):
    evidence = selectors.neighbour_evidence(product_id=catalog[0].id)
    assert evidence["available"] is False and "No embeddings are active" in evidence["reason"]


def test_evidence_reports_neighbour_categories(catalog, monkeypatch):
    """With embeddings active, the neighbours' catalog categories are counted as votes."""

    class FakeEmbeddings:  # stands in for serving.ActiveEmbeddings: the contract, not an index
        def has(self, pid):
            return True

        def neighbours(self, pid, k, allowed_ids=None):
            return [(catalog[3].id, 0.9), (catalog[4].id, 0.8), (catalog[1].id, 0.5)][:k]

    import curation.training.serving as serving

    monkeypatch.setattr(serving, "active_embeddings", lambda: FakeEmbeddings())
    evidence = selectors.neighbour_evidence(product_id=catalog[0].id, k=3)
    assert evidence["available"] is True
    assert evidence["votes"] == [{"value": JEANS, "count": 2}, {"value": SHIRTS, "count": 1}]
    assert [n["sku"] for n in evidence["neighbours"]] == [catalog[3].sku, catalog[4].sku, catalog[1].sku]
