"""JSON endpoints for stylists: the labeling queue, outfits, product search and exports.

Thin: validate, call a service or selector, shape the answer. Every view admits LABEL_PAIRS only.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.accounts.roles import LABEL_PAIRS, role_permission
from curation.pairs import export, selectors, services
from curation.pairs.models import Outfit
from curation.pairs.serializers import (
    NextSerializer,
    OutfitPatchSerializer,
    OutfitSerializer,
    ProductCardSerializer,
    SkipResultSerializer,
    SkipSerializer,
    SubmitResultSerializer,
    SubmitSerializer,
    UndoResultSerializer,
)

TAG = "pairs"


class _StylistView(APIView):
    permission_classes = [role_permission(*LABEL_PAIRS)]


def _bad_input(exc: ValueError):
    field, sep, message = str(exc).partition(": ")
    return ValidationError({field: [message]} if sep else {"detail": str(exc)})


class NextPairView(_StylistView):
    @extend_schema(tags=[TAG], responses=NextSerializer, summary="Reserve the next pair (and a prefetched one)")
    def get(self, request):
        state = services.stylist_queue_next(user=request.user)
        return Response(
            {
                "pair": selectors.pair_payload(state.current),
                "prefetch": selectors.pair_payload(state.prefetch),
                "counts": {"today": state.today, "queue_left": state.queue_left, "queue_left_capped": state.queue_left_capped},
                "empty_reason": state.empty_reason,
                "empty_code": state.empty_code,
            }
        )


class SubmitView(_StylistView):
    @extend_schema(tags=[TAG], request=SubmitSerializer, responses=SubmitResultSerializer, summary="Store a decision (idempotent)")
    def post(self, request):
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            label, created = services.stylist_label_submit(user=request.user, **data.validated_data)
        except services.LabelError as exc:
            raise _bad_input(exc) from exc
        return Response(
            {"label_id": label.pk, "created": created, "counts": services.stylist_counts(user=request.user)},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SkipView(_StylistView):
    @extend_schema(tags=[TAG], request=SkipSerializer, responses=SkipResultSerializer, summary="Skip a pair for today")
    def post(self, request):
        data = SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.pair_skip(user=request.user, pair_id=data.validated_data["pair_id"])
        except services.LabelError as exc:
            raise _bad_input(exc) from exc
        return Response({"counts": services.stylist_counts(user=request.user)})


class UndoView(_StylistView):
    @extend_schema(
        tags=[TAG],
        request=None,
        responses={200: UndoResultSerializer, 409: OpenApiResponse(description="Nothing to undo")},
        summary="Undo the caller's last decision",
    )
    def post(self, request):
        try:
            pair = services.stylist_label_undo(user=request.user)
        except services.NothingToUndo as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        pair = selectors.pairs_with_products(type(pair).objects.filter(pk=pair.pk)).get()
        return Response({"pair": selectors.pair_payload(pair), "counts": services.stylist_counts(user=request.user)})


class ProductSearchView(_StylistView):
    @extend_schema(
        tags=[TAG],
        parameters=[
            OpenApiParameter("q", str, description="words in title, brand or sku"),
            OpenApiParameter("category", str, description="part of the category path"),
            OpenApiParameter("colour", str, description="exact colour"),
        ],
        responses=ProductCardSerializer(many=True),
        summary="Search products for the outfit builder",
    )
    def get(self, request):
        found = selectors.products_search(
            q=request.query_params.get("q", ""),
            category=request.query_params.get("category", ""),
            colour=request.query_params.get("colour", ""),
        )
        return Response([selectors.product_card(p) for p in found])


def _outfit_or_404(pk: int) -> Outfit:
    return get_object_or_404(selectors.outfits_visible(), pk=pk)


class OutfitListView(_StylistView):
    @extend_schema(
        tags=[TAG],
        parameters=[OpenApiParameter("mine", bool, description="only the caller's outfits")],
        responses=OutfitSerializer(many=True),
        summary="List outfits",
    )
    def get(self, request):
        qs = selectors.outfits_visible()
        if request.query_params.get("mine") in {"1", "true", "yes"}:
            qs = qs.filter(created_by=request.user)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([selectors.outfit_payload(o) for o in page])

    @extend_schema(tags=[TAG], request=OutfitSerializer, responses={201: OutfitSerializer}, summary="Create an outfit")
    def post(self, request):
        data = OutfitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            outfit = services.outfit_create(user=request.user, **data.validated_data)
        except services.OutfitError as exc:
            raise _bad_input(exc) from exc
        return Response(selectors.outfit_payload(_outfit_or_404(outfit.pk)), status=status.HTTP_201_CREATED)


class OutfitDetailView(_StylistView):
    @extend_schema(tags=[TAG], responses=OutfitSerializer, summary="One outfit")
    def get(self, request, pk: int):
        return Response(selectors.outfit_payload(_outfit_or_404(pk)))

    def _update(self, request, pk: int, partial: bool):
        outfit = _outfit_or_404(pk)
        data = (OutfitPatchSerializer if partial else OutfitSerializer)(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.outfit_update(user=request.user, outfit=outfit, **data.validated_data)
        except services.OutfitError as exc:
            raise _bad_input(exc) from exc
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(selectors.outfit_payload(_outfit_or_404(pk)))

    @extend_schema(tags=[TAG], request=OutfitSerializer, responses=OutfitSerializer, summary="Replace an outfit")
    def put(self, request, pk: int):
        return self._update(request, pk, partial=False)

    @extend_schema(tags=[TAG], request=OutfitPatchSerializer, responses=OutfitSerializer, summary="Rename or change items")
    def patch(self, request, pk: int):
        return self._update(request, pk, partial=True)

    @extend_schema(tags=[TAG], responses={204: None}, summary="Delete an outfit (own, or any for admins)")
    def delete(self, request, pk: int):
        try:
            services.outfit_delete(user=request.user, outfit=_outfit_or_404(pk))
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportView(_StylistView):
    @extend_schema(
        tags=[TAG],
        parameters=[
            OpenApiParameter("kind", str, enum=list(export.KINDS), default="labels"),
            OpenApiParameter("fmt", str, enum=list(export.FORMATS), default="csv", description="csv or jsonl"),
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR},
        summary="Export all labels or outfits, with who and when",
    )
    def get(self, request):
        kind = request.query_params.get("kind", "labels")
        fmt = request.query_params.get("fmt", "csv")
        if kind not in export.KINDS:
            raise ValidationError({"kind": [f"{kind!r} is not one of {', '.join(export.KINDS)}"]})
        if fmt not in export.FORMATS:
            raise ValidationError({"fmt": [f"{fmt!r} is not one of {', '.join(export.FORMATS)}"]})
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        response = StreamingHttpResponse(export.export_chunks(kind=kind, fmt=fmt), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{kind}.{fmt}"'
        return response


urlpatterns = [
    path("pairs/next/", NextPairView.as_view(), name="pairs-next"),
    path("pairs/submit/", SubmitView.as_view(), name="pairs-submit"),
    path("pairs/skip/", SkipView.as_view(), name="pairs-skip"),
    path("pairs/undo/", UndoView.as_view(), name="pairs-undo"),
    path("pairs/products/", ProductSearchView.as_view(), name="pairs-products"),
    path("pairs/outfits/", OutfitListView.as_view(), name="pairs-outfits"),
    path("pairs/outfits/<int:pk>/", OutfitDetailView.as_view(), name="pairs-outfit"),
    path("pairs/export/", ExportView.as_view(), name="pairs-export"),
]
