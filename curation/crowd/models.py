"""Crowd workers' standing, their reservations and aggregated crowd labels. Votes themselves are
pairs.PairLabel rows with kind=crowd: they are never deleted by the system; suspended workers' votes
are excluded when counting and aggregating."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from curation.pairs.models import CandidatePair


class WorkerProfile(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_profile")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    # Gold answers counted since gold_counted_since: what the suspension rule looks at.
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

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED


class CrowdReservation(models.Model):
    """One worker holding one pair until reserved_until.

    The stylist queue's reservation (CandidatePair.reserved_by) admits one holder per pair; a crowd
    pair needs k different workers, so up to k - crowd_votes workers may hold it at once. Rows are
    created under the pair's row lock, which is what keeps a pair from collecting more than k votes.
    """

    pair = models.ForeignKey(CandidatePair, on_delete=models.CASCADE, related_name="crowd_reservations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_reservations")
    reserved_at = models.DateTimeField()
    reserved_until = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "user"], name="crowd_reservation_unique")]
        indexes = [
            models.Index(fields=["pair", "reserved_until"], name="crowd_res_pair_idx"),
            models.Index(fields=["user", "reserved_until"], name="crowd_res_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} holds {self.pair_id} until {self.reserved_until:%H:%M:%S}"


class AggregatedLabel(models.Model):
    """The crowd's answer for one pair: Dawid-Skene (or majority) label with its confidence.

    The majority vote is stored next to it so the quality page can compare the two methods.
    """

    class Method(models.TextChoices):
        DAWID_SKENE = "dawid_skene", "Dawid-Skene"
        MAJORITY = "majority", "Majority vote"

    pair = models.OneToOneField(CandidatePair, on_delete=models.CASCADE, related_name="aggregate")
    value = models.CharField(max_length=3)  # "yes" / "no", as PairLabel.Value
    confidence = models.FloatField()
    method = models.CharField(max_length=12, choices=Method.choices)
    votes = models.PositiveSmallIntegerField()
    majority_value = models.CharField(max_length=3, blank=True)
    # Share of the valid votes that agree with the majority (0.5 on a tie).
    majority_share = models.FloatField(null=True, blank=True)
    escalated = models.BooleanField(default=False)
    escalation_reason = models.CharField(max_length=120, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"pair {self.pair_id}: {self.value} ({self.confidence:.2f}, {self.method})"


class CrowdPair(CandidatePair):
    """A proxy of CandidatePair so the admin can send pairs to the crowd and mark gold pairs
    from the crowd app without touching the pairs app's admin."""

    class Meta:
        proxy = True
        verbose_name = "pair (crowd view)"
        verbose_name_plural = "pairs (crowd view)"
