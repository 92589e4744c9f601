"""The retraining pipeline: one PipelineRun row, six steps, each one idempotent.

embed -> train_category (+ flags) -> train_siamese -> train_outfit -> activate -> refresh.

The run row is the lock (its unique ``lock`` column admits one queued or running run) and the
progress record the models page polls. Each step reads what earlier steps left in ``run.steps``
(ids of the embedding set and versions they made), so a step re-delivered after a worker died
starts over cleanly while finished steps are skipped. Nothing is activated before the activate
step, which switches everything in one transaction: a crash anywhere leaves the previous active
models serving. A run whose worker died is found by its stale heartbeat and marked failed.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.catalog.models import Product
from curation.catalog.selectors import id_chunks
from curation.training import embedding_files, evaluation, selectors
from curation.training.ml_objects import artifact_abspath, backbone_config, load_model, save_model
from curation.training.models import EmbeddingSet, ModelVersion, PipelineRun
from curation.training.services.embeddings import (
    EmbedReport,
    catalog_images,
    embedding_set_activate,
    embedding_set_build,
    features_for_images,
)

logger = logging.getLogger(__name__)

STEPS: tuple[tuple[str, str], ...] = (
    ("embed", "Embed catalog images"),
    ("train_category", "Category model and catalog flags"),
    ("train_siamese", "Siamese pair model"),
    ("train_outfit", "Outfit model"),
    ("activate", "Evaluate and activate"),
    ("refresh", "Refresh candidate pairs"),
)
STEP_NAMES = tuple(name for name, _ in STEPS)
# A step re-delivered this many times without finishing (e.g. the worker is OOM-killed every time)
# fails the run instead of looping forever.
MAX_STEP_ATTEMPTS = 3

# on_progress(step, done, total, detail)
OnProgress = Callable[[str, int, int, dict], None]


class PipelineBusy(RuntimeError):
    """A run is already queued or running (the lock)."""

    def __init__(self, run: PipelineRun | None):
        self.run = run
        where = f"run {run.pk} is {run.status} (step {run.current_step or '-'})" if run else "another run is in flight"
        super().__init__(f"a retraining run is already in progress: {where}")


class RunNotInFlight(RuntimeError):
    """The run was failed (stale, cancelled) or finished: its remaining tasks do nothing."""


class PipelineFailed(RuntimeError):
    pass


# --- Requesting runs and the lock ------------------------------------------------------------------


def _initial_steps() -> dict:
    return {name: {"label": label, "state": "pending", "done": 0, "total": 0, "attempts": 0} for name, label in STEPS}


def pipeline_runs_fail_stale() -> list[int]:
    """Mark in-flight runs whose heartbeat is older than RETRAIN_LOCK_STALE_SECONDS as failed.

    A queued run that no worker picked up and a running run whose worker died look the same: no
    heartbeat. Their partly trained versions are marked failed; active versions are untouched.
    """
    stale_seconds = settings.RETRAIN_LOCK_STALE_SECONDS
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_seconds)
    failed = []
    with transaction.atomic():
        for run in PipelineRun.objects.select_for_update().filter(
            status__in=[PipelineRun.Status.QUEUED, PipelineRun.Status.RUNNING]
        ):
            last = run.heartbeat_at or run.created_at
            if last >= cutoff:
                continue
            if run.status == PipelineRun.Status.QUEUED:
                reason = f"no worker picked up the run within {stale_seconds} s: is the Celery worker running?"
            else:
                reason = (
                    f"no heartbeat for {stale_seconds} s during step {run.current_step or '?'}: "
                    "the worker was stopped or killed"
                )
            _fail_run_locked(run, reason)
            failed.append(run.pk)
    return failed


def pipeline_run_request(*, trigger: str, forced: bool = False, user=None, enqueue: bool = True) -> PipelineRun:
    """Create a queued run (the lock) and, after commit, send its task chain to the workers.

    Raises PipelineBusy when a run is in flight (after failing stale ones).
    """
    if trigger not in PipelineRun.Trigger.values:
        raise ValueError(f"trigger must be one of {', '.join(PipelineRun.Trigger.values)}, not {trigger!r}")
    pipeline_runs_fail_stale()
    try:
        with transaction.atomic():
            run = PipelineRun.objects.create(
                status=PipelineRun.Status.QUEUED,
                trigger=trigger,
                forced=forced,
                requested_by=user if (user is not None and user.is_authenticated) else None,
                heartbeat_at=timezone.now(),
                steps=_initial_steps(),
            )
    except IntegrityError:
        raise PipelineBusy(selectors.run_in_flight()) from None
    if enqueue:
        from curation.training.tasks import pipeline_enqueue

        transaction.on_commit(lambda: pipeline_enqueue(run.pk))
    return run


def pipeline_run_fail(*, run_id: int, error: str) -> None:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        if run.status in (PipelineRun.Status.QUEUED, PipelineRun.Status.RUNNING):
            _fail_run_locked(run, error)


def _fail_run_locked(run: PipelineRun, error: str) -> None:
    now = timezone.now()
    steps = run.steps or {}
    if run.current_step in steps and steps[run.current_step].get("state") == "running":
        steps[run.current_step]["state"] = "failed"
    run.status = PipelineRun.Status.FAILED
    run.lock = None
    run.error = error[:10_000]
    run.finished_at = now
    run.steps = steps
    run.save(update_fields=["status", "lock", "error", "finished_at", "steps"])
    ModelVersion.objects.filter(run=run, status__in=[ModelVersion.Status.QUEUED, ModelVersion.Status.RUNNING]).update(
        status=ModelVersion.Status.FAILED, error=error[:10_000], finished_at=now
    )


def retrain_if_enough_labels() -> PipelineRun | None:
    """Beat's periodic check: a run when RETRAIN_MIN_NEW_LABELS labels arrived since the active
    siamese model was trained. Returns the run, or None (not enough labels, or one in flight)."""
    pipeline_runs_fail_stale()
    new = selectors.new_labels_since_active()
    if new < settings.RETRAIN_MIN_NEW_LABELS:
        logger.info("retrain check: %d new labels, %d needed", new, settings.RETRAIN_MIN_NEW_LABELS)
        return None
    try:
        return pipeline_run_request(trigger=PipelineRun.Trigger.SCHEDULE)
    except PipelineBusy as exc:
        logger.info("retrain check: %s", exc)
        return None


# --- Step bookkeeping ----------------------------------------------------------------------------


@dataclass
class StepContext:
    run: PipelineRun
    name: str
    on_progress: OnProgress | None
    _last_write: float = 0.0

    @property
    def state(self) -> dict:
        return self.run.steps[self.name]

    def detail(self, **values) -> None:
        self.state.update(values)
        self._write(force=True)

    def progress(self, done: int, total: int, **values) -> None:
        self.state.update({"done": int(done), "total": int(total), **values})
        if self.on_progress:
            self.on_progress(self.name, int(done), int(total), values)
        self._write(force=done >= total)

    def _write(self, *, force: bool = False) -> None:
        # The heartbeat doubles as progress; writes are throttled so epochs of tiny models do not
        # hammer the database, but always well inside the stale limit.
        now = time.monotonic()
        interval = min(2.0, settings.RETRAIN_LOCK_STALE_SECONDS / 4)
        if not force and now - self._last_write < interval:
            return
        self._last_write = now
        updated = PipelineRun.objects.filter(pk=self.run.pk, status=PipelineRun.Status.RUNNING).update(
            steps=self.run.steps, heartbeat_at=timezone.now()
        )
        if not updated:
            raise RunNotInFlight(f"run {self.run.pk} is no longer running (failed as stale or finished)")


@contextmanager
def _step(run_id: int, name: str, on_progress: OnProgress | None):
    failure = None
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        if run.status not in (PipelineRun.Status.QUEUED, PipelineRun.Status.RUNNING):
            raise RunNotInFlight(f"run {run_id} is {run.status}")
        steps = run.steps or _initial_steps()
        state = steps.setdefault(name, {"label": dict(STEPS)[name], "state": "pending", "done": 0, "total": 0, "attempts": 0})
        finished = state.get("state") in ("done", "skipped")
        if not finished:
            state["attempts"] = int(state.get("attempts", 0)) + 1
            run.current_step = name
            run.steps = steps
            if state["attempts"] > MAX_STEP_ATTEMPTS:
                failure = f"step {name} was started {MAX_STEP_ATTEMPTS} times without finishing (the worker died each time?)"
                _fail_run_locked(run, failure)
            else:
                now = timezone.now()
                state.update({"state": "running", "started_at": now.isoformat()})
                run.status = PipelineRun.Status.RUNNING
                run.started_at = run.started_at or now
                run.heartbeat_at = now
                run.save(update_fields=["status", "started_at", "current_step", "heartbeat_at", "steps"])
                # A re-delivered step starts over: what its dead attempt left half-made is failed.
                ModelVersion.objects.filter(run=run, status=ModelVersion.Status.RUNNING, config__step=name).update(
                    status=ModelVersion.Status.FAILED, error="interrupted: the step was restarted"
                )
    if finished:
        yield None
        return
    if failure:
        raise PipelineFailed(failure)  # after the commit, so the failure is recorded
    ctx = StepContext(run=run, name=name, on_progress=on_progress)
    started = time.monotonic()
    try:
        yield ctx
    except RunNotInFlight:
        raise
    except Exception as exc:
        logger.exception("pipeline run %s failed in step %s", run_id, name)
        pipeline_run_fail(run_id=run_id, error=f"{name}: {type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}")
        raise
    ctx.state["state"] = ctx.state.get("result_state", "done")
    ctx.state.pop("result_state", None)
    ctx.state["finished_at"] = timezone.now().isoformat()
    ctx.state["seconds"] = round(time.monotonic() - started, 1)
    ctx._write(force=True)


def _new_version(ctx: StepContext, *, kind: str, embedding_set: EmbeddingSet | None, config: dict) -> ModelVersion:
    return ModelVersion.objects.create(
        kind=kind,
        status=ModelVersion.Status.RUNNING,
        run=ctx.run,
        backbone=embedding_set.backbone if embedding_set else "",
        embedding_set=embedding_set,
        config={"step": ctx.name, **config},
        started_at=timezone.now(),
    )


def _finish_version(version: ModelVersion, *, model, data_summary: dict, metrics: dict, history: list | None = None,
                    extra_config: dict | None = None, holdout_model=None) -> ModelVersion:
    """Save the model that serves; ``holdout_model`` (trained without the held-out slices, when the
    served one was refit on everything) is saved beside it for later runs' comparisons."""
    config = {k: v for k, v in version.config.items()}
    config.update(extra_config or {})
    if holdout_model is not None:
        holdout_path, holdout_sha = save_model(kind=version.kind, model=holdout_model, config=config, data_summary=data_summary, metrics=metrics)
        config["holdout_artifact"] = {"path": holdout_path, "sha256": holdout_sha}
    path, sha = save_model(kind=version.kind, model=model, config=config, data_summary=data_summary, metrics=metrics)
    version.config = {**config, "model": model.config_dict()}
    version.artifact_path = path
    version.artifact_sha256 = sha
    version.data_summary = data_summary
    version.metrics = metrics
    version.history = history or []
    version.newest_label_at = selectors.newest_label_time()
    version.status = ModelVersion.Status.READY
    version.finished_at = timezone.now()
    version.save()
    return version


