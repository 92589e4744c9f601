"""The retraining pipeline run in-process: steps, activation, lock, failures, resume, rollback."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from curation.catalog.models import Product
from curation.pairs.models import CandidatePair
from curation.training import serving
from curation.training.models import EmbeddingSet, ModelVersion, PipelineRun
from curation.training.services import (
    STEP_NAMES,
    PipelineBusy,
    model_version_rollback,
    pipeline_run_execute,
    pipeline_run_request,
    pipeline_runs_fail_stale,
    pipeline_step_run,
    retrain_if_enough_labels,
)

pytestmark = pytest.mark.django_db


def _run(forced: bool = False, capture=None) -> PipelineRun:
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, forced=forced, enqueue=False)
    if capture is not None:
        with capture(execute=True):
            return pipeline_run_execute(run_id=run.pk)
    return pipeline_run_execute(run_id=run.pk)


def _active(kind):
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def test_full_run_activates_every_model_and_refreshes_candidates(tiny_labels, django_capture_on_commit_callbacks):
    lines = []
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = pipeline_run_execute(run_id=run.pk, on_progress=lambda *args: lines.append(args))

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert [run.steps[name]["state"] for name in STEP_NAMES] == ["done"] * len(STEP_NAMES)
    assert {step for step, *_ in lines} >= {"embed", "train_category", "train_siamese", "train_outfit"}
    for kind in (ModelVersion.Kind.CATEGORY, ModelVersion.Kind.SIAMESE, ModelVersion.Kind.OUTFIT):
        version = _active(kind)
        assert version is not None and version.run_id == run.pk, kind
        assert version.artifact_sha256 and version.embedding_set_id == run.steps["embed"]["embedding_set_id"]
    siamese = _active(ModelVersion.Kind.SIAMESE)
    assert [h["epoch"] for h in siamese.history] == [1, 2, 3]
    assert all(h["loss"] > 0 for h in siamese.history)
    assert siamese.data_summary["labels_by_source"]["stylist"]["negative"] > 0
    assert EmbeddingSet.objects.get(is_active=True).pk == run.steps["embed"]["embedding_set_id"]
    assert CandidatePair.objects.filter(state=CandidatePair.State.OPEN).count() > 0
    assert run.steps["refresh"]["candidates"]

    scorer = serving.active_pair_scorer()
    a, b, c = (p.id for p in tiny_labels[:3])
    scores = scorer.score([(a, b), (b, a), (a, c)])
    assert scores.shape == (3,) and scores[0] == scores[1] and np.all((scores >= 0) & (scores <= 1))
    assert np.isnan(scorer.score([(a, 10**9)])[0])
    outfit = serving.active_outfit_scorer()
    assert outfit.score([[a, b, c]]).shape == (1,)
    shoes = [p.id for p in tiny_labels if "Sneakers" in p.category.path]
    best = outfit.complete([a], {"shoes": shoes}, top=2)
    assert len(best["shoes"]) == 2 and all(pid in shoes for pid, _ in best["shoes"])


def test_only_one_run_at_a_time_and_stale_runs_are_failed(db, settings):
    first = pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON, enqueue=False)
    with pytest.raises(PipelineBusy, match=f"run {first.pk} is queued"):
        pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON, enqueue=False)
    PipelineRun.objects.filter(pk=first.pk).update(
        status=PipelineRun.Status.RUNNING, current_step="train_siamese",
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=settings.RETRAIN_LOCK_STALE_SECONDS + 5),
    )
    second = pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON, enqueue=False)
    first.refresh_from_db()
    assert first.status == PipelineRun.Status.FAILED
    assert "no heartbeat" in first.error and "train_siamese" in first.error
    assert second.status == PipelineRun.Status.QUEUED
    assert pipeline_runs_fail_stale() == []


def test_failing_step_fails_run_and_keeps_previous_models(tiny_labels, monkeypatch, django_capture_on_commit_callbacks):
    first = _run(capture=django_capture_on_commit_callbacks)
    before = {kind: _active(kind).pk for kind in ("category", "siamese", "outfit")}
    from curation.training.services import pipeline

    def broken(ctx):
        raise RuntimeError("GPU on fire")

    monkeypatch.setitem(pipeline._STEP_FUNCS, "train_siamese", broken)
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, forced=True, enqueue=False)
    with pytest.raises(RuntimeError, match="GPU on fire"):
        pipeline_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == PipelineRun.Status.FAILED and run.error.startswith("train_siamese: RuntimeError: GPU on fire")
    assert run.steps["train_siamese"]["state"] == "failed"
    assert {kind: _active(kind).pk for kind in before} == before
    assert EmbeddingSet.objects.get(is_active=True).pk == first.steps["embed"]["embedding_set_id"]
    # The remaining steps of a failed run do nothing; a new run succeeds.
    assert pipeline_step_run(run_id=run.pk, step="activate") is False
    monkeypatch.undo()
    again = _run(forced=True, capture=django_capture_on_commit_callbacks)
    assert again.status == PipelineRun.Status.SUCCEEDED
    assert _active("siamese").run_id == again.pk


def test_redelivered_step_resumes_and_fails_the_interrupted_version(tiny_labels):
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    assert pipeline_step_run(run_id=run.pk, step="embed")
    # A worker died inside train_category: the step is running, its version half made.
    run.refresh_from_db()
    run.steps["train_category"].update(state="running", attempts=1)
    PipelineRun.objects.filter(pk=run.pk).update(steps=run.steps, current_step="train_category")
    orphan = ModelVersion.objects.create(kind="category", status="running", run=run, config={"step": "train_category"})
    assert pipeline_step_run(run_id=run.pk, step="train_category")
    orphan.refresh_from_db()
    assert orphan.status == ModelVersion.Status.FAILED
    run.refresh_from_db()
    assert run.steps["train_category"]["state"] == "done" and run.steps["train_category"]["attempts"] == 2
    # Re-delivering a finished step changes nothing.
    versions = ModelVersion.objects.count()
    assert pipeline_step_run(run_id=run.pk, step="embed")
    assert ModelVersion.objects.count() == versions


def test_step_killed_too_often_fails_the_run(tiny_catalog):
    from curation.training.services import PipelineFailed

    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    run.steps["embed"]["attempts"] = 3
    PipelineRun.objects.filter(pk=run.pk).update(steps=run.steps)
    with pytest.raises(PipelineFailed, match="started 3 times"):
        pipeline_step_run(run_id=run.pk, step="embed")
    run.refresh_from_db()
    assert run.status == PipelineRun.Status.FAILED


def test_worse_model_is_kept_ready_unless_forced(tiny_labels, settings):
    from curation.training.services.pipeline import _decide

    active = ModelVersion.objects.create(kind="siamese", status="active", metrics={"pair_auc": 0.8})
    worse = ModelVersion.objects.create(kind="siamese", status="ready", metrics={"pair_auc_same_pairs": 0.70, "active_pair_auc": 0.80})
    ok, why = _decide(worse, forced=False)
    assert not ok and why.startswith(f"kept v{active.pk}")
    assert _decide(worse, forced=True) == (True, "activated: forced by an admin")
    close = ModelVersion.objects.create(kind="siamese", status="ready", metrics={"pair_auc_same_pairs": 0.797, "active_pair_auc": 0.80})
    assert _decide(close, forced=False)[0]


def test_rollback_restores_previous_release(tiny_labels, django_capture_on_commit_callbacks):
    first = _run(capture=django_capture_on_commit_callbacks)
    second = _run(forced=True, capture=django_capture_on_commit_callbacks)
    assert _active("siamese").run_id == second.pk
    with django_capture_on_commit_callbacks(execute=True):
        restored = model_version_rollback()
    assert {v.kind for v in restored} == {"category", "siamese", "outfit"}
    for kind in ("category", "siamese", "outfit"):
        assert _active(kind).run_id == first.pk
    assert serving.active_pair_scorer().version_id == _active("siamese").pk


def test_periodic_check_starts_a_run_only_with_enough_new_labels(tiny_labels, settings, django_capture_on_commit_callbacks):
    from curation.training import selectors

    have = selectors.new_labels_since_active()
    settings.RETRAIN_MIN_NEW_LABELS = have + 1
    assert retrain_if_enough_labels() is None
    settings.RETRAIN_MIN_NEW_LABELS = have
    run = retrain_if_enough_labels()
    assert run is not None and run.trigger == PipelineRun.Trigger.SCHEDULE


def test_served_pair_model_is_refit_on_every_label_and_its_holdout_model_is_kept(tiny_labels, settings, django_capture_on_commit_callbacks):
    from curation.training.services.pipeline import _active_pair_scores

    _run(capture=django_capture_on_commit_callbacks)
    version = _active(ModelVersion.Kind.SIAMESE)
    holdout = version.config["holdout_artifact"]
    assert holdout["path"] != version.artifact_path and holdout["sha256"] != version.artifact_sha256
    assert version.metrics["served_model"] == "refit on every label"
    assert version.data_summary["refit_pairs"] > version.metrics["train_pairs"]
    assert 1 <= version.metrics["best_epoch"] <= settings.TRAIN_SIAMESE_EPOCHS
    ids = [p.id for p in tiny_labels]
    pairs = [(ids[i], ids[j]) for i in range(0, 12) for j in range(12, 24, 3)]
    served = serving.PairScorer(version, serving.active_embeddings()).score(pairs)
    held = serving.PairScorer(version, serving.active_embeddings(), holdout=True).score(pairs)
    assert not np.array_equal(served, held)
    # The next run compares its held-out model with this version's held-out model, not with the
    # refit one (which has seen the held-out slices).
    np.testing.assert_array_equal(_active_pair_scores(pairs), held)
    assert serving.active_pair_scorer().score(pairs).tolist() == served.tolist()

    settings.TRAIN_SIAMESE_REFIT = False
    _run(forced=True, capture=django_capture_on_commit_callbacks)
    plain = _active(ModelVersion.Kind.SIAMESE)
    assert plain.pk != version.pk and "holdout_artifact" not in plain.config and "served_model" not in plain.metrics


def test_type_aware_pair_model_reads_each_products_current_category(tiny_labels, settings, django_capture_on_commit_callbacks):
    from curation.catalog.services import category_create, product_category_change

    _run(capture=django_capture_on_commit_callbacks)
    version = _active(ModelVersion.Kind.SIAMESE)
    assert version.config["model"]["n_categories"] == 4 and len(version.config["category_ids"]) == 4
    shirt, trousers = tiny_labels[0], tiny_labels[6]
    scorer = serving.active_pair_scorer()
    before = scorer.score([(shirt.id, trousers.id)])[0]
    assert scorer.model.uses_categories and scorer.model.uses_attributes
    with CaptureQueriesContext(connection) as queries:
        scorer.score([(shirt.id, trousers.id), (trousers.id, tiny_labels[12].id)])
    # Categories and side attributes come from one read of the catalog.
    assert sum(f'"{Product._meta.db_table}"' in q["sql"] for q in queries.captured_queries) == 1
    # A merchandiser moves the shirt: the score follows its new category...
    product_category_change(product=shirt, new_category=trousers.category, user=None, reason="test")
    moved = scorer.score([(shirt.id, trousers.id)])[0]
    assert moved != before
    # ...and a category the model never saw is scored as "unknown", not refused.
    capes = category_create(name="Capes", parent=trousers.category.parent)
    product_category_change(product=shirt, new_category=capes, user=None, reason="test")
    unknown = scorer.score([(shirt.id, trousers.id)])[0]
    assert 0.0 <= unknown <= 1.0 and unknown not in (before, moved)

    settings.TRAIN_SIAMESE_CATEGORY_DIM = 0
    _run(forced=True, capture=django_capture_on_commit_callbacks)
    serving.reset()
    plain = serving.active_pair_scorer()
    assert plain.version_id != version.pk and not plain.model.uses_categories
    assert plain.score([(shirt.id, trousers.id)]).shape == (1,)


def test_neighbour_pair_augmentation_feeds_the_held_out_and_the_refit_model(tiny_labels, settings, django_capture_on_commit_callbacks):
    from curation.training import selectors

    settings.TRAIN_NEIGHBOUR_PAIRS_K = 2
    _run(capture=django_capture_on_commit_callbacks)
    version = _active(ModelVersion.Kind.SIAMESE)
    labelled = len(selectors.training_pairs())
    assert version.data_summary["neighbour_pairs"] > 0
    assert version.data_summary["refit_pairs"] > labelled  # the refit gets neighbour pairs of every label too


def test_pair_model_reads_side_attributes_through_the_vocabulary_it_saved(tiny_labels, settings, django_capture_on_commit_callbacks):
    # "auto" reads "occasion", which lives in the imported attributes, without naming it; "gender",
    # "usage" and "season" are columns no tiny product fills, and "sku" is unique per product: none
    # of them is worth reading.
    for n, product in enumerate(tiny_labels):
        Product.objects.filter(pk=product.pk).update(attributes={"occasion": "party" if n % 2 else "office"})
    settings.TRAIN_SIDE_ATTRIBUTES = ["auto", "sku"]
    _run(capture=django_capture_on_commit_callbacks)
    version = _active(ModelVersion.Kind.SIAMESE)
    vocab = dict(version.config["side_attributes"])
    assert sorted(vocab) == ["colour", "occasion"] and sorted(vocab["colour"]) == ["blue", "green", "red"]
    assert version.config["model"]["attribute_sizes"] == [len(known) for _, known in version.config["side_attributes"]]
    assert version.metrics["side_attributes"] == [name for name, _ in version.config["side_attributes"]]
    shirt, trousers = tiny_labels[0], tiny_labels[6]
    scorer = serving.active_pair_scorer()
    assert scorer.model.uses_attributes
    before = scorer.score([(shirt.id, trousers.id)])[0]
    # The score follows a product's current values: a corrected colour, then one the model never saw.
    Product.objects.filter(pk=shirt.pk).update(colour="Blue" if shirt.colour != "Blue" else "Green")
    recoloured = scorer.score([(shirt.id, trousers.id)])[0]
    Product.objects.filter(pk=shirt.pk).update(colour="Mauve")
    unknown = scorer.score([(shirt.id, trousers.id)])[0]
    assert len({float(before), float(recoloured), float(unknown)}) == 3 and 0.0 <= unknown <= 1.0
    # The outfit scorer reads the same attributes, as indicator columns after the image features.
    outfit = _active(ModelVersion.Kind.OUTFIT)
    assert outfit.config["side_attributes"] == version.config["side_attributes"]
    assert outfit.config["model"]["in_dim"] == serving.active_embeddings().vectors([shirt.id]).shape[1] + sum(
        len(known) for _, known in outfit.config["side_attributes"])
    outfit_scorer = serving.active_outfit_scorer()
    look = [shirt.id, trousers.id, tiny_labels[12].id]
    as_mauve = outfit_scorer.score([look])[0]
    Product.objects.filter(pk=shirt.pk).update(colour=shirt.colour)
    assert 0.0 <= as_mauve <= 1.0 and outfit_scorer.score([look])[0] != as_mauve
    assert outfit_scorer.complete([shirt.id], {"shoes": [p.id for p in tiny_labels[12:18]]})["shoes"]

    settings.TRAIN_SIAMESE_ATTRIBUTE_DIM = 0
    _run(forced=True, capture=django_capture_on_commit_callbacks)
    serving.reset()
    plain = serving.active_pair_scorer()
    assert plain.version_id != version.pk and not plain.model.uses_attributes
    assert _active(ModelVersion.Kind.SIAMESE).config["side_attributes"] == []
    # The outfit scorer still reads them: only TRAIN_SIDE_ATTRIBUTES turns them off for it.
    assert _active(ModelVersion.Kind.OUTFIT).config["side_attributes"] == version.config["side_attributes"]


def test_looks_are_scored_by_the_pair_model_when_it_answers_more_held_out_questions(tiny_labels, django_capture_on_commit_callbacks):
    from itertools import combinations

    from curation.training.services.pipeline import _looks_scored_by

    assert _looks_scored_by({"fitb": 0.25, "fitb_pair_model": 0.4}) == "pair_model"
    assert _looks_scored_by({"fitb": 0.4, "fitb_pair_model": 0.4}) == "outfit_model"
    assert _looks_scored_by({"fitb": None, "fitb_pair_model": 0.4}) == "outfit_model"
    _run(capture=django_capture_on_commit_callbacks)
    outfit = _active(ModelVersion.Kind.OUTFIT)
    assert outfit.metrics["looks_scored_by"] == outfit.config["looks_scored_by"] == _looks_scored_by(outfit.metrics)

    ids = [p.id for p in tiny_labels]
    look = [ids[0], ids[6], ids[12]]
    own = serving.OutfitScorer(outfit, serving.active_embeddings(), pair_mean=False)
    outfit.config = {**outfit.config, "looks_scored_by": "pair_model"}
    outfit.save(update_fields=["config"])
    serving.reset()
    scorer, pairs = serving.active_outfit_scorer(), serving.active_pair_scorer()
    expected = np.mean(pairs.score(list(combinations(sorted(look), 2))))
    assert scorer.score([look, look[::-1]]).tolist() == pytest.approx([expected, expected])
    # A single product has no pair: the outfit model scores it.
    assert scorer.score([[ids[0]]])[0] == own.score([[ids[0]]])[0]
    # Completion follows the same score: the best candidate has the best mean pair score.
    candidates = ids[12:18]
    picks = scorer.complete([ids[0], ids[6]], {"shoes": candidates}, top=2)["shoes"]
    by_pair_mean = {c: np.mean(pairs.score([(ids[0], c), (ids[6], c), (ids[0], ids[6])])) for c in candidates}
    assert picks[0][0] == max(by_pair_mean, key=by_pair_mean.get) and picks[0][1] >= picks[1][1]
    assert picks[0][1] == pytest.approx(by_pair_mean[picks[0][0]])
