"""Discovery writes: cold-start embedding of new products, storing an uploaded photo on request."""

from __future__ import annotations

import logging
from typing import Sequence

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from curation.discovery.images import CheckedImage

logger = logging.getLogger(__name__)

UPLOAD_DIR = "discovery/uploads"
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def products_cold_start(*, product_ids: Sequence[int]) -> None:
    """Embed newly added products and add them to the active index, without a retrain.

    The catalog import calls this; the work runs in a small Celery task once the import's
    transaction commits, so the task never looks for rows that are not visible yet.
    """
    ids = sorted({int(pid) for pid in product_ids})
    if not ids:
        return
    from curation.discovery.tasks import embed_new_products

    transaction.on_commit(lambda: embed_new_products.delay(ids))


def products_embed_now(*, product_ids: Sequence[int]) -> None:
    """The task's work: embed ``product_ids`` with the active backbone and add them to the index."""
    from curation.training import serving

    ids = sorted({int(pid) for pid in product_ids})
    if ids:
        serving.embed_products_now(ids)
        logger.info("cold start: embedded %d new products", len(ids))


def photo_upload_store(*, checked: CheckedImage) -> str:
    """Keep an uploaded photo (only when the user asked): named by its sha256, stored once."""
    name = f"{UPLOAD_DIR}/{checked.sha256}.{_EXTENSIONS[checked.format]}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(checked.data))
    return name