# --- The data each training step sees --------------------------------------------------------------


@dataclass
class Dataset:
    embedding_set: EmbeddingSet
    product_ids: np.ndarray  # (N,)
    features: np.ndarray  # (N, D)
    row_of: dict[int, int]
    category_ids: np.ndarray  # (N,) catalog category id per row
    categories: np.ndarray  # (N,) dense category index per row
    colours: list[str]
    groups: list[str]  # product model (or sku): colour variants share it
    verified: np.ndarray  # (N,) bool: a merchandiser confirmed the category
    shas: list[str]  # image sha256 each row's features were computed from
    split: np.ndarray  # evaluation.TEST / VAL / TRAIN per row


def _dataset(embedding_set: EmbeddingSet) -> Dataset:
    files = embedding_files.read_embedding_files(artifact_abspath(embedding_set.vectors_path), mmap=False)
    ids = files.product_ids
    info = {
        pid: (cat, colour or "", model or sku, verified is not None)
        for chunk in id_chunks(ids.tolist())
        for pid, cat, colour, model, sku, verified in Product.objects.filter(id__in=chunk).values_list(
            "id", "category_id", "colour", "product_model", "sku", "category_verified_at"
        )
    }
    keep = np.array([int(p) in info for p in ids.tolist()], dtype=bool)  # products deleted since
    ids = ids[keep]
    features = np.asarray(files.vectors, dtype=np.float32)[keep]
    rows = [info[int(p)] for p in ids.tolist()]
    category_ids = np.array([r[0] for r in rows], dtype=np.int64)
    _, dense = np.unique(category_ids, return_inverse=True)
    groups = [r[2] for r in rows]
    return Dataset(
        embedding_set=embedding_set,
        product_ids=ids,
        features=features,
        row_of={int(p): i for i, p in enumerate(ids.tolist())},
        category_ids=category_ids,
        categories=dense.astype(np.int64),
        colours=[r[1] for r in rows],
        groups=groups,
        verified=np.array([r[3] for r in rows], dtype=bool),
        shas=[sha for sha, k in zip(files.shas, keep.tolist()) if k],
        split=evaluation.split_of_groups(
            groups, test_percent=settings.TRAIN_HOLDOUT_PERCENT, val_percent=settings.TRAIN_VAL_PERCENT
        ),
    )


