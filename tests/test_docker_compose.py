"""docker-compose.yml cannot run here; these tests keep it consistent with the code instead:
it parses, has the production services with the right commands and shared volumes, and every
environment variable it gives the app is one curation/settings.py actually reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    """Names curation/settings.py reads: env_str/env_bool/env_int/env_float/env_list and os.environ."""
    source = (ROOT / "curation" / "settings.py").read_text()
    names = set(re.findall(r"env_(?:str|bool|int|float|list)\(\s*\"([A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"os\.environ(?:\.get)?[\[(]\s*\"([A-Z0-9_]+)\"", source))
    return names


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_settings_variable_scan_finds_known_names():
    # Guards the regex below: if settings.py changes style, this fails before the real check lies.
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "MEDIA_ROOT", "ML_DEVICE", "CACHE_URL"} <= settings_variables()


def test_production_services_present(compose):
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(compose["services"])


def test_commands(compose):
    services = compose["services"]
    assert command_text(services["web"]).startswith("gunicorn curation.wsgi")
    assert "--worker-class=gthread" in command_text(services["web"])
    assert "celery -A curation worker" in command_text(services["worker"])
    assert "celery -A curation beat" in command_text(services["beat"])
    assert "manage.py migrate" in command_text(services["migrate"])
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_app_variable_is_read_by_settings(compose):
    known = settings_variables()
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets {unknown}, which curation/settings.py never reads"


def test_production_environment(compose):
    env = compose["services"]["web"]["environment"]
    assert env["DEBUG"] == "0"
    for required in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS", "MEDIA_ROOT", "ARTIFACTS_ROOT"):
        assert required in env, required
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
    assert ":?" in env["SECRET_KEY"], "SECRET_KEY must be required, not defaulted"
    assert {"ML_BACKBONE", "ML_WEIGHTS", "ML_IMAGE_SIZE", "ML_DEVICE"} <= set(env)


def test_media_and_artifacts_are_shared_volumes(compose):
    named = set(compose["volumes"])
    for name in ("web", "worker", "beat"):
        service = compose["services"][name]
        mounts = dict(volume.split(":", 1)[::-1] for volume in service["volumes"])  # target -> source
        for variable in ("MEDIA_ROOT", "ARTIFACTS_ROOT"):
            target = service["environment"][variable]
            assert target in mounts, f"{name}: {variable}={target} is not a mounted volume"
            assert mounts[target] in named


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"pip install .*\s\.$", text, re.M)
    assert "collectstatic" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored


def test_every_compose_variable_is_documented_in_readme():
    text = (ROOT / "docker-compose.yml").read_text()
    readme = (ROOT / "README.md").read_text()
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert {"WEB_WORKERS", "WEB_THREADS", "WEB_PORT"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"docker-compose.yml reads {missing}, which README.md does not document"
