"""The four roles and the checks every view and endpoint uses.

A role is a Django group. Superusers hold every role. Views say which roles may enter with
``role_required``; DRF views with ``role_permission``. Nothing else decides access.
"""

from __future__ import annotations

from functools import wraps
from typing import Callable

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

STYLIST = "stylist"
MERCHANDISER = "merchandiser"
CROWD = "crowd"
ADMIN = "admin"
ROLES: tuple[str, ...] = (STYLIST, MERCHANDISER, CROWD, ADMIN)

# Who may do what, in one place, so the role matrix test and the code read the same table.
LABEL_PAIRS = (STYLIST, ADMIN)
REVIEW_CATALOG = (MERCHANDISER, ADMIN)
CROWD_WORK = (CROWD,)
CROWD_QUALITY = (STYLIST, ADMIN)
MANAGE_MODELS = (ADMIN,)
VIEW_MODELS = (STYLIST, MERCHANDISER, ADMIN)
BROWSE_CATALOG = (STYLIST, MERCHANDISER, ADMIN, CROWD)
DISCOVERY = (STYLIST, MERCHANDISER, ADMIN, CROWD)


def user_roles(user) -> frozenset[str]:
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(ROLES)
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._role_cache = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """View decorator: anonymous users go to the login page, users without the role get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"This page is for: {', '.join(roles)}.")
            return view(request, *args, **kwargs)

        wrapper.allowed_roles = roles  # read by the role-matrix test
        return wrapper

    return decorator


def role_permission(*roles: str) -> type[BasePermission]:
    """A DRF permission class admitting authenticated users holding one of ``roles``."""

    class HasRole(BasePermission):
        message = f"This endpoint is for: {', '.join(roles)}."
        allowed_roles = roles

        def has_permission(self, request, view) -> bool:
            return bool(request.user and request.user.is_authenticated and has_role(request.user, *roles))

    HasRole.__name__ = "HasRole_" + "_".join(roles)
    return HasRole
