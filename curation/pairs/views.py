"""HTML pages for stylists: the labeling page, the outfit list and the outfit builder."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.accounts.roles import ADMIN, LABEL_PAIRS, has_role, role_required
from curation.pairs import selectors, services
from curation.pairs.models import Outfit, PairLabel

REASON_LABELS = {
    "colour_clash": "Colour clash",
    "style": "Style",
    "occasion": "Occasion",
    "season": "Season",
    "same_role": "Same role in an outfit",
    "other": "Other",
}


@role_required(*LABEL_PAIRS)
def label(request):
    reasons = [(i + 1, tag, REASON_LABELS[tag]) for i, tag in enumerate(PairLabel.REASON_TAGS)]
    return render(
        request,
        "pairs/label.html",
        {
            "reasons": reasons,
            "endpoints": {
                "next": reverse("pairs-next"),
                "submit": reverse("pairs-submit"),
                "skip": reverse("pairs-skip"),
                "undo": reverse("pairs-undo"),
            },
        },
    )


@role_required(*LABEL_PAIRS)
def outfit_list(request):
    outfits = selectors.outfits_visible()
    if request.GET.get("mine"):
        outfits = outfits.filter(created_by=request.user)
    return render(
        request,
        "pairs/outfit_list.html",
        {"outfits": outfits[:200], "mine": bool(request.GET.get("mine")), "is_admin": has_role(request.user, ADMIN)},
    )


def _builder(request, outfit: Outfit | None):
    can_edit = outfit is None or outfit.created_by_id == request.user.pk or has_role(request.user, ADMIN)
    return render(
        request,
        "pairs/outfit_builder.html",
        {
            "outfit": outfit,
            "outfit_json": selectors.outfit_payload(outfit) if outfit else None,
            "can_edit": can_edit,
            "endpoints": {"products": reverse("pairs-products"), "outfits": reverse("pairs-outfits")},
        },
    )


@role_required(*LABEL_PAIRS)
def outfit_new(request):
    return _builder(request, None)


@role_required(*LABEL_PAIRS)
def outfit_edit(request, pk: int):
    return _builder(request, get_object_or_404(selectors.outfits_visible(), pk=pk))


@role_required(*LABEL_PAIRS)
@require_POST
def outfit_delete(request, pk: int):
    outfit = get_object_or_404(Outfit, pk=pk)
    try:
        services.outfit_delete(user=request.user, outfit=outfit)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted outfit “{outfit.name}”.")
    return redirect("pairs:outfits")
