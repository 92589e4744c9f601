"""Settings come from the environment, each one documented in README.md, production-safe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "curation" / "settings.py").read_text()
ENV_READ = re.compile(r"""(?:env_\w+|os\.environ\.get|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']|os\.environ\[["']([A-Z][A-Z0-9_]+)["']\]""")


def settings_env_names() -> set[str]:
    return {a or b for a, b in ENV_READ.findall(SETTINGS)} - {"DJANGO_SETTINGS_MODULE"}


def test_every_setting_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    names = settings_env_names()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS", "MEDIA_ROOT", "ARTIFACTS_ROOT"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == [], f"settings read in curation/settings.py but not documented in README.md: {missing}"


def _settings_in_subprocess(env: dict[str, str], expr: str) -> subprocess.CompletedProcess:
    code = f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='curation.settings'; from django.conf import settings; print({expr})"
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"} and not k.startswith("ML_")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True)


def test_secret_key_required_when_debug_off():
    result = _settings_in_subprocess({"DEBUG": "0"}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_settings_are_safe():
    result = _settings_in_subprocess(
        {"DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "shop.example"},
        "settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.ALLOWED_HOSTS, settings.STORAGES['staticfiles']['BACKEND']",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False True True ['shop.example'] whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_database_and_broker_urls_select_postgres_and_redis():
    result = _settings_in_subprocess(
        {"DATABASE_URL": "postgres://u:p@db:5432/shop", "CELERY_BROKER_URL": "redis://cache:6379/0"},
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'], settings.CELERY_BROKER_URL",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "shop", "redis://cache:6379/0"]


def test_embedded_defaults_need_no_servers():
    result = _settings_in_subprocess(
        {"VAR_DIR": "/tmp/curation-var-test", "CELERY_BROKER_URL": "", "DATABASE_URL": ""},
        "settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.ML_WEIGHTS",
    )
    # An empty variable counts as unset.
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "imagenet"]


def test_side_attributes_are_a_list_and_none_turns_them_off():
    read = "','.join(settings.TRAIN_SIDE_ATTRIBUTES) or '-'"
    assert _settings_in_subprocess({"TRAIN_SIDE_ATTRIBUTES": "gender, occasion"}, read).stdout.split() == ["gender,occasion"]
    assert _settings_in_subprocess({"TRAIN_SIDE_ATTRIBUTES": "none"}, read).stdout.split() == ["-"]
    assert _settings_in_subprocess({"TRAIN_SIDE_ATTRIBUTES": ""}, read).stdout.split() == ["auto"]


def test_bad_boolean_names_the_variable():
    result = _settings_in_subprocess({"DEBUG": "maybe"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
