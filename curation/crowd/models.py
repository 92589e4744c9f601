"""Crowd workers' standing and aggregated crowd labels. Votes themselves are pairs.PairLabel rows
with kind=crowd: they are never deleted, suspended workers' votes are excluded when aggregating."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WorkerProfile(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_profile")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    gold_answered = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_reason = models.CharField(max_length=300, blank=True)
    reinstated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reinstated_at = models.DateTimeField(null=True, blank=True)
    # Gold answers before this moment do not count against the worker (set on reinstatement).
    gold_counted_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.status})"


class AggregatedLabel(models.Model):
    """The crowd's answer for one pair: Dawid-Skene (or majority) label with its confidence."""

    class Method(models.TextChoices):
        DAWID_SKENE = "dawid_skene", "Dawid-Skene"
        MAJORITY = "majority", "Majority vote"

    pair = models.OneToOneField("pairs.CandidatePair", on_delete=models.CASCADE, related_name="aggregate")
    value = models.CharField(max_length=3)  # "yes" / "no", as PairLabel.Value
    confidence = models.FloatField()
    method = models.CharField(max_length=12, choices=Method.choices)
    votes = models.PositiveSmallIntegerField()
    escalated = models.BooleanField(default=False)
    computed_at = models.DateTimeField(auto_now=True)
