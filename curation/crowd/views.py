"""HTML pages of the crowd: the blind labeling page and the quality page."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from curation.accounts.roles import ADMIN, CROWD_QUALITY, CROWD_WORK, has_role, role_required
from curation.crowd import selectors, services


@role_required(*CROWD_WORK)
@ensure_csrf_cookie
def label(request):
    """The crowd's labeling page (static/js/labeling.js with data-blind="1"); a suspended worker
    gets a polite page instead."""
    profile = services.worker_profile_get(user=request.user)
    if profile.is_suspended:
        return render(request, "crowd/suspended.html", {"message": services.SUSPENDED_MESSAGE})
    endpoints = {name: reverse(f"crowd-api-{name}") for name in ("next", "submit", "skip", "undo")}
    return render(request, "crowd/label.html", {"endpoints": endpoints})


@role_required(*CROWD_QUALITY)
@ensure_csrf_cookie
def quality(request):
    data = selectors.crowd_quality()
    return render(
        request,
        "crowd/quality.html",
        {
            "quality": data,
            "workers": data["workers"],
            "batches": data["batches"],
            "totals": data["totals"],
            "labels_per_day": data["labels_per_day"],
            "can_reinstate": has_role(request.user, ADMIN),
            "reinstate_url_template": reverse("crowd-api-reinstate", kwargs={"user_id": 0}).replace("/0/", "/{id}/"),
        },
    )