def _run_embedding_set(run: PipelineRun) -> EmbeddingSet:
    set_id = run.steps.get("embed", {}).get("embedding_set_id")
    if not set_id:
        raise PipelineFailed(f"run {run.pk}: the embed step left no embedding set")
    return EmbeddingSet.objects.get(pk=set_id)


def _label_summary(rows: list) -> dict:
    by_source: dict[str, dict[str, int]] = {}
    for _a, _b, value, _w, source in rows:
        entry = by_source.setdefault(source, {"positive": 0, "negative": 0})
        entry["positive" if value else "negative"] += 1
    newest = selectors.newest_label_time()
    return {"labels_by_source": by_source, "newest_label_at": newest.isoformat() if newest else None}


# --- The steps -----------------------------------------------------------------------------------


def _step_embed(ctx: StepContext) -> None:
    report = EmbedReport()
    emb = embedding_set_build(activate=False, progress=lambda d, t: ctx.progress(d, t, unit="images"), report=report)
    ctx.detail(
        embedding_set_id=emb.pk,
        embedded=report.embedded,
        reused=report.reused,
        skipped=len(report.skipped),
        skipped_examples=report.skipped[:20],
        done=report.embedded + report.reused,
        total=report.embedded + report.reused,
        unit="images",
    )
    # The very first set serves discovery and the queue at once; later ones wait for activation.
    if not EmbeddingSet.objects.filter(is_active=True).exists():
        embedding_set_activate(embedding_set=emb)


