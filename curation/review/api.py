"""Review API: the flag queue, a flag with its evidence, decide, bulk decide, header numbers."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.accounts.roles import REVIEW_CATALOG, role_permission
from curation.review import selectors, services
from curation.review.models import CatalogFlag
from curation.review.serializers import (
    BulkDecideRequestSerializer,
    BulkDecideResponseSerializer,
    DecideRequestSerializer,
    DecideResponseSerializer,
    FlagDetailSerializer,
    FlagSerializer,
    StatsSerializer,
)

REVIEWERS = [role_permission(*REVIEW_CATALOG)]


def _error_response(exc: services.ReviewError) -> Response:
    code = status.HTTP_409_CONFLICT if isinstance(exc, services.FlagConflict) else status.HTTP_400_BAD_REQUEST
    return Response({"detail": str(exc)}, status=code)


@extend_schema(
    tags=["review"],
    parameters=[
        OpenApiParameter("state", OpenApiTypes.STR, enum=CatalogFlag.State.values, description="default: open; 'all' for every state"),
        OpenApiParameter("kind", OpenApiTypes.STR, enum=CatalogFlag.Kind.values),
        OpenApiParameter("category", OpenApiTypes.STR, description="a category path: flags whose catalog value is it or lies under it"),
        OpenApiParameter("model_version", OpenApiTypes.INT),
    ],
)
class FlagListApi(generics.ListAPIView):
    """Flags, the catalog values the model doubts most (lowest path ratio) first."""

    permission_classes = REVIEWERS
    serializer_class = FlagSerializer

    def get_queryset(self):
        q = self.request.query_params
        state = q.get("state", CatalogFlag.State.OPEN)
        if state != "all" and state not in CatalogFlag.State.values:
            raise ValidationError({"state": f"expected one of {', '.join(CatalogFlag.State.values)} or 'all'"})
        version = q.get("model_version")
        if version and not version.isdigit():
            raise ValidationError({"model_version": "expected a model version id"})
        return selectors.flags_queryset(state=None if state == "all" else state, kind=q.get("kind") or None,
                                        category=q.get("category") or None, model_version=int(version) if version else None)


class FlagDetailApi(APIView):
    permission_classes = REVIEWERS

    @extend_schema(tags=["review"], responses=FlagDetailSerializer, summary="A flag with its neighbour evidence")
    def get(self, request, flag_id: int):
        flag = get_object_or_404(CatalogFlag.objects.select_related("product", "product__category"), pk=flag_id)
        evidence = selectors.neighbour_evidence(product_id=flag.product_id, kind=flag.kind)
        return Response(FlagDetailSerializer({"flag": flag, "evidence": evidence}).data)


class FlagDecideApi(APIView):
    permission_classes = REVIEWERS

    @extend_schema(tags=["review"], request=DecideRequestSerializer, responses={200: DecideResponseSerializer},
                   summary="Accept the prediction, keep the catalog value, or choose another value")
    def post(self, request, flag_id: int):
        body = DecideRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        get_object_or_404(CatalogFlag, pk=flag_id)
        try:
            flag = services.flag_decide(flag_id=flag_id, user=request.user, action=body.validated_data["action"],
                                        value=body.validated_data.get("value"))
        except services.ReviewError as exc:
            return _error_response(exc)
        flag = CatalogFlag.objects.select_related("product", "decided_by").get(pk=flag.pk)
        return Response(DecideResponseSerializer({"flag": flag, "stats": selectors.review_stats().as_dict()}).data)


class FlagBulkDecideApi(APIView):
    permission_classes = REVIEWERS

    @extend_schema(tags=["review"], request=BulkDecideRequestSerializer, responses={200: BulkDecideResponseSerializer},
                   summary="Accept (or keep) a selection of flags: all or none")
    def post(self, request):
        body = BulkDecideRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            flags = services.flags_bulk_decide(flag_ids=body.validated_data["flag_ids"], user=request.user,
                                               action=body.validated_data["action"])
        except services.ReviewError as exc:
            return _error_response(exc)
        flags = list(CatalogFlag.objects.select_related("product", "decided_by").filter(pk__in=[f.pk for f in flags]))
        return Response(BulkDecideResponseSerializer(
            {"decided": len(flags), "flags": flags, "stats": selectors.review_stats().as_dict()}).data)


class ReviewStatsApi(APIView):
    permission_classes = REVIEWERS

    @extend_schema(tags=["review"], responses=StatsSerializer, summary="Open, fixed, kept and precision of past flags")
    def get(self, request):
        return Response(StatsSerializer(selectors.review_stats().as_dict()).data)


urlpatterns = [
    path("review/flags/", FlagListApi.as_view(), name="review-flags"),
    path("review/flags/bulk-decide/", FlagBulkDecideApi.as_view(), name="review-flags-bulk-decide"),
    path("review/flags/<int:flag_id>/", FlagDetailApi.as_view(), name="review-flag"),
    path("review/flags/<int:flag_id>/decide/", FlagDecideApi.as_view(), name="review-flag-decide"),
    path("review/stats/", ReviewStatsApi.as_view(), name="review-stats"),
]
