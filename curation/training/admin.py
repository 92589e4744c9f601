"""Read-only admin views of the registry: versions are immutable, switching goes through /models/."""

from django.contrib import admin

from curation.training.models import EmbeddingSet, ModelVersion, PipelineRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "run", "backbone", "created_at", "activated_at")
    list_filter = ("kind", "status")


@admin.register(EmbeddingSet)
class EmbeddingSetAdmin(ReadOnlyAdmin):
    list_display = ("id", "backbone", "count", "dim", "is_active", "revision", "created_at")


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "trigger", "forced", "current_step", "created_at", "finished_at")
    list_filter = ("status", "trigger")
