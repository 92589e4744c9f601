"""The Celery app. Settings come from Django settings (CELERY_*), see curation/settings.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")

app = Celery("curation")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_dirs() -> None:
    """The filesystem broker needs its folders before the first message is sent."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        for key in ("data_folder_in", "processed_folder", "control_folder"):
            os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)


@app.on_after_configure.connect
def _create_broker_dirs(sender, **kwargs) -> None:
    # Every process that publishes or consumes configures the app first, so a fresh var/ works.
    ensure_broker_dirs()
