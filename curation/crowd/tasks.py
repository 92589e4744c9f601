"""Celery tasks of the crowd: one line of work each, the rules live in services.py."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from curation.crowd import services

_PENDING_KEY = "crowd:aggregate:pending"


@shared_task(name="curation.crowd.tasks.crowd_aggregate")
def crowd_aggregate() -> dict:
    cache.delete(_PENDING_KEY)
    report = services.crowd_aggregate()
    return {"aggregated": report.aggregated, "decided": report.decided, "escalated": report.escalated}


def crowd_aggregate_soon() -> bool:
    """Queue one aggregation run a little later, however many pairs complete meanwhile: Dawid-Skene
    refits on every vote, so one run per burst of completions is enough. True if it queued one."""
    delay = settings.CROWD_AGGREGATE_DELAY_SECONDS
    if not cache.add(_PENDING_KEY, 1, timeout=delay + 60):
        return False
    crowd_aggregate.apply_async(countdown=delay)
    return True
