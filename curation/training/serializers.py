"""DRF serializers for the model registry and pipeline runs."""

from __future__ import annotations

from rest_framework import serializers

from curation.training.models import EmbeddingSet, ModelVersion, PipelineRun
from curation.training.services import STEPS


class ModelVersionSerializer(serializers.ModelSerializer):
    embedding_set = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "kind", "status", "run", "backbone", "config", "data_summary", "metrics", "history",
            "artifact_path", "artifact_sha256", "newest_label_at", "embedding_set", "error",
            "created_at", "started_at", "finished_at", "activated_at",
        ]
        read_only_fields = fields


class EmbeddingSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmbeddingSet
        fields = ["id", "backbone", "dim", "count", "sha256", "is_active", "revision", "model_version", "created_at"]
        read_only_fields = fields


class PipelineRunSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    step_order = serializers.SerializerMethodField()
    model_versions = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = PipelineRun
        fields = [
            "id", "status", "trigger", "forced", "requested_by", "steps", "step_order", "current_step",
            "heartbeat_at", "error", "created_at", "started_at", "finished_at", "model_versions",
        ]
        read_only_fields = fields

    def get_step_order(self, run) -> list[str]:
        return [name for name, _ in STEPS]


class RetrainRequestSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text="activate the new models even when they evaluate worse")


class RollbackRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[k for k in ModelVersion.Kind.values if k != ModelVersion.Kind.BACKBONE], required=False, allow_null=True,
        help_text="roll back one kind; omitted: every kind the newest run activated",
    )


class RegistryStatusSerializer(serializers.Serializer):
    run = PipelineRunSerializer(allow_null=True, help_text="the run in flight, else the newest run")
    active = serializers.DictField(child=ModelVersionSerializer(), help_text="kind -> active version")
    embedding_set = EmbeddingSetSerializer(allow_null=True)
    new_labels = serializers.IntegerField(help_text="labels since the active siamese model was trained")
    retrain_min_new_labels = serializers.IntegerField()
