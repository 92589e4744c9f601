"""Celery tasks: one line of work each, calling the pipeline services.

Every step is its own task so the embed and train steps can be routed to their own queues
(CELERY_TASK_ROUTES: embed_*, train_*). Tasks are acknowledged late (settings), so a worker
killed mid-step leaves the message to be re-delivered; the step service is idempotent.
"""

from __future__ import annotations

from celery import chain, shared_task

from curation.training.services import pipeline


def _step(run_id: int, step: str) -> bool:
    return pipeline.pipeline_step_run(run_id=run_id, step=step)


@shared_task(name="curation.training.tasks.embed_catalog", acks_late=True)
def embed_catalog(run_id: int) -> bool:
    return _step(run_id, "embed")


@shared_task(name="curation.training.tasks.train_category", acks_late=True)
def train_category(run_id: int) -> bool:
    return _step(run_id, "train_category")


@shared_task(name="curation.training.tasks.train_siamese", acks_late=True)
def train_siamese(run_id: int) -> bool:
    return _step(run_id, "train_siamese")


@shared_task(name="curation.training.tasks.train_outfit", acks_late=True)
def train_outfit(run_id: int) -> bool:
    return _step(run_id, "train_outfit")


@shared_task(name="curation.training.tasks.activate_models", acks_late=True)
def activate_models(run_id: int) -> bool:
    return _step(run_id, "activate")


@shared_task(name="curation.training.tasks.refresh_candidates", acks_late=True)
def refresh_candidates(run_id: int) -> bool:
    return _step(run_id, "refresh")


STEP_TASKS = {
    "embed": embed_catalog,
    "train_category": train_category,
    "train_siamese": train_siamese,
    "train_outfit": train_outfit,
    "activate": activate_models,
    "refresh": refresh_candidates,
}


def pipeline_enqueue(run_id: int) -> None:
    """Send a run's steps to the workers as one chain (a failing step stops the chain)."""
    chain(*(STEP_TASKS[name].si(run_id) for name in pipeline.STEP_NAMES)).apply_async()


@shared_task(name="curation.training.tasks.retrain_if_enough_labels")
def retrain_if_enough_labels() -> int | None:
    run = pipeline.retrain_if_enough_labels()
    return run.pk if run else None


@shared_task(name="curation.training.tasks.fail_stale_runs")
def fail_stale_runs() -> list[int]:
    return pipeline.pipeline_runs_fail_stale()
