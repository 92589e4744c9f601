"""JSON endpoints of the crowd queue, so the crowd page and an external crowd platform drive the
same calls. Thin: validate, call a service or selector, shape the answer.

Workers (CROWD_WORK): next, submit, skip, undo, me. Stylists and admins (CROWD_QUALITY): quality.
Admins: worker list, reinstate, enqueue, aggregate.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from curation.accounts.roles import ADMIN, CROWD_QUALITY, CROWD_WORK, role_permission
from curation.crowd import selectors, services, tasks
from curation.crowd.models import WorkerProfile
from curation.crowd.serializers import (
    AggregateResultSerializer,
    CrowdNextSerializer,
    CrowdSkipResultSerializer,
    CrowdSkipSerializer,
    CrowdSubmitResultSerializer,
    CrowdSubmitSerializer,
    CrowdUndoResultSerializer,
    EnqueueResultSerializer,
    EnqueueSerializer,
    QualitySerializer,
    WorkerProfileSerializer,
    WorkerStandingSerializer,
)
from curation.pairs.selectors import pair_payload

TAG = "crowd"
ERROR = OpenApiResponse(description="`detail` says why, in words meant for the worker.")


class CrowdBurstThrottle(UserRateThrottle):
    """Per-worker rate limit on decisions (REST_FRAMEWORK throttle rate "crowd_burst")."""

    scope = "crowd_burst"

    def get_rate(self):
        # Read at request time, not import time, so a changed setting applies at once.
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]


def _counts(worker, *, today: int | None = None, queue_left: int | None = None) -> dict:
    return {
        "today": services.crowd_decisions_today(worker=worker) if today is None else today,
        "queue_left": services.crowd_queue_left(worker=worker) if queue_left is None else queue_left,
        "queue_left_capped": False,
        "daily_cap": settings.CROWD_DAILY_CAP,
    }


def _refusal(exc: services.CrowdError) -> Response:
    return Response({"detail": str(exc), "code": type(exc).__name__}, status=exc.status_code)


class _WorkerView(APIView):
    permission_classes = [role_permission(*CROWD_WORK)]


class CrowdNextView(_WorkerView):
    @extend_schema(tags=[TAG], responses=CrowdNextSerializer, summary="Reserve the next pair for this worker (and a prefetched one)")
    def get(self, request):
        state = services.crowd_next(worker=request.user)
        return Response(
            {
                "pair": pair_payload(state.pair, blind=True),
                "prefetch": pair_payload(state.prefetch, blind=True),
                "counts": _counts(request.user, today=state.today, queue_left=state.queue_left),
                "empty_reason": state.empty_reason,
                "empty_code": state.empty_code,
            }
        )


class CrowdSubmitView(_WorkerView):
    throttle_classes = [UserRateThrottle, CrowdBurstThrottle]

    def throttled(self, request, wait):
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["crowd_burst"]
        raise Throttled(wait, detail=f"You are deciding faster than the limit of {rate} decisions. Please slow down and take a moment on each pair.")

    @extend_schema(
        tags=[TAG],
        request=CrowdSubmitSerializer,
        responses={200: CrowdSubmitResultSerializer, 201: CrowdSubmitResultSerializer, 403: ERROR, 409: ERROR, 429: ERROR},
        summary="Vote on a reserved pair (idempotent per worker and pair)",
    )
    def post(self, request):
        data = CrowdSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            outcome = services.crowd_vote_submit(worker=request.user, **data.validated_data)
        except services.CrowdError as exc:
            return _refusal(exc)
        if outcome.pair_completed:
            tasks.crowd_aggregate_soon()
        return Response(
            {"label_id": outcome.label.pk, "created": outcome.created, "counts": _counts(request.user, today=outcome.today, queue_left=outcome.queue_left)},
            status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        )


class CrowdSkipView(_WorkerView):
    @extend_schema(tags=[TAG], request=CrowdSkipSerializer, responses={200: CrowdSkipResultSerializer, 409: ERROR}, summary="Skip a reserved pair")
    def post(self, request):
        data = CrowdSkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.crowd_skip(worker=request.user, pair_id=data.validated_data["pair_id"])
        except services.CrowdError as exc:
            return _refusal(exc)
        return Response({"counts": _counts(request.user)})


class CrowdUndoView(_WorkerView):
    @extend_schema(tags=[TAG], request=None, responses={200: CrowdUndoResultSerializer, 409: ERROR}, summary="Take back the latest vote")
    def post(self, request):
        try:
            pair = services.crowd_undo(worker=request.user)
        except services.CrowdError as exc:
            return _refusal(exc)
        return Response({"pair": pair_payload(pair, blind=True), "counts": _counts(request.user)})


class CrowdMeView(_WorkerView):
    @extend_schema(tags=[TAG], responses=WorkerStandingSerializer, summary="This worker's standing and counters")
    def get(self, request):
        profile = services.worker_profile_get(user=request.user)
        return Response(
            {
                "status": profile.status,
                "message": services.SUSPENDED_MESSAGE if profile.is_suspended else None,
                "counts": _counts(request.user),
            }
        )


class CrowdQualityView(APIView):
    permission_classes = [role_permission(*CROWD_QUALITY)]

    @extend_schema(tags=[TAG], responses=QualitySerializer, summary="Agreement, gold accuracy and throughput of the crowd")
    def get(self, request):
        return Response(selectors.crowd_quality())


class _AdminView(APIView):
    permission_classes = [role_permission(ADMIN)]


class WorkerListView(_AdminView):
    @extend_schema(tags=[TAG], responses=WorkerProfileSerializer(many=True), summary="Crowd workers' standing")
    def get(self, request):
        profiles = WorkerProfile.objects.select_related("user").order_by("status", "user__username")
        return Response(WorkerProfileSerializer(profiles, many=True).data)


class WorkerReinstateView(_AdminView):
    @extend_schema(tags=[TAG], request=None, responses={200: WorkerProfileSerializer, 404: ERROR, 409: ERROR}, summary="Reinstate a suspended worker")
    def post(self, request, user_id: int):
        profile = get_object_or_404(WorkerProfile, user_id=user_id)
        try:
            profile = services.worker_reinstate(profile=profile, by=request.user)
        except services.CrowdError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(WorkerProfileSerializer(profile).data)


class CrowdEnqueueView(_AdminView):
    @extend_schema(
        tags=[TAG], request=EnqueueSerializer, responses=EnqueueResultSerializer,
        summary="Send open stylist-queue pairs to the crowd (given ids, or the top `limit` by priority)",
    )
    def post(self, request):
        data = EnqueueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["pair_ids"] is None and data.validated_data["limit"] is None:
            return Response({"detail": "Give pair_ids, or a limit to send the highest-priority open pairs."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            report = services.crowd_enqueue(**data.validated_data)
        except services.CrowdError as exc:
            return _refusal(exc)
        return Response({"moved": report.moved, "skipped": {str(k): v for k, v in report.skipped.items()}})


class CrowdAggregateView(_AdminView):
    @extend_schema(tags=[TAG], request=None, responses=AggregateResultSerializer, summary="Aggregate crowd votes now (Dawid-Skene) and escalate doubtful pairs")
    def post(self, request):
        report = services.crowd_aggregate()
        return Response(
            {"aggregated": report.aggregated, "decided": report.decided, "escalated": report.escalated, "method": report.method},
            status=status.HTTP_200_OK,
        )


urlpatterns = [
    path("crowd/next/", CrowdNextView.as_view(), name="crowd-api-next"),
    path("crowd/submit/", CrowdSubmitView.as_view(), name="crowd-api-submit"),
    path("crowd/skip/", CrowdSkipView.as_view(), name="crowd-api-skip"),
    path("crowd/undo/", CrowdUndoView.as_view(), name="crowd-api-undo"),
    path("crowd/me/", CrowdMeView.as_view(), name="crowd-api-me"),
    path("crowd/quality/", CrowdQualityView.as_view(), name="crowd-api-quality"),
    path("crowd/workers/", WorkerListView.as_view(), name="crowd-api-workers"),
    path("crowd/workers/<int:user_id>/reinstate/", WorkerReinstateView.as_view(), name="crowd-api-reinstate"),
    path("crowd/enqueue/", CrowdEnqueueView.as_view(), name="crowd-api-enqueue"),
    path("crowd/aggregate/", CrowdAggregateView.as_view(), name="crowd-api-aggregate"),
]
