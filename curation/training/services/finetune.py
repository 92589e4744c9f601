"""Fine-tuning the backbone on the catalog's own categories: the "new embeddings" of the talk.

``backbone_finetune`` trains the last bottleneck blocks of the configured backbone (ml.finetune,
on cached activations) to predict each product's catalog category and colour, measures on a
held-out slice of product models what that changed, and writes a complete backbone state dict
that ``ML_WEIGHTS`` can point at. A retrain with that setting embeds the catalog again (the
feature-space key holds the file's sha256, so no cached feature of the old weights is reused)
and every model trains on the new features.

It is a separate command rather than a pipeline step on purpose: new weights change every
product's vector, the index and what a query photo is compared with, so the switch is a setting
an operator changes knowingly, the same in web and worker processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from django.conf import settings

from curation.catalog.models import Product
from curation.training import evaluation
from curation.training.ml_objects import backbone_config, embedder_for
from curation.training.services.embeddings import (
    CatalogImage,
    cached_features,
    catalog_images,
    embedding_set_write,
    unreadable_reason,
)

logger = logging.getLogger(__name__)

# (stage, done, total, detail): stage is "cache" (images) or "finetune" (epochs).
OnProgress = Callable[[str, int, int, dict], None]

SIDECAR_SUFFIX = ".json"


class FinetuneError(RuntimeError):
    """The backbone cannot be fine-tuned (the message says what to change)."""


@dataclass
class FinetuneOptions:
    epochs: int = 6
    blocks: int = 3  # trailing bottleneck blocks of layer3+layer4 to train: 3 = all of layer4
    holdout_percent: int = 10  # product models held out to measure the change (0: train on all)
    max_products: int = 20_000  # the activation cache costs memory per product (see estimate_cache_bytes)
    time_budget_s: float | None = None  # fewer epochs when a timed batch says ``epochs`` would not fit
    seed: int = 0


@dataclass
class FinetuneReport:
    path: str
    sha256: str  # of the file: ML_WEIGHTS identifies weights by it
    base_backbone: str  # feature-space key of the weights fine-tuned from
    new_backbone: str  # the key a retrain with ML_WEIGHTS=path builds its embedding set under
    products: int
    train_products: int
    holdout_products: int
    classes: int
    excluded_open_flags: int
    excluded_small_categories: int
    skipped: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name + SIDECAR_SUFFIX)


def read_sidecar(weights_path: str | Path) -> dict | None:
    """What ``backbone_finetune`` recorded next to a weights file, when it is still that file's record."""
    from ml.config import file_sha256

    path = Path(weights_path).expanduser()
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("sha256") == file_sha256(path) else None


def estimate_cache_bytes(*, products: int, blocks: int, image_size: int) -> int:
    """fp16 activations entering the trained blocks of a ResNet-50 (layer3 output when blocks <= 3)."""
    if blocks <= 3:
        channels, stride = 1024, 16
    else:
        channels, stride = 512, 8
    side = math.ceil(image_size / stride)
    return int(products) * channels * side * side * 2


def _check_memory(*, products: int, blocks: int, image_size: int) -> None:
    need = estimate_cache_bytes(products=products, blocks=blocks, image_size=image_size)
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:"))) * 1024
    except (OSError, StopIteration, ValueError):
        return  # not Linux: nothing to check against
    if need > 0.7 * available:
        raise FinetuneError(
            f"the activation cache of {products} products at {image_size} px for {blocks} block(s) needs about "
            f"{need / 2**30:.1f} GiB and {available / 2**30:.1f} GiB are available: lower --max-products or --blocks"
        )


def _training_rows(options: FinetuneOptions) -> tuple[list, dict, list[str]]:
    """(images with their category/colour/group, exclusion counts, skipped reasons)."""
    from curation.review.models import CatalogFlag

    images, skipped = catalog_images()
    doubted = set(
        CatalogFlag.objects.filter(kind=CatalogFlag.Kind.CATEGORY, state=CatalogFlag.State.OPEN).values_list("product_id", flat=True)
    )
    info = {
        pid: (cat, colour or "", model or sku)
        for pid, cat, colour, model, sku in Product.objects.values_list("id", "category_id", "colour", "product_model", "sku")
    }
    kept = [img for img in images if img.product_id in info and img.product_id not in doubted]
    excluded_flags = sum(1 for img in images if img.product_id in doubted)
    if len(kept) > options.max_products:
        # A random sample keeps every category's share; the cache of all would not fit in memory.
        rng = np.random.default_rng(options.seed)
        kept = [kept[i] for i in sorted(rng.choice(len(kept), options.max_products, replace=False))]
    broken = {}
    for img in kept:
        reason = unreadable_reason(img)
        if reason:
            broken[img.product_id] = reason
    skipped.extend(broken.values())
    kept = [img for img in kept if img.product_id not in broken]
    counts: dict[int, int] = {}
    for img in kept:
        counts[info[img.product_id][0]] = counts.get(info[img.product_id][0], 0) + 1
    small = sum(1 for img in kept if counts[info[img.product_id][0]] < 2)
    kept = [img for img in kept if counts[info[img.product_id][0]] >= 2]
    rows = [(img, *info[img.product_id]) for img in kept]
    return rows, {"excluded_open_flags": excluded_flags, "excluded_small_categories": small}, skipped


