"""API token authentication that does not cost two queries on every request.

DRF's TokenAuthentication reads the token and its user on every request, and the role check reads
the user's groups: two queries before the view starts, on endpoints (similar items) whose whole
answer costs about as much. ``CachedTokenAuthentication`` keeps the user's fields (all but the
password hash, which never leaves the database: the user comes back with it deferred), roles and
token in the Django cache for API_TOKEN_CACHE_SECONDS, keyed by a hash of the token (never the
token itself).

Every change that could revoke access deletes the affected entries at once (signals below): a
token deleted or regenerated, a user saved (deactivated, password changed, made superuser), a
user's groups changed from either side. With a shared cache (CACHE_URL, Redis) that is immediate
in every process; with the local-memory cache, other processes notice within the TTL.
"""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from curation.accounts.roles import user_roles

CACHE_PREFIX = "api-token:"


def token_cache_key(key: str) -> str:
    return CACHE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


@functools.cache
def _cached_user_fields() -> tuple[str, ...]:
    return tuple(f.attname for f in get_user_model()._meta.concrete_fields if f.attname != "password")


class CachedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, with the user and roles cached (see the module docstring)."""

    def authenticate_credentials(self, key):
        ttl = settings.API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(key)
        cache_key = token_cache_key(key)
        entry = cache.get(cache_key)
        if entry is not None:
            return self._from_entry(key, entry)
        user, token = super().authenticate_credentials(key)  # raises for unknown keys and inactive users
        fields = _cached_user_fields()
        entry = {"user": [getattr(user, f) for f in fields], "roles": sorted(user_roles(user)), "token_created": token.created}
        cache.set(cache_key, entry, ttl)
        return user, token

    @staticmethod
    def _from_entry(key: str, entry: dict):
        # from_db marks the password as deferred: read from the database only if something asks.
        user = get_user_model().from_db(None, _cached_user_fields(), entry["user"])
        user._role_cache = frozenset(entry["roles"])  # the role check needs no query either
        token = Token.from_db(None, ["key", "user_id", "created"], [key, user.pk, entry["token_created"]])
        token.user = user
        return user, token


def forget_tokens_of(user_ids) -> None:
    """Drop the cached entries of these users' tokens (their access may have changed)."""
    keys = Token.objects.filter(user_id__in=list(user_ids)).values_list("key", flat=True)
    cache.delete_many([token_cache_key(k) for k in keys])


@receiver([post_save, post_delete], sender=Token, dispatch_uid="api_token_cache_token")
def _token_changed(sender, instance, **kwargs):
    cache.delete(token_cache_key(instance.key))


@receiver(post_save, sender=get_user_model(), dispatch_uid="api_token_cache_user")
def _user_changed(sender, instance, **kwargs):
    forget_tokens_of([instance.pk])


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="api_token_cache_groups")
def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups.add/remove/clear
        forget_tokens_of([instance.pk])
    elif action == "pre_clear":  # group.user_set.clear(): its members before they go
        forget_tokens_of(instance.user_set.values_list("pk", flat=True))
    else:  # group.user_set.add/remove
        forget_tokens_of(pk_set or [])
