"""The retraining pipeline in a real Celery worker: the whole loop, and a worker killed mid-run."""

from __future__ import annotations

import pytest

from curation.pairs.models import CandidatePair
from curation.training import serving
from curation.training.models import ModelVersion, PipelineRun
from curation.training.services import pipeline_run_execute, pipeline_run_request, pipeline_runs_fail_stale
from tests.worker.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(900)]

RUN_TIMEOUT = 600  # a loaded 2-core machine embeds and trains slowly; a healthy run takes well under


def _run_state(run_id):
    run = PipelineRun.objects.get(pk=run_id)
    return run if run.status in (PipelineRun.Status.SUCCEEDED, PipelineRun.Status.FAILED) else None


def _active(kind):
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def test_worker_runs_the_whole_pipeline(transactional_db, tiny_labels, start_worker, settings):
    worker = start_worker()
    run = pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON)
    done = wait_for(lambda: _run_state(run.pk), timeout=RUN_TIMEOUT, what=f"run {run.pk} to finish", worker=worker, every=1)
    assert done.status == PipelineRun.Status.SUCCEEDED, f"{done.error}\n{worker.tail()}"
    for kind in ("category", "siamese", "outfit"):
        assert _active(kind).run_id == run.pk, kind
    serving.reset()
    embeddings = serving.active_embeddings()
    assert embeddings.version_id == done.steps["embed"]["embedding_set_id"]
    some = tiny_labels[0].id
    assert len(embeddings.neighbours(some, k=5)) == 5
    assert serving.active_pair_scorer().version_id == _active("siamese").pk
    assert CandidatePair.objects.filter(state=CandidatePair.State.OPEN).exists()
    assert sum(done.steps["refresh"]["candidates"].values()) > 0


def test_worker_killed_during_training_leaves_previous_models_serving(transactional_db, tiny_labels, start_worker, settings):
    settings.RETRAIN_LOCK_STALE_SECONDS = 4
    first = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    first = pipeline_run_execute(run_id=first.pk)
    assert first.status == PipelineRun.Status.SUCCEEDED, first.error
    before = {kind: _active(kind).pk for kind in ("category", "siamese", "outfit")}

    # Many epochs and no early stopping: the siamese step runs long enough to be killed in the middle.
    worker = start_worker(TRAIN_SIAMESE_EPOCHS=100000, TRAIN_SIAMESE_PATIENCE=0)
    doomed = pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON, forced=True)

    def training():
        run = PipelineRun.objects.get(pk=doomed.pk)
        return run.current_step == "train_siamese" and run.steps["train_siamese"].get("done", 0) >= 1

    wait_for(training, timeout=RUN_TIMEOUT, what="the siamese step to train an epoch", worker=worker)
    worker.kill()

    # The active models never changed and still answer.
    assert {kind: _active(kind).pk for kind in before} == before
    serving.reset()
    scorer = serving.active_pair_scorer()
    assert scorer.version_id == before["siamese"]
    a, b = tiny_labels[0].id, tiny_labels[5].id
    assert 0.0 <= float(scorer.score([(a, b)])[0]) <= 1.0

    failed = wait_for(lambda: pipeline_runs_fail_stale(), timeout=60, what="the killed run's heartbeat to go stale")
    assert failed == [doomed.pk]
    doomed.refresh_from_db()
    assert doomed.status == PipelineRun.Status.FAILED and "no heartbeat" in doomed.error and "train_siamese" in doomed.error
    interrupted = ModelVersion.objects.get(run=doomed, kind="siamese")
    assert interrupted.status == ModelVersion.Status.FAILED

    # A new worker and a new run succeed.
    settings.RETRAIN_LOCK_STALE_SECONDS = 900
    worker2 = start_worker(RETRAIN_LOCK_STALE_SECONDS=900)
    again = pipeline_run_request(trigger=PipelineRun.Trigger.BUTTON, forced=True)
    done = wait_for(lambda: _run_state(again.pk), timeout=RUN_TIMEOUT, what=f"run {again.pk} to finish", worker=worker2, every=1)
    assert done.status == PipelineRun.Status.SUCCEEDED, f"{done.error}\n{worker2.tail()}"
    assert _active("siamese").run_id == again.pk
