"""Products a merchandiser verified weigh REVIEW_VERIFIED_SAMPLE_WEIGHT in the next category model."""

import numpy as np
import pytest
from django.utils import timezone

from curation.catalog.models import Product
from curation.training.services.pipeline import pipeline_run_request, pipeline_step_run


class _Captured(Exception):
    pass


def test_verified_products_are_weighted_up(tiny_catalog, settings, monkeypatch):
    import ml.category

    settings.REVIEW_VERIFIED_SAMPLE_WEIGHT = 5.0
    verified = list(Product.objects.order_by("id").values_list("id", flat=True)[:3])
    Product.objects.filter(id__in=verified).update(category_verified_at=timezone.now())
    seen = {}

    def capture(features, labels, n_classes, **kwargs):
        seen["weight"] = kwargs["sample_weight"]
        raise _Captured()

    monkeypatch.setattr(ml.category, "out_of_fold_predictions", capture)
    run = pipeline_run_request(trigger="cli", enqueue=False)
    assert pipeline_step_run(run_id=run.pk, step="embed")
    with pytest.raises(_Captured):
        pipeline_step_run(run_id=run.pk, step="train_category")
    weight = seen["weight"]
    assert sorted(np.unique(weight).tolist()) == [1.0, 5.0]
    assert int((weight == 5.0).sum()) == 3
