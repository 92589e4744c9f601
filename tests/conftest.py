"""Shared fixtures: role users and clients, tiny images, isolated media/artifact folders.

Tests never touch ../shared (a fresh clone has none); they generate tiny images themselves.
"""

from __future__ import annotations

import pytest

from tests.factories import make_image_bytes, make_product, write_image  # noqa: F401  (re-exported for tests)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need PostgreSQL's row locks; on SQLite they are skipped."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACTS_ROOT = tmp_path / "artifacts"
    settings.MEDIA_ROOT.mkdir()
    settings.ARTIFACTS_ROOT.mkdir()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _celery_eager(request):
    """Tasks run inline unless the test starts a real worker (marker ``worker``)."""
    from curation.celery import app

    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def make_user(db):
    from curation.accounts.services import user_create_with_role

    def _make(role: str, username: str | None = None):
        return user_create_with_role(username=username or f"{role}-user", password="pw-test-12345", role=role)

    return _make


@pytest.fixture
def role_client(make_user, client):
    """role_client("stylist") -> a Django test client logged in as a fresh user of that role."""
    from django.test import Client

    def _client(role: str, username: str | None = None) -> Client:
        user = make_user(role, username)
        c = Client()
        c.force_login(user)
        c.user = user
        return c

    return _client


@pytest.fixture
def api_client_for(make_user):
    """api_client_for("crowd") -> a DRF APIClient authenticated as a fresh user of that role."""
    from rest_framework.test import APIClient

    def _client(role: str, username: str | None = None) -> APIClient:
        user = make_user(role, username)
        c = APIClient()
        c.force_authenticate(user)
        c.user = user
        return c

    return _client
