"""Celery tasks: thin callers of discovery services."""

from __future__ import annotations

from celery import shared_task

from curation.discovery import services


@shared_task(acks_late=True)
def embed_new_products(product_ids: list[int]) -> int:
    services.products_embed_now(product_ids=product_ids)
    return len(product_ids)