def _flag_features(ctx: StepContext, data: Dataset, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """The features out-of-fold predictions (and so catalog flags) are computed on, and their space.

    Weights from finetune_backbone were trained on the catalog's own categories, wrong ones
    included: on their features a product's wrong label vouches for itself, which is what
    out-of-fold predictions exist to prevent. So when the embedding set's backbone is such a
    fine-tune, flags read the base weights' features instead: cached by image sha256 from the sets
    built before the switch, embedded now only for images those sets lack.
    """
    emb = data.embedding_set
    version = emb.model_version
    config = (version.config or {}) if version else {}
    base_key = config.get("base_backbone")
    if not base_key or base_key == emb.backbone:
        return data.features[rows], emb.backbone
    base_cfg = replace(backbone_config(), weights=config.get("base_weights") or "none")
    if base_cfg.key() != base_key:
        logger.warning("flags use the fine-tuned features: the base weights %s are not %r any more", base_cfg.weights, base_key)
        return data.features[rows], emb.backbone
    image_of = {img.product_id: img for img in catalog_images()[0]}
    images = [image_of.get(int(data.product_ids[r])) for r in rows]
    if any(img is None or img.sha256 != data.shas[r] for img, r in zip(images, rows)):
        logger.warning("flags use the fine-tuned features: some images changed or went missing since the set was built")
        return data.features[rows], emb.backbone
    kept, vectors = features_for_images(images, cfg=base_cfg, progress=lambda d, t: ctx.progress(d, t, unit="base images"))
    if len(kept) != len(images):
        return data.features[rows], emb.backbone
    return vectors, base_key


def _step_train_category(ctx: StepContext) -> None:
    from ml.category import CategoryConfig, out_of_fold_predictions, train_category_model

    data = _dataset(_run_embedding_set(ctx.run))
    counts = np.bincount(data.categories) if len(data.categories) else np.array([])
    trainable = np.isin(data.categories, np.flatnonzero(counts >= 2))
    n_classes_ok = int((counts >= 2).sum())
    cfg = CategoryConfig(
        device=settings.ML_DEVICE, epochs=settings.TRAIN_CATEGORY_EPOCHS, min_steps=settings.TRAIN_CATEGORY_MIN_STEPS
    )
    if n_classes_ok < 2 or trainable.sum() < cfg.folds:
        ctx.detail(result_state="skipped", reason=f"{n_classes_ok} categories with two or more products: nothing to learn")
        return
    rows = np.flatnonzero(trainable)
    class_ids, labels = np.unique(data.category_ids[rows], return_inverse=True)
    colour_names = sorted({c for c in data.colours if c})
    colour_index = {c: i for i, c in enumerate(colour_names)}
    colour_labels = np.array([colour_index.get(data.colours[r], -1) for r in rows], dtype=np.int64)
    attributes = {"colour": (colour_labels, len(colour_names))} if len(colour_names) >= 2 else None
    # Categories a merchandiser confirmed are better evidence than imported ones.
    weight = np.where(data.verified[rows], settings.REVIEW_VERIFIED_SAMPLE_WEIGHT, 1.0).astype(np.float32)
    groups = np.array([data.groups[r] for r in rows])
    version = _new_version(ctx, kind=ModelVersion.Kind.CATEGORY, embedding_set=data.embedding_set, config={"category": cfg.to_dict()})
    flag_features, flag_space = _flag_features(ctx, data, rows)
    ctx.progress(0, cfg.folds + 1, unit="folds")
    oof = out_of_fold_predictions(
        flag_features, labels, len(class_ids), groups=groups, sample_weight=weight, attributes=attributes, cfg=cfg,
        progress=lambda d, t: ctx.progress(d, t + 1, unit="folds"),
    )
    proba = oof["proba"]
    top = np.argsort(-proba, axis=1)
    metrics = {
        "oof_accuracy": round(float((top[:, 0] == labels).mean()), 4),
        "oof_top3_accuracy": round(float((top[:, :3] == labels[:, None]).any(1).mean()), 4),
        "classes": int(len(class_ids)),
        "products": int(len(rows)),
        "flag_features": flag_space,
    }
    model = train_category_model(data.features[rows], labels, len(class_ids), sample_weight=weight, attributes=attributes, cfg=cfg)
    ctx.progress(cfg.folds + 1, cfg.folds + 1, unit="folds")
    _finish_version(
        version,
        model=model,
        data_summary={"products": int(len(rows)), "classes": int(len(class_ids)), "verified": int(data.verified[rows].sum())},
        metrics=metrics,
        extra_config={"class_ids": class_ids.tolist(), "colours": colour_names},
    )
    flag_counts = _refresh_flags(version=version, data=data, rows=rows, proba=proba, class_ids=class_ids, oof=oof, colour_names=colour_names)
    ctx.detail(model_version_id=version.pk, flags=flag_counts, **metrics)


def _refresh_flags(*, version, data: Dataset, rows, proba, class_ids, oof, colour_names) -> dict:
    from curation.review.services import flags_refresh

    product_ids = data.product_ids[rows].tolist()
    results = {"category": flags_refresh(model_version=version, kind="category", product_ids=product_ids, proba=proba, class_values=class_ids.tolist())}
    if "colour" in oof.get("attributes", {}):
        results["colour"] = flags_refresh(
            model_version=version, kind="colour", product_ids=product_ids, proba=oof["attributes"]["colour"], class_values=colour_names
        )
    return {kind: {"created": res.created, "superseded": res.superseded, "compared": res.compared} for kind, res in results.items()}


@dataclass
class PairData:
    pairs: np.ndarray  # (M, 2) rows of the dataset
    labels: np.ndarray
    weights: np.ndarray
    sources: list[str]


def _pair_data(data: Dataset) -> tuple[PairData, dict]:
    rows = selectors.training_pairs()
    summary = _label_summary(rows)
    kept = [(data.row_of[a], data.row_of[b], v, w, s) for a, b, v, w, s in rows if a in data.row_of and b in data.row_of and a != b]
    summary["pairs_without_embedding"] = len(rows) - len(kept)
    if not kept:
        return PairData(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32), []), summary
    return (
        PairData(
            pairs=np.array([(a, b) for a, b, *_ in kept], dtype=np.int64),
            labels=np.array([v for _, _, v, _, _ in kept], dtype=np.float32),
            weights=np.array([w for *_, w, _ in kept], dtype=np.float32),
            sources=[s for *_, s in kept],
        ),
        summary,
    )


