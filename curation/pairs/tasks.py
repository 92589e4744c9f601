"""Celery tasks of the pairs domain: one line of work each, the rules are in services.py."""

from __future__ import annotations

from celery import shared_task

from curation.pairs import services


@shared_task(name="curation.pairs.tasks.candidates_refresh")
def candidates_refresh(sources: list[str] | None = None, batch: int | None = None) -> dict[str, int]:
    """Refill the stylist queue with new candidate pairs (all sources, or the ones named)."""
    return services.candidates_refresh(sources=sources, batch=batch)


@shared_task(name="curation.pairs.tasks.candidates_refresh_similar")
def candidates_refresh_similar(batch: int | None = None) -> dict[str, int]:
    return services.candidates_refresh(sources=["similar"], batch=batch)


@shared_task(name="curation.pairs.tasks.candidates_refresh_uncertain")
def candidates_refresh_uncertain(batch: int | None = None) -> dict[str, int]:
    return services.candidates_refresh(sources=["uncertain"], batch=batch)


@shared_task(name="curation.pairs.tasks.candidates_refresh_exploration")
def candidates_refresh_exploration(batch: int | None = None) -> dict[str, int]:
    return services.candidates_refresh(sources=["exploration"], batch=batch)
