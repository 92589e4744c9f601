"""ml/ configurations built from Django settings, and ml/ objects cached per process.

This module and the rest of curation/training/ are the only Django code that imports ml/.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from ml.backbone import Embedder
from ml.config import BackboneConfig

_embedders: dict[tuple, Embedder] = {}
_embedders_lock = threading.Lock()


def backbone_config() -> BackboneConfig:
    """The backbone the settings ask for (ML_BACKBONE, ML_WEIGHTS, ML_IMAGE_SIZE, ...)."""
    return BackboneConfig(
        name=settings.ML_BACKBONE,
        weights=settings.ML_WEIGHTS,
        image_size=settings.ML_IMAGE_SIZE,
        device=settings.ML_DEVICE,
        batch_size=settings.ML_BATCH_SIZE,
        num_workers=settings.ML_LOADER_WORKERS,
        bf16=settings.ML_BF16,
    )


def embedder_for(cfg: BackboneConfig | None = None) -> Embedder:
    """One Embedder per feature space and process: building ResNet-50 costs about a second."""
    cfg = cfg or backbone_config()
    # The feature space and how it is computed: two settings that differ only in ML_BF16 or
    # ML_DEVICE share a key but must not share an embedder (bf16 features round differently).
    key = (cfg.key(), cfg.device, cfg.bf16, cfg.batch_size, cfg.num_workers)
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = Embedder(cfg)
            _embedders[key] = embedder
        return embedder


def artifacts_root() -> Path:
    root = Path(settings.ARTIFACTS_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_abspath(relative: str) -> Path:
    return artifacts_root() / relative


def _model_class(kind: str):
    from ml.category import CategoryModel
    from ml.outfit import OutfitScorer
    from ml.siamese import SiameseNet

    classes = {"category": CategoryModel, "siamese": SiameseNet, "outfit": OutfitScorer}
    if kind not in classes:
        raise ValueError(f"no model class for kind {kind!r}")
    return classes[kind]


def save_model(*, kind: str, model, config: dict, data_summary: dict, metrics: dict, extra: dict | None = None) -> tuple[str, str]:
    """Write a new immutable artifact folder; returns (path relative to ARTIFACTS_ROOT, sha256)."""
    import uuid

    from ml.artifacts import save_artifact

    relative = f"models/{kind}/{uuid.uuid4().hex}"
    sha = save_artifact(
        artifact_abspath(relative),
        state=model.state_dict(),
        config={"model": model.config_dict(), **config},
        data_summary=data_summary,
        metrics=metrics,
        extra=extra,
    )
    return relative, sha


def load_model(*, kind: str, relative_path: str, expected_sha256: str = ""):
    """(model in eval mode, meta) from an artifact, refusing one whose checksum disagrees."""
    from ml.artifacts import ArtifactError, load_artifact

    state, meta = load_artifact(artifact_abspath(relative_path))
    if expected_sha256 and meta.get("sha256") != expected_sha256:
        raise ArtifactError(f"{relative_path}: sha256 {meta.get('sha256')} is not the registered {expected_sha256}")
    model = _model_class(kind).from_state(state, meta["config"]["model"])
    return model, meta
