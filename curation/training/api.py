"""Model registry API: versions, runs (retrain), activate, rollback, and the page's status poll."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.accounts.roles import MANAGE_MODELS, VIEW_MODELS, role_permission
from curation.training import selectors, services
from curation.training.models import ModelVersion, PipelineRun
from curation.training.serializers import (
    ModelVersionSerializer,
    PipelineRunSerializer,
    RegistryStatusSerializer,
    RetrainRequestSerializer,
    RollbackRequestSerializer,
)

VIEWERS = [role_permission(*VIEW_MODELS)]
MANAGERS = [role_permission(*MANAGE_MODELS)]


@extend_schema(tags=["models"], parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=ModelVersion.Kind.values)])
class VersionListApi(generics.ListAPIView):
    """Model versions, newest first."""

    permission_classes = VIEWERS
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        kind = self.request.query_params.get("kind")
        rows = ModelVersion.objects.select_related("embedding_set").order_by("-created_at", "-id")
        if kind:
            if kind not in ModelVersion.Kind.values:
                raise ValidationError({"kind": f"expected one of {', '.join(ModelVersion.Kind.values)}"})
            rows = rows.filter(kind=kind)
        return rows


@extend_schema(tags=["models"])
class VersionDetailApi(generics.RetrieveAPIView):
    permission_classes = VIEWERS
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()
    lookup_url_kwarg = "version_id"


class VersionActivateApi(APIView):
    permission_classes = MANAGERS

    @extend_schema(tags=["models"], request=None, responses={200: ModelVersionSerializer}, summary="Activate a ready or retired version")
    def post(self, request, version_id: int):
        get_object_or_404(ModelVersion, pk=version_id)
        try:
            version = services.model_version_activate(version_id=version_id)
        except services.RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class RollbackApi(APIView):
    permission_classes = MANAGERS

    @extend_schema(tags=["models"], request=RollbackRequestSerializer, responses={200: ModelVersionSerializer(many=True)},
                   summary="Put back the previously active version(s)")
    def post(self, request):
        body = RollbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            restored = services.model_version_rollback(kind=body.validated_data.get("kind"))
        except services.RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(restored, many=True).data)


class RunListApi(generics.ListAPIView):
    """Pipeline runs, newest first; POST starts a retrain (admins)."""

    serializer_class = PipelineRunSerializer
    # Read by the role-matrix test: who may enter at all (POST narrows it to MANAGE_MODELS).
    allowed_roles = VIEW_MODELS

    def get_permissions(self):
        roles = MANAGE_MODELS if self.request.method == "POST" else VIEW_MODELS
        return [role_permission(*roles)()]

    def get_queryset(self):
        return PipelineRun.objects.select_related("requested_by").prefetch_related("model_versions").order_by("-created_at", "-id")

    @extend_schema(tags=["models"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(tags=["models"], request=RetrainRequestSerializer, responses={202: PipelineRunSerializer},
                   summary="Retrain now: queue a pipeline run (409 when one is in flight)")
    def post(self, request):
        body = RetrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            run = services.pipeline_run_request(
                trigger=PipelineRun.Trigger.BUTTON, forced=body.validated_data["force"], user=request.user
            )
        except services.PipelineBusy as exc:
            data = {"detail": str(exc), "run": PipelineRunSerializer(exc.run).data if exc.run else None}
            return Response(data, status=status.HTTP_409_CONFLICT)
        return Response(PipelineRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["models"])
class RunDetailApi(generics.RetrieveAPIView):
    """One run with its per-step progress."""

    permission_classes = VIEWERS
    serializer_class = PipelineRunSerializer
    queryset = PipelineRun.objects.all()
    lookup_url_kwarg = "run_id"


class RegistryStatusApi(APIView):
    permission_classes = VIEWERS

    @extend_schema(tags=["models"], responses=RegistryStatusSerializer, summary="What the models page polls")
    def get(self, request):
        services.pipeline_runs_fail_stale()
        run = selectors.run_in_flight() or PipelineRun.objects.order_by("-created_at", "-id").first()
        active = {v.kind: v for v in ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)}
        data = {
            "run": run,
            "active": active,
            "embedding_set": selectors.active_embedding_set(),
            "new_labels": selectors.new_labels_since_active(),
            "retrain_min_new_labels": settings.RETRAIN_MIN_NEW_LABELS,
        }
        return Response(RegistryStatusSerializer(data).data)


urlpatterns = [
    path("models/versions/", VersionListApi.as_view(), name="training-versions"),
    path("models/versions/<int:version_id>/", VersionDetailApi.as_view(), name="training-version"),
    path("models/versions/<int:version_id>/activate/", VersionActivateApi.as_view(), name="training-activate"),
    path("models/rollback/", RollbackApi.as_view(), name="training-rollback"),
    path("models/runs/", RunListApi.as_view(), name="training-runs"),
    path("models/runs/<int:run_id>/", RunDetailApi.as_view(), name="training-run"),
    path("models/status/", RegistryStatusApi.as_view(), name="training-status"),
]
