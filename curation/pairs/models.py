"""Candidate pairs, labels, skips and curated outfits."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class CandidatePair(models.Model):
    class Source(models.TextChoices):
        SIMILAR = "similar", "Similar to observed"
        UNCERTAIN = "uncertain", "Model uncertain"
        EXPLORATION = "exploration", "Exploration"
        ESCALATED = "escalated", "Escalated from crowd"
        MANUAL = "manual", "Added by hand"

    class Audience(models.TextChoices):
        STYLIST = "stylist", "Stylists"
        CROWD = "crowd", "Crowd"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        DECIDED = "decided", "Decided"
        RETIRED = "retired", "Retired"

    # Stored once per unordered pair: a < b is a database constraint.
    a = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    b = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    audience = models.CharField(max_length=8, choices=Audience.choices, default=Audience.STYLIST)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    priority = models.FloatField(default=0.0)
    model_score = models.FloatField(null=True, blank=True)
    model_version = models.ForeignKey("training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Reservation: the queue hands a pair to one person until reserved_until.
    reserved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reserved_until = models.DateTimeField(null=True, blank=True)
    # When the holder got it: a person may hold a current pair and a prefetched one; the older is
    # shown first. Extending a reservation moves reserved_until, never this.
    reserved_at = models.DateTimeField(null=True, blank=True)
    # Crowd: valid (non-suspended) votes so far; the crowd queue prefers pairs closer to done.
    crowd_votes = models.PositiveSmallIntegerField(default=0)
    # A pair a stylist decided can be mixed into the crowd queue as a hidden gold question.
    is_gold = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(a__lt=F("b")), name="pair_a_lt_b"),
            models.UniqueConstraint(fields=["a", "b"], name="pair_unique_unordered"),
        ]
        indexes = [
            # The queue's hot path: open pairs of one audience by priority.
            models.Index(fields=["audience", "state", "-priority", "id"], name="pair_queue_idx"),
            models.Index(fields=["reserved_by", "reserved_until"], name="pair_reservation_idx"),
            # The crowd queue prefers open crowd pairs closest to done; without this partial
            # index every request scans all open crowd pairs.
            models.Index(
                fields=["-crowd_votes", "-priority", "id"],
                condition=Q(audience="crowd", state="open"),
                name="pair_crowd_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"({self.a_id}, {self.b_id}) {self.source} {self.state}"


class PairLabel(models.Model):
    class Value(models.TextChoices):
        COMPLEMENTARY = "yes", "Complementary"
        NOT_COMPLEMENTARY = "no", "Not complementary"

    class Kind(models.TextChoices):
        STYLIST = "stylist", "Stylist"
        CROWD = "crowd", "Crowd"

    REASON_TAGS = ("colour_clash", "style", "occasion", "season", "same_role", "other")

    pair = models.ForeignKey(CandidatePair, on_delete=models.CASCADE, related_name="labels")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pair_labels")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=3, choices=Value.choices)
    reasons = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    # Milliseconds between the pair being shown and the decision, as the browser measured it.
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Crowd vote on a gold pair: correct or not against the stylist's label (null otherwise).
    gold_correct = models.BooleanField(null=True, blank=True)
    too_fast = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "user"], name="label_unique_pair_user")]
        indexes = [models.Index(fields=["user", "created_at"], name="label_user_time_idx")]

    @property
    def is_positive(self) -> bool:
        return self.value == self.Value.COMPLEMENTARY


class PairSkip(models.Model):
    """A skipped pair goes back to the queue for others, never to the same person the same day."""

    pair = models.ForeignKey(CandidatePair, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "user", "day"], name="skip_unique_per_day")]


class Outfit(models.Model):
    class Source(models.TextChoices):
        BUILDER = "builder", "Outfit builder"
        IMPORT = "import", "Imported"
        DEMO = "demo", "Demo generator"

    name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=120, blank=True, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.BUILDER)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="outfits")
    products = models.ManyToManyField("catalog.Product", through="OutfitItem", related_name="outfits")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], condition=~Q(external_id=""), name="outfit_unique_external_id"),
        ]

    def __str__(self) -> str:
        return self.name


class OutfitItem(models.Model):
    outfit = models.ForeignKey(Outfit, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["outfit", "product"], name="outfit_item_unique")]
