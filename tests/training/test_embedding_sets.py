"""Embedding sets: building, feature reuse by image sha256, activation and serving."""

from __future__ import annotations

import numpy as np
import pytest

from curation.training import serving
from curation.training.models import EmbeddingSet, ModelVersion
from curation.training.services import EmbedReport, EmbeddingError, embedding_set_build
from tests.factories import make_product


def test_build_embeds_catalog_and_serves_neighbours(tiny_catalog, django_capture_on_commit_callbacks):
    report = EmbedReport()
    with django_capture_on_commit_callbacks(execute=True):
        emb = embedding_set_build(report=report)
    assert emb.is_active and emb.count == len(tiny_catalog)
    assert report.embedded == len(tiny_catalog) and report.reused == 0
    backbone = ModelVersion.objects.get(kind=ModelVersion.Kind.BACKBONE)
    assert backbone.status == ModelVersion.Status.ACTIVE and emb.model_version == backbone

    active = serving.active_embeddings()
    assert active is not None and active.version_id == emb.pk
    first = tiny_catalog[0]
    assert active.has(first.id)
    vecs = active.vectors([first.id, tiny_catalog[1].id])
    assert vecs.shape == (2, emb.dim) and vecs.dtype == np.float32
    hits = active.neighbours(first.id, k=5)
    assert len(hits) == 5 and first.id not in [pid for pid, _ in hits]
    # The index agrees with brute-force cosine similarity over the stored vectors.
    ids = [p.id for p in tiny_catalog]
    allvec = active.vectors(ids)
    unit = allvec / np.linalg.norm(allvec, axis=1, keepdims=True)
    cosine = unit @ unit[0]
    by_id = dict(zip(ids, cosine))
    np.testing.assert_allclose([s for _, s in hits], [by_id[pid] for pid, _ in hits], atol=1e-4)
    best_other = sorted((c for pid, c in by_id.items() if pid != first.id), reverse=True)[:5]
    np.testing.assert_allclose([s for _, s in hits], best_other, atol=1e-4)
    allowed = [p.id for p in tiny_catalog[6:12]]
    filtered = active.neighbours(first.id, k=3, allowed_ids=allowed)
    assert len(filtered) == 3 and all(pid in allowed for pid, _ in filtered)


def test_rebuild_reuses_features_by_image_sha(tiny_catalog, django_capture_on_commit_callbacks):
    first = embedding_set_build()
    make_product(category="Apparel > Topwear > Shirts", color=(10, 10, 10))
    report = EmbedReport()
    second = embedding_set_build(report=report)
    assert report.embedded == 1 and report.reused == len(tiny_catalog)
    assert second.count == first.count + 1
    assert EmbeddingSet.objects.filter(is_active=True).get() == second


def test_unreadable_image_is_skipped_and_named(tiny_catalog, settings):
    broken = tiny_catalog[0]
    (settings.MEDIA_ROOT / broken.image.name).write_bytes(b"not an image")
    broken.image_sha256 = "0" * 64
    broken.save()
    report = EmbedReport()
    emb = embedding_set_build(report=report)
    assert emb.count == len(tiny_catalog) - 1
    assert any(line.startswith(broken.sku) and "cannot be read" in line for line in report.skipped)


def test_empty_catalog_is_a_clear_error(db):
    with pytest.raises(EmbeddingError, match="no product has a readable image"):
        embedding_set_build()


def test_cold_start_adds_products_to_active_set(tiny_catalog, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        emb = embedding_set_build()
    newcomer = make_product(category="Apparel > Topwear > Shirts", color=(200, 30, 30))
    assert not serving.active_embeddings().has(newcomer.id)
    with django_capture_on_commit_callbacks(execute=True):
        added = serving.embed_products_now([newcomer.id, tiny_catalog[0].id])
    assert added == 1
    emb.refresh_from_db()
    assert emb.revision == 1 and emb.count == len(tiny_catalog) + 1
    active = serving.active_embeddings()
    assert active.has(newcomer.id)
    assert newcomer.id in [pid for pid, _ in active.neighbours(tiny_catalog[0].id, k=3)]


def test_embed_images_returns_backbone_features(tiny_catalog, settings):
    path = settings.MEDIA_ROOT / tiny_catalog[0].image.name
    from PIL import Image

    by_path = serving.embed_images([path])
    by_pil = serving.embed_images([Image.open(path).convert("RGB")])
    assert by_path.shape == by_pil.shape and by_path.shape[0] == 1
    np.testing.assert_allclose(by_path, by_pil, rtol=1e-3, atol=1e-3)


def test_other_process_activation_is_picked_up_after_check_interval(tiny_catalog, settings):
    settings.MODEL_RELOAD_CHECK_SECONDS = 0
    first = embedding_set_build()
    assert serving.active_embeddings().version_id == first.pk
    # Another process activates a new set: no reset() here, only the version check notices.
    second = embedding_set_build(activate=False)
    EmbeddingSet.objects.filter(pk=first.pk).update(is_active=False)
    EmbeddingSet.objects.filter(pk=second.pk).update(is_active=True)
    assert serving.active_embeddings().version_id == second.pk


def test_one_embedder_per_feature_space_and_way_of_computing_it(settings):
    """bf16 features round differently: an embedder built while ML_BF16 was on must not serve a
    process (or a test) that asks for fp32 under the same backbone key, and vice versa."""
    from curation.training.ml_objects import embedder_for

    first = embedder_for()
    assert embedder_for() is first  # building ResNet-50 costs about a second: built once
    settings.ML_BF16 = not settings.ML_BF16
    other = embedder_for()
    assert other is not first and other.cfg.bf16 == settings.ML_BF16 and other.key == first.key
    settings.ML_BF16 = not settings.ML_BF16
    assert embedder_for() is first


def test_catalog_images_of_many_products_are_read_in_chunks_in_id_order(tiny_catalog, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.catalog import selectors
    from curation.training.services.embeddings import catalog_images

    monkeypatch.setattr(selectors, "IN_QUERY_CHUNK", 5)
    wanted = [p.id for p in tiny_catalog][::-1][:12]  # asked for in any order
    with CaptureQueriesContext(connection) as queries:
        images, skipped = catalog_images(product_ids=wanted)
    assert [image.product_id for image in images] == sorted(wanted) and skipped == []
    assert len(queries.captured_queries) == 3  # 12 ids, 5 per query
