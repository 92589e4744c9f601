"""Every page and endpoint checks the user's role: each role against each URL.

The URL list is discovered from the URLconf, so a new view without a role check fails here.
HTML views declare their roles with ``role_required`` (``view.allowed_roles``); DRF views with
``role_permission`` (``permission_class.allowed_roles``).
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from curation.accounts.roles import ROLES, has_role

# Reachable without a role: authentication itself, the home page (shows "no role yet"),
# the API schema and docs, Django's admin (staff only), media files.
OPEN_PREFIXES = ("accounts/", "api/token/", "api/schema/", "api/docs/", "api/redoc/", "admin/", "media/")
OPEN_EXACT = {""}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


def _concrete(route: str) -> str:
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"<int:[^>]+>", "999999", route)
    route = re.sub(r"<(?:str|slug|path):[^>]+>", "no-such-thing", route)
    route = re.sub(r"<[^>]+>", "no-such-thing", route)
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "999999", route)
    route = route.replace("\\.", ".").replace("\\", "")
    return "/" + route


def _allowed_roles(callback):
    roles = getattr(callback, "allowed_roles", None)
    if roles is not None:
        return set(roles)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None:
        found = None
        for perm in getattr(view_class, "permission_classes", []):
            if getattr(perm, "allowed_roles", None) is not None:
                found = set(perm.allowed_roles) if found is None else found & set(perm.allowed_roles)
        # ViewSets that vary permissions per action expose them through get_permissions only;
        # they declare the union in ``allowed_roles`` on the class.
        if found is None and getattr(view_class, "allowed_roles", None) is not None:
            found = set(view_class.allowed_roles)
        return found
    return None


def _routes():
    seen = set()
    for route, callback in _walk(get_resolver().url_patterns):
        route = route.lstrip("^")
        if route.startswith(OPEN_PREFIXES) or route in OPEN_EXACT:
            continue
        if "(?P<format>" in route or route.endswith("\\.(?P<format>[a-z0-9]+)/?$"):
            continue
        url = _concrete(route)
        if url in seen:
            continue
        seen.add(url)
        yield url, callback


ROUTES = list(_routes())


def test_every_route_declares_roles():
    undeclared = [url for url, cb in ROUTES if _allowed_roles(cb) is None]
    assert undeclared == [], f"views without role_required/role_permission: {undeclared}"


@pytest.mark.django_db
@pytest.mark.parametrize("url,callback", ROUTES, ids=[u for u, _ in ROUTES])
def test_role_matrix(url, callback, role_client, client):
    allowed = _allowed_roles(callback) or set()
    anonymous = client.get(url)
    assert anonymous.status_code in (302, 401, 403), f"anonymous GET {url} -> {anonymous.status_code}"
    for role in ROLES:
        c = role_client(role, username=f"m-{role}")
        got = c.get(url, HTTP_ACCEPT="text/html,application/json")
        # Admins are superusers and hold every role.
        if has_role(c.user, *allowed):
            assert got.status_code not in (401, 403, 500), f"{role} GET {url} -> {got.status_code}"
        else:
            assert got.status_code in (403, 405), f"{role} GET {url} -> {got.status_code} (allowed: {sorted(allowed)})"
            posted = c.post(url, {})
            assert posted.status_code in (403, 405), f"{role} POST {url} -> {posted.status_code}"