def _slice_of_pairs(pairs: np.ndarray, split: np.ndarray) -> np.ndarray:
    """A pair belongs to the most held-out slice of its two items (TEST beats VAL beats TRAIN)."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.int8)
    return np.maximum(split[pairs[:, 0]], split[pairs[:, 1]])


def _eval_set(data: Dataset, positives: np.ndarray, known: set, *, slice_value: int, seed: int) -> evaluation.PairEval:
    pool = np.flatnonzero(data.split == slice_value)
    eval_set = evaluation.category_matched_eval(positives, data.categories, pool=pool, known_positive=known, seed=seed)
    if len(eval_set.labels) < max(2, len(positives)):
        # Small slices lack same-category distractors: draw them from every item instead.
        eval_set = evaluation.category_matched_eval(
            positives, data.categories, pool=np.arange(len(data.categories)), known_positive=known, seed=seed
        )
    return eval_set


def _active_pair_scores(product_pairs: list[tuple[int, int]]) -> np.ndarray | None:
    """The active siamese version's scores on product-id pairs (NaN where it lacks a product)."""
    from curation.training.serving import PairScorer, active_embeddings

    version = selectors.active_version(ModelVersion.Kind.SIAMESE)
    if version is None or not version.artifact_path:
        return None
    try:
        scorer = PairScorer(version, active_embeddings(), holdout=True)
    except Exception:
        logger.exception("cannot load the active siamese version %s for comparison", version.pk)
        return None
    return scorer.score(product_pairs)


