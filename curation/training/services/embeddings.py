"""Embedding sets: embed the catalog (reusing cached features), build the index, activate."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image

from curation.catalog.models import Product
from curation.catalog.selectors import id_chunks
from curation.training import embedding_files
from curation.training.ml_objects import artifact_abspath, artifacts_root, backbone_config, embedder_for
from curation.training.models import EmbeddingSet, ModelVersion

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

# How many earlier sets of the same backbone are searched for reusable features.
_CACHE_SETS = 3


class EmbeddingError(RuntimeError):
    """An embedding set cannot be built (the message names the products or files)."""


@dataclass
class CatalogImage:
    product_id: int
    sku: str
    path: Path
    sha256: str


@dataclass
class EmbedReport:
    embedded: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)  # "SKU: reason"


def catalog_images(*, product_ids: Iterable[int] | None = None) -> tuple[list[CatalogImage], list[str]]:
    """Products with a readable image file, and "SKU: reason" for those without one."""
    media = Path(settings.MEDIA_ROOT)
    rows = Product.objects.exclude(image="").order_by("id")
    # Ascending chunks of ascending rows: the whole catalog's id order either way.
    queries = [rows] if product_ids is None else [rows.filter(id__in=chunk) for chunk in id_chunks(product_ids)]
    images: list[CatalogImage] = []
    skipped: list[str] = []
    for pid, sku, name, sha in (row for query in queries for row in query.values_list("id", "sku", "image", "image_sha256")):
        path = media / name
        if not path.is_file():
            skipped.append(f"{sku}: image file {path} is missing")
            continue
        images.append(CatalogImage(pid, sku, path, sha or embedding_files.sha256_of(path)))
    return images, skipped


def unreadable_reason(image: CatalogImage) -> str | None:
    try:
        with Image.open(image.path) as img:
            img.verify()
    except Exception as exc:  # PIL raises many types for broken files
        return f"{image.sku}: image file {image.path} cannot be read ({exc})"
    return None


def cached_features(*, backbone_key: str) -> dict[str, np.ndarray]:
    """sha256 -> feature row from the newest sets built with the same backbone."""
    cache: dict[str, np.ndarray] = {}
    sets = EmbeddingSet.objects.filter(backbone=backbone_key).order_by("-is_active", "-created_at", "-id")[:_CACHE_SETS]
    for emb in sets:
        folder = artifact_abspath(emb.vectors_path)
        if not folder.exists():
            continue
        files = embedding_files.read_embedding_files(folder)
        for row, sha in enumerate(files.shas):
            if sha and sha not in cache:
                cache[sha] = files.vectors[row]
    return cache


def features_for_images(
    images: list[CatalogImage], *, progress: Progress | None = None, report: EmbedReport | None = None, cfg=None
) -> tuple[list[CatalogImage], np.ndarray]:
    """Features for each image, embedding only those whose sha256 has no cached feature.

    ``cfg``: the backbone (default: the settings'). Returns the images kept (unreadable ones are
    dropped and reported) and their (N, D) features.
    """
    report = report if report is not None else EmbedReport()
    cfg = cfg or backbone_config()
    cache = cached_features(backbone_key=cfg.key())
    todo = [img for img in images if img.sha256 not in cache]
    broken = {}
    for img in todo:
        reason = unreadable_reason(img)
        if reason:
            broken[img.product_id] = reason
    if broken:
        report.skipped.extend(broken.values())
        logger.warning("skipping %d unreadable images: %s", len(broken), "; ".join(list(broken.values())[:5]))
        images = [img for img in images if img.product_id not in broken]
        todo = [img for img in todo if img.product_id not in broken]
    fresh: dict[str, np.ndarray] = {}
    if todo:
        embedder = embedder_for(cfg)
        feats = embedder.embed_paths([str(img.path) for img in todo], progress=progress)
        for img, vec in zip(todo, feats):
            fresh[img.sha256] = vec
    elif progress:
        progress(0, 0)
    report.embedded += len(todo)
    report.reused += len(images) - len(todo)
    if not images:
        return images, np.zeros((0, embedder_dim(cfg)), dtype=np.float32)
    vectors = np.stack([fresh[img.sha256] if img.sha256 in fresh else cache[img.sha256] for img in images])
    return images, vectors.astype(np.float32, copy=False)


def embedder_dim(cfg) -> int:
    return embedder_for(cfg).dim


def backbone_version_for(*, backbone_key: str, config: dict) -> ModelVersion:
    """The registry row of a feature space (kind backbone); one per backbone key."""
    version = (
        ModelVersion.objects.filter(kind=ModelVersion.Kind.BACKBONE, backbone=backbone_key)
        .exclude(status=ModelVersion.Status.FAILED)
        .order_by("-id")
        .first()
    )
    if version is None:
        from curation.training.services.finetune import read_sidecar

        # Weights written by finetune_backbone carry their record: the models page shows what
        # fine-tuning measured next to the versions trained on its features.
        record = read_sidecar(config.get("weights", "")) if config.get("weights") else None
        version = ModelVersion.objects.create(
            kind=ModelVersion.Kind.BACKBONE,
            backbone=backbone_key,
            status=ModelVersion.Status.READY,
            config={**config, "finetune": record["finetune"], "base_backbone": record["base_backbone"],
                    "base_weights": record.get("base_weights", "")} if record else config,
            data_summary={k: record[k] for k in ("products", "train_products", "holdout_products", "classes", "excluded_open_flags")}
            if record else {},
            metrics=record["metrics"] if record else {},
            history=record["history"] if record else [],
        )
    return version


def embedding_set_build(
    *,
    activate: bool = True,
    progress: Progress | None = None,
    report: EmbedReport | None = None,
) -> EmbeddingSet:
    """Embed the whole catalog with the configured backbone and write a new set with its index.

    Features of images whose sha256 was embedded before with the same backbone are reused, so a
    rebuild after a few new products embeds only those. With ``activate`` the set becomes the one
    every process serves (see serving.py), in one transaction.
    """
    report = report if report is not None else EmbedReport()
    cfg = backbone_config()
    images, skipped = catalog_images()
    report.skipped.extend(skipped)
    images, vectors = features_for_images(images, progress=progress, report=report)
    if not images:
        raise EmbeddingError("no product has a readable image: import a catalog with images first")
    emb = embedding_set_write(images=images, vectors=vectors, cfg=cfg)
    if activate:
        embedding_set_activate(embedding_set=emb)
    return emb


def embedding_set_write(*, images: list[CatalogImage], vectors: np.ndarray, cfg) -> EmbeddingSet:
    """A new, inactive set of ``vectors`` (rows of ``images``) computed with backbone ``cfg``, with its index."""
    folder, checksum = embedding_files.write_embedding_dir(
        artifacts_root(),
        product_ids=np.array([img.product_id for img in images], dtype=np.int64),
        vectors=vectors,
        shas=[img.sha256 for img in images],
        exact_below=settings.ML_INDEX_EXACT_BELOW,
        pca_dim=settings.ML_INDEX_PCA_DIM,
    )
    backbone = backbone_version_for(backbone_key=cfg.key(), config=asdict(cfg))
    emb = EmbeddingSet.objects.create(
        model_version=backbone,
        backbone=cfg.key(),
        dim=int(vectors.shape[1]),
        count=len(images),
        vectors_path=folder,
        index_path=f"{folder}/{embedding_files.INDEX}",
        sha256=checksum,
    )
    return emb


def embedding_set_activate(*, embedding_set: EmbeddingSet) -> EmbeddingSet:
    """Make one set (and its backbone version) the active ones, in one transaction."""
    from curation.training.services.registry import model_version_make_active

    with transaction.atomic():
        EmbeddingSet.objects.filter(is_active=True).exclude(pk=embedding_set.pk).update(is_active=False)
        EmbeddingSet.objects.filter(pk=embedding_set.pk).update(is_active=True)
        if embedding_set.model_version_id:
            model_version_make_active(version=embedding_set.model_version, switch_embeddings=False)
    embedding_set.is_active = True
    _serving_changed()
    return embedding_set


def embedding_set_add_products(*, product_ids: Iterable[int]) -> int:
    """Cold start: embed products missing from the active set and append them to it.

    Returns how many were added. The set's revision is bumped so other processes reload it.
    """
    with transaction.atomic():
        emb = EmbeddingSet.objects.select_for_update().filter(is_active=True).first()
        if emb is None:
            return 0
        folder = artifact_abspath(emb.vectors_path)
        known = set(embedding_files.read_embedding_files(folder).product_ids.tolist())
        wanted = [pid for pid in product_ids if pid not in known]
        if not wanted:
            return 0
        if emb.backbone != backbone_config().key():
            raise EmbeddingError(
                f"the active embedding set uses backbone {emb.backbone!r} but the settings say "
                f"{backbone_config().key()!r}: retrain to build a set for the new backbone"
            )
        images, skipped = catalog_images(product_ids=wanted)
        if skipped:
            logger.warning("cold start skipped: %s", "; ".join(skipped))
        images, vectors = features_for_images(images)
        if not images:
            return 0
        embedding_files.append_additions(
            folder,
            product_ids=np.array([img.product_id for img in images], dtype=np.int64),
            vectors=vectors,
            shas=[img.sha256 for img in images],
        )
        EmbeddingSet.objects.filter(pk=emb.pk).update(revision=emb.revision + 1, count=emb.count + len(images))
    _serving_changed()
    return len(images)


def _serving_changed() -> None:
    """This process drops its cached models after commit; others notice by their version check."""
    from curation.training import serving

    transaction.on_commit(serving.reset)
