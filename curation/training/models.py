"""The model registry, embedding sets and pipeline runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """One trained model. Immutable once ready; exactly one active per kind."""

    class Kind(models.TextChoices):
        BACKBONE = "backbone", "Backbone (embeddings)"
        CATEGORY = "category", "Category model"
        SIAMESE = "siamese", "Siamese pair model"
        OUTFIT = "outfit", "Outfit scorer"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        RETIRED = "retired", "Retired"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    run = models.ForeignKey("PipelineRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    backbone = models.CharField(max_length=300, blank=True)  # e.g. "resnet50:none@224" or weights sha
    config = models.JSONField(default=dict, blank=True)
    data_summary = models.JSONField(default=dict, blank=True)  # label counts by source, newest label time
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)  # per epoch: {"epoch", "loss", "val_auc"}
    artifact_path = models.CharField(max_length=500, blank=True)  # relative to ARTIFACTS_ROOT
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    newest_label_at = models.DateTimeField(null=True, blank=True)
    # The feature space a pair/outfit/category model was trained in; activating the model makes
    # this set active too when the active set has another backbone.
    embedding_set = models.ForeignKey(
        "EmbeddingSet", null=True, blank=True, on_delete=models.PROTECT, related_name="trained_models"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=Q(status="active"), name="model_one_active_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.pk} ({self.status})"


class EmbeddingSet(models.Model):
    """Vectors for the whole catalog and the FAISS index built from them with one backbone."""

    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="embedding_sets")
    backbone = models.CharField(max_length=300)
    dim = models.PositiveIntegerField()
    count = models.PositiveIntegerField()
    vectors_path = models.CharField(max_length=500)  # relative to ARTIFACTS_ROOT
    index_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    is_active = models.BooleanField(default=False)
    # Bumped when cold-start products are appended, so every process reloads the set.
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="embeddingset_one_active"),
        ]


class PipelineRun(models.Model):
    """One run of the retraining pipeline. The row is the pipeline lock (the unique ``lock``
    column): at most one run is queued or running, and it survives worker restarts because it is
    a row; a run whose worker died is failed by its stale heartbeat."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        BUTTON = "button", "Retrain now"
        SCHEDULE = "schedule", "New labels"
        CLI = "cli", "Command line"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # True while queued or running, NULL after: unique, so a second in-flight run cannot exist
    # (NULLs never collide). The check constraint keeps it in step with the status.
    lock = models.BooleanField(null=True, default=True, editable=False)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    forced = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # {"embed": {"state": "done", "done": 120, "total": 120}, "train_siamese": {...}, ...}
    steps = models.JSONField(default=dict, blank=True)
    current_step = models.CharField(max_length=40, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lock"], name="pipeline_one_in_flight"),
            models.CheckConstraint(
                condition=(Q(status__in=["queued", "running"]) & Q(lock=True))
                | (~Q(status__in=["queued", "running"]) & Q(lock__isnull=True)),
                name="pipeline_lock_matches_status",
            ),
        ]