def _with_neighbour_pairs(features: np.ndarray, pairs: np.ndarray, labels: np.ndarray, weights: np.ndarray, *,
                          exclude: np.ndarray, summary: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed pairs plus, with TRAIN_NEIGHBOUR_PAIRS_K, down-weighted pairs of their items' visual neighbours
    (all as rows of ``features``)."""
    if settings.TRAIN_NEIGHBOUR_PAIRS_K <= 0:
        return pairs, labels, weights
    from ml.augment import neighbour_pairs

    extra_pairs, extra_weights = neighbour_pairs(features, pairs, labels, k=settings.TRAIN_NEIGHBOUR_PAIRS_K, exclude=exclude)
    summary["neighbour_pairs"] = int(len(extra_pairs))
    if not len(extra_pairs):
        return pairs, labels, weights
    return (np.concatenate([pairs, extra_pairs]), np.concatenate([labels, np.ones(len(extra_pairs), np.float32)]),
            np.concatenate([weights, extra_weights]))


def _side_attribute_codes(data: Dataset, *, vocabulary: list | None = None) -> tuple[np.ndarray | None, list]:
    """The side-attribute codes (N, K) of the dataset's products for the pair and outfit models, with their
    vocabulary as ``[[name, [values...]], ...]`` (a list: a JSON column need not keep key order).

    Without ``vocabulary`` it is learned from the products outside the test slice, over
    TRAIN_SIDE_ATTRIBUTES; (None, []) when the catalog has none worth reading."""
    from ml.attributes import attribute_vocabulary, encode_attributes

    names = selectors.side_attribute_names(settings.TRAIN_SIDE_ATTRIBUTES) if vocabulary is None else [str(name) for name, _ in vocabulary]
    if not names:
        return None, []
    values = selectors.product_attribute_values(data.product_ids.tolist(), names)
    if vocabulary is None:
        fit = np.flatnonzero(data.split != evaluation.TEST)
        vocab = attribute_vocabulary([values[i] for i in fit], names)
    else:
        vocab = {str(name): [str(v) for v in known] for name, known in vocabulary}
    if not vocab:
        return None, []
    return encode_attributes(values, names, vocab), [[name, known] for name, known in vocab.items()]


def _rows_of(codes: np.ndarray | None, rows) -> np.ndarray | None:
    return None if codes is None else codes[rows]


def _step_train_siamese(ctx: StepContext) -> None:
    from dataclasses import replace

    from ml.siamese import SiameseConfig, best_epoch, score_pairs, train_siamese

    data = _dataset(_run_embedding_set(ctx.run))
    pd, summary = _pair_data(data)
    if (pd.labels > 0.5).sum() < 2:
        ctx.detail(result_state="skipped", reason="fewer than two positive pairs (stylist labels or outfits): nothing to learn")
        return
    slice_ = _slice_of_pairs(pd.pairs, data.split)
    known = {(min(a, b), max(a, b)) for (a, b), y in zip(pd.pairs.tolist(), pd.labels.tolist()) if y > 0.5}
    # Test items are never trained on: not as pair members, not as sampled negatives.
    train_rows = np.flatnonzero(data.split != evaluation.TEST)
    local = np.full(len(data.split), -1, dtype=np.int64)
    local[train_rows] = np.arange(len(train_rows))
    fit = slice_ == evaluation.TRAIN
    if (pd.labels[fit] > 0.5).sum() < 1:
        fit = slice_ != evaluation.TEST  # tiny label sets: use validation pairs for fitting too
    val_pos = pd.pairs[(slice_ == evaluation.VAL) & (pd.labels > 0.5)]
    val_set = _eval_set(data, val_pos, known, slice_value=evaluation.VAL, seed=1)
    attributes, attribute_vocab = _side_attribute_codes(data) if settings.TRAIN_SIAMESE_ATTRIBUTE_DIM > 0 else (None, [])
    cfg = SiameseConfig(
        device=settings.ML_DEVICE, epochs=settings.TRAIN_SIAMESE_EPOCHS, patience=settings.TRAIN_SIAMESE_PATIENCE,
        category_dim=settings.TRAIN_SIAMESE_CATEGORY_DIM, attribute_dim=settings.TRAIN_SIAMESE_ATTRIBUTE_DIM if attribute_vocab else 0,
    )
    # Category codes the model reads (type-aware legs): the dataset's dense codes, and the catalog
    # category id behind each, so serving can map a product's category to the same code.
    category_ids = np.unique(data.category_ids).tolist()
    version = _new_version(ctx, kind=ModelVersion.Kind.SIAMESE, embedding_set=data.embedding_set, config={"siamese": cfg.to_dict()})
    fit_pairs, fit_labels, fit_weights = _with_neighbour_pairs(
        data.features[train_rows], local[pd.pairs[fit]], pd.labels[fit], pd.weights[fit],
        exclude=local[pd.pairs[slice_ != evaluation.TEST]], summary=summary,
    )
    refit = settings.TRAIN_SIAMESE_REFIT and bool((slice_ != evaluation.TRAIN).any())
    ctx.progress(0, cfg.epochs, unit="epochs")
    model, history = train_siamese(
        data.features[train_rows],
        fit_pairs,
        fit_labels,
        weights=fit_weights,
        categories=data.categories[train_rows],
        attributes=_rows_of(attributes, train_rows),
        cfg=cfg,
        val_pairs=local[val_set.pairs] if len(val_set.labels) else None,
        val_labels=val_set.labels if len(val_set.labels) else None,
        progress=lambda row: ctx.progress(row["epoch"], row["epochs"], unit="epochs", loss=row.get("loss"), val_auc=row.get("val_auc")),
    )
    test_pos = pd.pairs[(slice_ == evaluation.TEST) & (pd.labels > 0.5)]
    test_set = _eval_set(data, test_pos, known, slice_value=evaluation.TEST, seed=2)
    fit_all = slice_ != evaluation.TEST

    def new_scores(pairs: np.ndarray) -> np.ndarray:
        return score_pairs(model, data.features[pairs[:, 0]], data.features[pairs[:, 1]],
                           data.categories[pairs[:, 0]], data.categories[pairs[:, 1]],
                           _rows_of(attributes, pairs[:, 0]), _rows_of(attributes, pairs[:, 1]))
    metrics = {"train_pairs": int(fit.sum()), "val_pairs": int(len(val_set.labels)), "test_positives": int(len(test_pos)),
               "side_attributes": [name for name, _ in attribute_vocab]}
    if len(test_set.labels):
        metrics.update(
            evaluation.pair_metrics(
                new_scores,
                test_set,
                baseline=evaluation.baseline_scores(pd.pairs[fit_all], pd.labels[fit_all], data.categories, test_set.pairs),
                cosine=evaluation.cosine_scores(data.features, test_set.pairs),
            )
        )
        product_pairs = [tuple(int(x) for x in data.product_ids[p]) for p in test_set.pairs]
        active_scores = _active_pair_scores(product_pairs)
        if active_scores is not None:
            ok = ~np.isnan(active_scores)
            if ok.sum() and len(np.unique(test_set.labels[ok])) == 2:
                from ml.metrics import roc_auc

                metrics["active_pair_auc"] = round(float(roc_auc(test_set.labels[ok], active_scores[ok])), 4)
                metrics["pair_auc_same_pairs"] = round(float(roc_auc(test_set.labels[ok], new_scores(test_set.pairs[ok]))), 4)
    labelled_test = slice_ == evaluation.TEST
    if len(np.unique(pd.labels[labelled_test])) == 2:
        from ml.metrics import roc_auc

        metrics["label_auc"] = round(float(roc_auc(pd.labels[labelled_test], new_scores(pd.pairs[labelled_test]))), 4)
    best_val = [h["val_auc"] for h in history if h.get("val_auc") is not None]
    if best_val:
        metrics["val_auc"] = round(float(max(best_val)), 4)
    metrics["best_epoch"] = best_epoch(history)
    history_rows = [{"epoch": h["epoch"], "loss": round(float(h["loss"]), 5), "val_auc": h.get("val_auc")} for h in history]
    served, holdout = model, None
    if refit:
        # Every figure above is the held-out model's. The model that serves is trained again, for
        # the epochs validation chose, on every label (validation and test slices included: the
        # more pairs, the better the model, and nothing is left to measure it on). The held-out
        # model is kept beside it, so the next run compares held-out model with held-out model.
        all_pairs, all_labels, all_weights = _with_neighbour_pairs(
            data.features, pd.pairs, pd.labels, pd.weights, exclude=pd.pairs, summary={},
        )
        ctx.detail(refit="every label", refit_epochs=metrics["best_epoch"])
        served, _ = train_siamese(
            data.features, all_pairs, all_labels, weights=all_weights, categories=data.categories, attributes=attributes,
            cfg=replace(cfg, epochs=max(metrics["best_epoch"], 1), patience=0),
            progress=lambda row: ctx.progress(row["epoch"], row["epochs"], unit="epochs (refit on every label)", loss=row.get("loss")),
        )
        holdout = model
        metrics["served_model"] = "refit on every label"
        summary["refit_pairs"] = int(len(all_pairs))
    _finish_version(version, model=served, holdout_model=holdout, data_summary=summary, metrics=metrics, history=history_rows,
                    extra_config={"category_ids": category_ids, "side_attributes": attribute_vocab})
    ctx.detail(model_version_id=version.pk, **{k: v for k, v in metrics.items() if k in ("pair_auc", "baseline_auc", "val_auc")})


def _step_train_outfit(ctx: StepContext) -> None:
    from ml.attributes import with_indicators
    from ml.outfit import OutfitConfig, score_outfits, train_outfit_scorer

    data = _dataset(_run_embedding_set(ctx.run))
    outfits = [[data.row_of[p] for p in outfit if p in data.row_of] for outfit in selectors.training_outfits()]
    outfits = [o for o in outfits if len(o) >= 2]
    train_rows = np.flatnonzero(data.split != evaluation.TEST)
    local = np.full(len(data.split), -1, dtype=np.int64)
    local[train_rows] = np.arange(len(train_rows))
    fit = [[int(local[i]) for i in o if data.split[i] != evaluation.TEST] for o in outfits]
    fit = [o for o in fit if len(o) >= 2]
    if len(fit) < 2:
        ctx.detail(result_state="skipped", reason=f"{len(fit)} outfits of two or more training products: nothing to learn")
        return
    cfg = OutfitConfig(device=settings.ML_DEVICE, epochs=settings.TRAIN_OUTFIT_EPOCHS)
    version = _new_version(ctx, kind=ModelVersion.Kind.OUTFIT, embedding_set=data.embedding_set, config={"outfit": cfg.to_dict()})
    side, side_vocab = _side_attribute_codes(data)
    # The outfit scorer reads side attributes as indicator columns after the image features.
    outfit_features = with_indicators(data.features, side, [len(known) for _, known in side_vocab])
    ctx.progress(0, cfg.epochs, unit="epochs")
    model, history = train_outfit_scorer(
        outfit_features[train_rows], fit, data.categories[train_rows], cfg=cfg,
        progress=lambda row: ctx.progress(row["epoch"], row["epochs"], unit="epochs", loss=row.get("loss")),
    )
    questions = evaluation.fitb_questions(
        outfits, data.categories, is_test=data.split == evaluation.TEST, pool=np.flatnonzero(data.split == evaluation.TEST)
    )
    if len(questions) < 1:
        questions = evaluation.fitb_questions(
            outfits, data.categories, is_test=data.split == evaluation.TEST, pool=np.arange(len(data.split))
        )
    metrics = {"train_outfits": len(fit), "fitb_questions": len(questions)}
    if questions:
        metrics["fitb"] = evaluation._finite(evaluation.fitb_with(questions, lambda rows: score_outfits(model, outfit_features, rows)))
        pair_version_id = ctx.run.steps.get("train_siamese", {}).get("model_version_id")
        if pair_version_id:
            # The pair model that never saw the test slice (the served one may be refit on it).
            pair_version = ModelVersion.objects.get(pk=pair_version_id)
            holdout = pair_version.config.get("holdout_artifact") or {"path": pair_version.artifact_path}
            pair_model, _ = load_model(kind="siamese", relative_path=holdout["path"])
            pair_vocab = pair_version.config.get("side_attributes") or []
            # Usually the vocabulary this step learned too: the codes above then serve as they are.
            side_attributes = side if pair_vocab == side_vocab else _side_attribute_codes(data, vocabulary=pair_vocab)[0]
            metrics["fitb_pair_model"] = evaluation._finite(
                evaluation.fitb_with(
                    questions, lambda rows: _mean_pair_score(pair_model, data.features, rows, data.categories, side_attributes)
                )
            )
        active = selectors.active_version(ModelVersion.Kind.OUTFIT)
        if active is not None and active.artifact_path:
            from curation.training.serving import OutfitScorer, active_embeddings

            try:
                scorer = OutfitScorer(active, active_embeddings(), pair_mean=False)
                metrics["active_fitb"] = evaluation._finite(
                    evaluation.fitb_with(questions, lambda rows: np.nan_to_num(scorer.score([[int(data.product_ids[i]) for i in r] for r in rows]), nan=-1.0))
                )
            except Exception:
                logger.exception("cannot load the active outfit version %s for comparison", active.pk)
    history_rows = [{"epoch": h["epoch"], "loss": round(float(h["loss"]), 5)} for h in history]
    metrics["side_attributes"] = [name for name, _ in side_vocab]
    metrics["looks_scored_by"] = _looks_scored_by(metrics)
    _finish_version(version, model=model, data_summary={"outfits": len(outfits), "train_outfits": len(fit)}, metrics=metrics,
                    history=history_rows, extra_config={"side_attributes": side_vocab, "looks_scored_by": metrics["looks_scored_by"]})
    ctx.detail(model_version_id=version.pk, **{k: v for k, v in metrics.items() if k in ("fitb", "fitb_pair_model")})


def _looks_scored_by(metrics: dict) -> str:
    """Who scores whole looks while this version serves: the outfit scorer, or the mean of the
    active pair model over the look's pairs when that answered more held-out questions right. On
    some catalogs the set model learns nothing its training loss shows (it stays at ln 2) while
    the pair model does; model selection on the held-out slice, not a fixed choice, decides."""
    own, pairs = metrics.get("fitb"), metrics.get("fitb_pair_model")
    return "pair_model" if own is not None and pairs is not None and pairs > own else "outfit_model"


def _mean_pair_score(pair_model, features: np.ndarray, outfits: list[list[int]], categories: np.ndarray,
                     attributes: np.ndarray | None = None) -> np.ndarray:
    """An outfit's score by the pair model: the mean over its last item paired with the others."""
    from ml.siamese import score_pairs

    a, b, owner = [], [], []
    for n, rows in enumerate(outfits):
        for g in rows[:-1]:
            a.append(g)
            b.append(rows[-1])
            owner.append(n)
    scores = score_pairs(pair_model, features[a], features[b], categories[a], categories[b], _rows_of(attributes, a), _rows_of(attributes, b))
    sums = np.bincount(owner, weights=scores, minlength=len(outfits))
    counts = np.maximum(np.bincount(owner, minlength=len(outfits)), 1)
    return sums / counts


# Which metric decides "not worse", and the active version's figure on the same held-out slice.
_DECIDING_METRIC = {
    ModelVersion.Kind.CATEGORY: ("oof_accuracy", None),
    ModelVersion.Kind.SIAMESE: ("pair_auc_same_pairs", "active_pair_auc"),
    ModelVersion.Kind.OUTFIT: ("fitb", "active_fitb"),
}


def _decide(version: ModelVersion, *, forced: bool) -> tuple[bool, str]:
    active = selectors.active_version(version.kind)
    if forced:
        return True, "activated: forced by an admin"
    if active is None:
        return True, "activated: no active version yet"
    metric, active_metric = _DECIDING_METRIC[version.kind]
    new_value = version.metrics.get(metric)
    old_value = version.metrics.get(active_metric) if active_metric else active.metrics.get(metric)
    if new_value is None or old_value is None:
        return True, f"activated: no held-out {metric} to compare with v{active.pk}"
    if new_value + settings.TRAIN_NOT_WORSE_TOLERANCE >= old_value:
        return True, f"activated: {metric} {new_value:.4f} vs v{active.pk} {old_value:.4f}"
    return False, f"kept v{active.pk}: {metric} {new_value:.4f} is worse than its {old_value:.4f}"


def _step_activate(ctx: StepContext) -> None:
    run = ctx.run
    emb = _run_embedding_set(run)
    versions = list(ModelVersion.objects.filter(run=run, status=ModelVersion.Status.READY).order_by("id"))
    decisions = {}
    with transaction.atomic():
        accepted = []
        for version in versions:
            ok, why = _decide(version, forced=run.forced)
            decisions[version.kind] = why
            version.metrics = {**version.metrics, "decision": why}
            version.save(update_fields=["metrics"])
            if ok:
                accepted.append(version)
        active_set = EmbeddingSet.objects.filter(is_active=True).first()
        # The new set holds the newest catalog; it replaces a set of the same feature space at
        # once, and one of another space only together with models trained on it.
        if active_set is None or active_set.backbone == emb.backbone or accepted:
            embedding_set_activate(embedding_set=emb)
        from curation.training.services.registry import model_version_make_active

        for version in accepted:
            model_version_make_active(version=version, switch_embeddings=False)
    ctx.detail(decisions=decisions, activated=[v.pk for v in accepted], done=1, total=1)


def _step_refresh(ctx: StepContext) -> None:
    from curation.pairs.services import candidates_refresh

    from curation.training import serving

    serving.reset()  # this process scores candidates with what was just activated
    created = candidates_refresh()
    ctx.detail(candidates=created, done=1, total=1)


_STEP_FUNCS = {
    "embed": _step_embed,
    "train_category": _step_train_category,
    "train_siamese": _step_train_siamese,
    "train_outfit": _step_train_outfit,
    "activate": _step_activate,
    "refresh": _step_refresh,
}


def pipeline_step_run(*, run_id: int, step: str, on_progress: OnProgress | None = None) -> bool:
    """Run one step of a run (idempotent: a finished step is skipped). Returns False when the run
    is no longer in flight (its remaining tasks do nothing)."""
    if step not in _STEP_FUNCS:
        raise ValueError(f"unknown step {step!r}; steps are {', '.join(STEP_NAMES)}")
    try:
        with _step(run_id, step, on_progress) as ctx:
            if ctx is not None:
                _STEP_FUNCS[step](ctx)
    except RunNotInFlight as exc:
        logger.warning("run %s step %s not run: %s", run_id, step, exc)
        return False
    if step == STEP_NAMES[-1]:
        _finish_run(run_id)
    return True


def _finish_run(run_id: int) -> None:
    PipelineRun.objects.filter(pk=run_id, status=PipelineRun.Status.RUNNING).update(
        status=PipelineRun.Status.SUCCEEDED, lock=None, finished_at=timezone.now(), current_step="", heartbeat_at=timezone.now()
    )


def pipeline_run_execute(*, run_id: int, on_progress: OnProgress | None = None) -> PipelineRun:
    """Every step in this process (``retrain --sync``, tests). Raises when a step fails."""
    for step in STEP_NAMES:
        if not pipeline_step_run(run_id=run_id, step=step, on_progress=on_progress):
            break
    return PipelineRun.objects.get(pk=run_id)