def _keep_base_features(images: list[CatalogImage], vectors: np.ndarray, *, cfg, key: str) -> None:
    """Store the base weights' features as an inactive embedding set when earlier sets lack some of
    them: after the switch, the pipeline's catalog flags read these (pipeline._flag_features) and
    would otherwise embed the catalog a second time."""
    if key != cfg.key():
        return  # not the settings' weights: nothing later would look them up
    cached = cached_features(backbone_key=key)
    if all(img.sha256 in cached for img in images):
        return
    embedding_set_write(images=images, vectors=vectors, cfg=cfg)


def _knn_precision_at_10(vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> float:
    """Share of each query's 10 nearest products (cosine, itself excluded) that share its category."""
    if len(queries) == 0 or len(vectors) < 2:
        return float("nan")
    from ml.metrics import precision_at_k

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    k = min(10, len(vectors) - 1)
    neighbours = []
    for start in range(0, len(queries), 1024):  # bounded memory: 1,024 rows of similarities at a time
        q = queries[start : start + 1024]
        sims = unit[q] @ unit.T
        sims[np.arange(len(q)), q] = -np.inf
        neighbours.append(labels[np.argpartition(-sims, k - 1, axis=1)[:, :k]])
    return precision_at_k(labels[queries], np.concatenate(neighbours))


def _head_accuracy(features: np.ndarray, labels: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray) -> float:
    """Held-out accuracy of the pipeline's category head (its settings) trained on ``features[train]``."""
    from ml.category import CategoryConfig, train_category_model

    cfg = CategoryConfig(device=settings.ML_DEVICE, epochs=settings.TRAIN_CATEGORY_EPOCHS, min_steps=settings.TRAIN_CATEGORY_MIN_STEPS)
    model = train_category_model(features[train], labels[train], n_classes, cfg=cfg)
    return float((model.predict_proba(features[test]).argmax(1) == labels[test]).mean())


def backbone_finetune(*, out_path: str | Path, options: FinetuneOptions | None = None, overwrite: bool = False,
                      on_progress: OnProgress | None = None) -> FinetuneReport:
    """Fine-tune the configured backbone on the catalog's categories and write its state dict to ``out_path``.

    Products whose category has an open catalog flag are left out (their label is in doubt), and
    so are categories with fewer than two products. Nothing is written unless training finished:
    the file appears whole (written beside it, then renamed), with a JSON record beside it
    (``<file>.json``: base weights, options, data, held-out metrics, per-epoch history, sha256).
    """
    import torch

    from ml.backbone import state_sha256
    from ml.finetune import FinetuneConfig, finetune_layer4, finetune_predict_logits, layer3_cache, layer4_embed

    options = options or FinetuneOptions()
    started = time.monotonic()
    cfg = backbone_config()
    out = Path(out_path).expanduser().resolve()
    current = (settings.ML_WEIGHTS or "").strip()
    if current.lower() not in ("imagenet", "none", "") and Path(current).expanduser().resolve() == out:
        raise FinetuneError(
            f"{out} is the file ML_WEIGHTS uses now: writing over it would change the features under the active "
            "embedding set. Write to a new path, then point ML_WEIGHTS at it."
        )
    if out.is_dir():
        raise FinetuneError(f"{out} is a directory: give the path of the .pt file to write")
    if out.exists() and not overwrite:
        raise FinetuneError(f"{out} exists: choose another path or pass --overwrite")
    if not 1 <= options.blocks <= 9:
        raise FinetuneError(f"--blocks {options.blocks}: ResNet-50's layer3 and layer4 have 9 bottleneck blocks together (3 = layer4)")
    if options.epochs < 1:
        raise FinetuneError(f"--epochs {options.epochs}: train at least one epoch")
    if not 0 <= options.holdout_percent <= 50:
        raise FinetuneError(f"--holdout-percent {options.holdout_percent}: choose 0 to 50")
    if cfg.name != "resnet50":
        raise FinetuneError(f"ML_BACKBONE={cfg.name!r}: fine-tuning is built for resnet50's layer3/layer4 blocks")

    rows, excluded, skipped = _training_rows(options)
    _check_memory(products=len(rows), blocks=options.blocks, image_size=int(cfg.image_size))
    category_ids = np.array([r[1] for r in rows], dtype=np.int64)
    class_ids, labels = np.unique(category_ids, return_inverse=True)
    if len(class_ids) < 2:
        raise FinetuneError(
            f"{len(class_ids)} categories have two or more products with readable images and no open catalog flag: "
            "fine-tuning needs at least two"
        )
    split = evaluation.split_of_groups([r[3] for r in rows], test_percent=options.holdout_percent, val_percent=0)
    test = np.flatnonzero(split == evaluation.TEST)
    train = np.flatnonzero(split != evaluation.TEST)
    if len(np.unique(labels[train])) < 2:
        raise FinetuneError("the training rows left after the hold-out span fewer than two categories: lower --holdout-percent")
    colour_names = sorted({r[2] for r in rows if r[2]})
    colour_index = {c: i for i, c in enumerate(colour_names)}
    attributes = None
    if len(colour_names) >= 2:
        attributes = {"colour": (np.array([colour_index.get(r[2], -1) for r in rows], dtype=np.int64), len(colour_names))}

    embedder = embedder_for(cfg)
    images = [r[0] for r in rows]
    # The pass that caches the activations finishes the frozen network too: the products' current
    # embeddings, exact, for the "before" figures and for the retrain's catalog flags.
    cache, frozen = layer3_cache(embedder, [str(img.path) for img in images], blocks=options.blocks, with_features=True,
                                 progress=(lambda d, t: on_progress("cache", d, t, {"unit": "images"})) if on_progress else None)
    _keep_base_features(images, frozen, cfg=cfg, key=embedder.key)
    metrics: dict = {}
    if len(test):
        metrics["frozen_knn_precision_at_10"] = round(_knn_precision_at_10(frozen, labels, test), 4)
        metrics["frozen_holdout_accuracy"] = round(_head_accuracy(frozen, labels, len(class_ids), train, test), 4)
    del frozen

    ft_cfg = FinetuneConfig(epochs=options.epochs, blocks=options.blocks, bf16=bool(settings.ML_BF16), seed=options.seed,
                            time_budget_s=options.time_budget_s)

    def epoch_done(row: dict) -> None:
        if on_progress:
            on_progress("finetune", row["epoch"], row["epochs"], {"unit": "epochs", "loss": row["loss"], "train_accuracy": row["train_accuracy"]})

    if on_progress:
        on_progress("finetune", 0, options.epochs, {"unit": "epochs"})
    result = finetune_layer4(embedder, cache, labels, len(class_ids), rows=train, attributes=attributes, cfg=ft_cfg, progress=epoch_done)
    if len(test):
        tuned = layer4_embed(result.tail, cache, blocks=options.blocks)
        metrics["knn_precision_at_10"] = round(_knn_precision_at_10(tuned, labels, test), 4)
        # The same head as "before", on the new features: what the pipeline's category model will see.
        metrics["holdout_accuracy"] = round(_head_accuracy(tuned, labels, len(class_ids), train, test), 4)
        logits = finetune_predict_logits(result, cache, blocks=options.blocks, rows=test)["__category__"]
        metrics["network_holdout_accuracy"] = round(float((logits.argmax(1) == labels[test]).mean()), 4)
    metrics["train_accuracy"] = round(float(result.history[-1]["train_accuracy"]), 4)
    del cache

    # Saved to memory first: torch names the archive inside the file after the file, so saving
    # straight to a temporary name would give the same weights a different sha256 each time.
    buffer = io.BytesIO()
    torch.save(result.state, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    side = sidecar_path(out)
    side_partial = side.with_name(f".{side.name}.partial-{os.getpid()}")
    try:
        report = FinetuneReport(
            path=str(out),
            sha256=sha,
            base_backbone=embedder.key,
            new_backbone=cfg.key(sha),  # what BackboneConfig(weights=out).key() will say: sd-<file sha256>
            products=len(rows),
            train_products=int(len(train)),
            holdout_products=int(len(test)),
            classes=int(len(class_ids)),
            skipped=skipped,
            metrics=metrics,
            history=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in result.history],
            seconds=round(time.monotonic() - started, 1),
            **excluded,
        )
        record = {
            **{k: v for k, v in report.to_dict().items() if k not in ("path", "skipped")},
            "state_sha256": state_sha256(result.state),
            # What the pipeline's catalog flags embed with (pipeline._flag_features): a path made absolute,
            # since workers may run elsewhere than this command.
            "base_weights": cfg.weights if cfg.weights.strip().lower() in ("imagenet", "none") else str(Path(cfg.weights).expanduser().resolve()),
            "options": asdict(options),
            "finetune": ft_cfg.to_dict(),
            "image_size": int(cfg.image_size),
            "category_ids": class_ids.tolist(),
            "colours": colour_names,
        }
        partial.write_bytes(data)
        side_partial.write_text(json.dumps(record, indent=2))
        # The record first: weights without their record would be used without the base features
        # for flags; a record whose weights never arrive names a sha256 no file has, and is ignored.
        os.replace(side_partial, side)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        side_partial.unlink(missing_ok=True)
    logger.info("fine-tuned backbone written to %s (sha256 %s): %s", out, sha, metrics)
    return report
