"""The API token cache: no queries for a known token, and no stale access after any revocation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

STATS = "review-stats"  # merchandisers and admins only


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    from django.core.cache import cache

    settings.API_TOKEN_CACHE_SECONDS = 60
    cache.clear()


def _client(token: Token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _auth_queries(client: APIClient, url: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        status = client.get(url).status_code
    return status, [q["sql"] for q in ctx.captured_queries if "authtoken_token" in q["sql"] or "auth_group" in q["sql"]]


def test_a_known_token_is_answered_without_token_or_role_queries(make_user):
    token = Token.objects.create(user=make_user("merchandiser"))
    client, url = _client(token), reverse(STATS)
    status, first = _auth_queries(client, url)
    assert status == 200 and len(first) == 2  # the token with its user, then the user's roles
    status, second = _auth_queries(client, url)
    assert status == 200 and second == []


def test_the_cache_can_be_turned_off(make_user, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    token = Token.objects.create(user=make_user("merchandiser"))
    client, url = _client(token), reverse(STATS)
    _auth_queries(client, url)
    status, second = _auth_queries(client, url)
    assert status == 200 and len(second) == 2


def test_a_deleted_token_is_refused_at_once(make_user):
    token = Token.objects.create(user=make_user("merchandiser"))
    client, url = _client(token), reverse(STATS)
    assert client.get(url).status_code == 200
    token.delete()
    refused = client.get(url)
    assert refused.status_code in (401, 403) and refused.json()["detail"] == "Invalid token."


def test_a_deactivated_user_is_refused_at_once(make_user):
    user = make_user("merchandiser")
    client, url = _client(Token.objects.create(user=user)), reverse(STATS)
    assert client.get(url).status_code == 200
    user.is_active = False
    user.save()
    refused = client.get(url)
    assert refused.status_code in (401, 403) and refused.json()["detail"] == "User inactive or deleted."


def test_a_role_taken_away_from_the_user_side_is_refused_at_once(make_user):
    user = make_user("merchandiser")
    client, url = _client(Token.objects.create(user=user)), reverse(STATS)
    assert client.get(url).status_code == 200
    user.groups.clear()
    assert client.get(url).status_code == 403


def test_a_role_taken_away_or_given_from_the_group_side_takes_effect_at_once(make_user):
    user = make_user("merchandiser")
    client, url = _client(Token.objects.create(user=user)), reverse(STATS)
    merchandisers = Group.objects.get(name="merchandiser")
    assert client.get(url).status_code == 200
    merchandisers.user_set.remove(user)
    assert client.get(url).status_code == 403
    merchandisers.user_set.add(user)
    assert client.get(url).status_code == 200
    merchandisers.user_set.clear()
    assert client.get(url).status_code == 403


def test_the_cache_key_does_not_contain_the_token(make_user):
    from django.core.cache import cache

    from curation.accounts.authentication import token_cache_key

    token = Token.objects.create(user=make_user("merchandiser"))
    assert _client(token).get(reverse(STATS)).status_code == 200
    key = token_cache_key(token.key)
    assert token.key not in key and cache.get(key) is not None


def test_the_cache_holds_no_password_hash_and_the_user_comes_back_whole(make_user):
    from django.core.cache import cache
    from django.test import RequestFactory
    from rest_framework.request import Request

    from curation.accounts.authentication import CachedTokenAuthentication, token_cache_key
    from curation.accounts.roles import user_roles

    user = make_user("merchandiser", "merch-1")
    token = Token.objects.create(user=user)
    assert _client(token).get(reverse(STATS)).status_code == 200
    assert user.password and user.password not in repr(cache.get(token_cache_key(token.key)))
    request = Request(RequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {token.key}"))
    with CaptureQueriesContext(connection) as ctx:
        cached_user, cached_token = CachedTokenAuthentication().authenticate(request)
        assert (cached_user.pk, cached_user.username, cached_user.is_active) == (user.pk, "merch-1", True)
        assert user_roles(cached_user) == {"merchandiser"} and cached_token.key == token.key and cached_token.user is cached_user
    assert ctx.captured_queries == []
    # The password is deferred, not lost: it loads when asked for, and saving keeps it.
    assert cached_user.check_password("pw-test-12345")
    cached_user.first_name = "Merch"
    cached_user.save()
    user.refresh_from_db()
    assert user.first_name == "Merch" and user.check_password("pw-test-12345")
