"""Category model: dense layers on backbone features predict the category and attributes.

Fast path: train on cached features (``train_category_model``). Out-of-fold predictions
(``out_of_fold_predictions``) give every product a calibrated probability from models that never
saw it, so that a product's own wrong label cannot vouch for itself: these drive catalog-error
flags. Optional layer4 fine-tuning (``finetune_layer4``) trains the last ResNet block plus a head on
cached layer3 activations and returns new backbone weights: the "new embeddings".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.config import resolve_device

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CATEGORY = "__category__"


@dataclass
class CategoryConfig:
    hidden: int = 1024  # 0: a linear (multinomial logistic) model
    dropout: float = 0.3
    input_dropout: float = 0.1
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    label_smoothing: float = 0.05
    attribute_weight: float = 0.5  # loss weight of each attribute head relative to the category head
    min_steps: int = 300  # small data sets get more epochs, so that tiny catalogs still converge
    folds: int = 5
    calibrate: bool = True
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


class CategoryModel(nn.Module):
    """Standardise -> [Linear -> ReLU -> Dropout] -> one head per target; temperature per head."""

    def __init__(self, in_dim: int, n_classes: int, attributes: dict[str, int] | None = None, cfg: CategoryConfig | None = None):
        super().__init__()
        cfg = cfg or CategoryConfig()
        self.cfg = cfg
        self.in_dim, self.n_classes = int(in_dim), int(n_classes)
        self.attribute_sizes = {str(k): int(v) for k, v in (attributes or {}).items()}
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        width = cfg.hidden or in_dim
        if cfg.hidden:
            self.trunk = nn.Sequential(nn.Dropout(cfg.input_dropout), nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout))
        else:
            self.trunk = nn.Dropout(cfg.input_dropout)
        self.head = nn.Linear(width, n_classes)
        self.attribute_heads = nn.ModuleDict({k: nn.Linear(width, v) for k, v in self.attribute_sizes.items()})
        self.register_buffer("temperatures", torch.ones(1 + len(self.attribute_sizes)))

    def config_dict(self) -> dict:
        return {"in_dim": self.in_dim, "n_classes": self.n_classes, "attributes": self.attribute_sizes, "cfg": self.cfg.to_dict()}

    @classmethod
    def from_state(cls, state: dict, config: dict) -> CategoryModel:
        model = cls(config["in_dim"], config["n_classes"], config.get("attributes") or {}, CategoryConfig(**config["cfg"]))
        model.load_state_dict(state)
        return model.eval()

    def _head_index(self, name: str) -> int:
        if name == CATEGORY:
            return 0
        if name not in self.attribute_sizes:
            raise KeyError(f"no attribute head {name!r}; this model has {sorted(self.attribute_sizes)}")
        return 1 + list(self.attribute_sizes).index(name)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.trunk((x - self.mean) / self.std)
        return self.head(h), {k: head(h) for k, head in self.attribute_heads.items()}

    @torch.no_grad()
    def logits(self, features: np.ndarray, name: str = CATEGORY, batch_size: int = 4096) -> np.ndarray:
        self.eval()
        dev = self.mean.device
        out = []
        for start in range(0, len(features), batch_size):
            x = torch.as_tensor(np.asarray(features[start : start + batch_size], dtype=np.float32), device=dev)
            cat, attrs = self(x)
            out.append((cat if name == CATEGORY else attrs[name]).float().cpu().numpy())
        width = self.n_classes if name == CATEGORY else self.attribute_sizes[name]
        return np.concatenate(out) if out else np.empty((0, width), np.float32)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(features) / float(self.temperatures[0]))

    def predict_attribute_proba(self, name: str, features: np.ndarray) -> np.ndarray:
        t = float(self.temperatures[self._head_index(name)])
        return _softmax(self.logits(features, name) / t)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of held-out logits (rows with label -1 ignored)."""
    labels = np.asarray(labels)
    keep = labels >= 0
    if keep.sum() < 2:
        return 1.0
    z, y = torch.as_tensor(logits[keep], dtype=torch.float64), torch.as_tensor(labels[keep], dtype=torch.long)

    def nll(t: float) -> float:
        return float(F.cross_entropy(z / t, y))

    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 61))
    best = min(grid, key=nll)
    # Refine around the best grid point (golden-section on log t).
    lo, hi = math.log(best) - 0.12, math.log(best) + 0.12
    for _ in range(30):
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        if nll(math.exp(a)) < nll(math.exp(b)):
            hi = b
        else:
            lo = a
    return float(math.exp((lo + hi) / 2))


def fit_pool_weights(scores: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Weights w of a log-linear pool softmax(sum_k w_k * scores_k) of several models' held-out
    scores (logits or log-probabilities, each (N, C)), minimising the negative log-likelihood of
    ``labels`` (rows with label -1 ignored): a stacked blend that is calibrated by construction (a
    model that adds nothing gets a weight near 0; two that agree share their weight instead of
    doubling their confidence). Equal weights summing to 1 when there are fewer than 2 labelled rows."""
    labels = np.asarray(labels)
    keep = labels >= 0
    k = len(scores)
    if k == 0:
        raise ValueError("no scores to pool")
    if keep.sum() < 2:
        return np.full(k, 1.0 / k)
    z = torch.stack([torch.as_tensor(np.asarray(s)[keep], dtype=torch.float64) for s in scores])
    y = torch.as_tensor(labels[keep], dtype=torch.long)
    w = torch.full((k,), 1.0 / k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(torch.einsum("k,knc->nc", w, z), y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().copy()


def _check_inputs(features, labels, n_classes, sample_weight, attributes):
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {features.shape}")
    if len(labels) != len(features):
        raise ValueError(f"labels has {len(labels)} rows, features has {len(features)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= n_classes))[0])
        raise ValueError(f"label {labels[bad]} at row {bad} is outside 0..{n_classes - 1}")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
        if sample_weight.shape != labels.shape:
            raise ValueError(f"sample_weight has shape {sample_weight.shape}, expected {labels.shape}")
    attrs = {}
    for name, (values, size) in (attributes or {}).items():
        values = np.asarray(values, dtype=np.int64)
        if len(values) != len(labels):
            raise ValueError(f"attribute {name!r} has {len(values)} rows, features has {len(labels)}")
        if len(values) and (values.max() >= size or values.min() < -1):
            bad = int(np.flatnonzero((values >= size) | (values < -1))[0])
            raise ValueError(f"attribute {name!r} value {values[bad]} at row {bad} is outside -1..{size - 1}")
        attrs[str(name)] = (values, int(size))
    return features, labels, sample_weight, attrs


def _train_category_model_unseeded(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    sample_weight: np.ndarray | None = None,
    attributes: dict[str, tuple[np.ndarray, int]] | None = None,
    cfg: CategoryConfig | None = None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
) -> CategoryModel:
    """Train on cached features. ``attributes``: name -> (labels with -1 for unknown, n_classes).

    ``calibration`` = (features, labels) of held-out rows fits the category temperature; without it
    the temperature stays 1 (out_of_fold_predictions calibrates on held-out folds itself).
    """
    cfg = cfg or CategoryConfig()
    features, labels, sample_weight, attrs = _check_inputs(features, labels, n_classes, sample_weight, attributes)
    device = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CategoryModel(features.shape[1], n_classes, {k: v[1] for k, v in attrs.items()}, cfg)
    x = torch.from_numpy(features)
    model.mean.copy_(x.mean(0))
    model.std.copy_(_robust_std(x))
    model.to(device)
    y = torch.from_numpy(labels)
    w = torch.from_numpy(sample_weight) if sample_weight is not None else torch.ones(len(y))
    attr_y = {k: torch.from_numpy(v[0]) for k, v in attrs.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / per_epoch))
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            xb, yb, wb = x[idx].to(device), y[idx].to(device), w[idx].to(device)
            logits, attr_logits = model(xb)
            loss = (F.cross_entropy(logits, yb, reduction="none", label_smoothing=cfg.label_smoothing) * wb).sum() / wb.sum().clamp_min(1e-8)
            for name, ay in attr_y.items():
                ayb = ay[idx].to(device)
                known = ayb >= 0
                if known.any():
                    per = F.cross_entropy(attr_logits[name][known], ayb[known], reduction="none", label_smoothing=cfg.label_smoothing)
                    loss = loss + cfg.attribute_weight * (per * wb[known]).sum() / wb[known].sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    if calibration is not None and cfg.calibrate:
        cal_x, cal_y = calibration
        model.temperatures[0] = fit_temperature(model.logits(cal_x), np.asarray(cal_y))
    return model.cpu()


def category_path_scores(proba_by_level: Sequence[np.ndarray], given_by_level: Sequence[np.ndarray]) -> dict:
    """How much a model believes each product's given category path; low = a likely catalog error.

    ``proba_by_level``: (N, C_level) probabilities per level, finest first (articleType, then its
    parents); ``given_by_level``: (N,) given class per level. Returns ``levels`` (p(given) per
    level, finest first), ``geomean`` (their geometric mean: the path as a whole, since a wrong
    label usually breaks a parent level too) and ``ratio`` (geometric mean of p(given) / p(top
    class) per level: how far the given path is from what the model would have said).
    """
    if len(proba_by_level) != len(given_by_level) or not proba_by_level:
        raise ValueError("one given-label array per probability level, at least one level")
    levels, ratios = [], []
    for proba, given in zip(proba_by_level, given_by_level):
        proba, given = np.asarray(proba, dtype=np.float64), np.asarray(given, dtype=np.int64)
        if len(proba) != len(given):
            raise ValueError(f"{len(proba)} probability rows for {len(given)} given labels")
        p_given = np.clip(proba[np.arange(len(given)), given], 1e-12, 1.0)
        levels.append(p_given)
        ratios.append(p_given / np.clip(proba.max(1), 1e-12, None))
    geomean = lambda parts: np.exp(np.mean(np.log(np.stack(parts)), axis=0))  # noqa: E731
    return {"levels": levels, "geomean": geomean(levels), "ratio": geomean(ratios)}


def make_folds(labels: np.ndarray, n_folds: int, *, groups: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Fold number per row: stratified by label; rows of one group always share a fold."""
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    if n_folds < 2:
        raise ValueError("out-of-fold predictions need at least 2 folds")
    if groups is None:
        groups = np.arange(n)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} rows, labels has {n}")
    uniq, inverse = np.unique(groups, return_inverse=True)
    if len(uniq) < n_folds:
        raise ValueError(f"{len(uniq)} groups cannot be split into {n_folds} folds")
    # A group's stratum is the label of its first row; deal groups of each stratum round-robin.
    first_row = np.zeros(len(uniq), dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(n)[::-1]
    strata = labels[first_row]
    group_fold = np.empty(len(uniq), dtype=np.int64)
    offset = 0
    for s in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == s))
        group_fold[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    return group_fold[inverse]


def out_of_fold_predictions(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    groups: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    attributes: dict[str, tuple[np.ndarray, int]] | None = None,
    cfg: CategoryConfig | None = None,
    progress: Progress | None = None,
    folds: np.ndarray | None = None,
) -> dict:
    """{"proba": (N,C), "attributes": {name: (N,c)}, "folds": (N,)}.

    Row r's probabilities come from a model trained without r's fold, and the temperature applied
    to fold f is fitted on the held-out logits of the other folds only, so no number in row r was
    fitted on r's label. ``folds`` (fold number per row) overrides the stratified split.
    """
    cfg = cfg or CategoryConfig()
    features, labels, sample_weight, attrs = _check_inputs(features, labels, n_classes, sample_weight, attributes)
    if folds is None:
        folds = make_folds(labels, cfg.folds, groups=groups, seed=cfg.seed)
    else:
        folds = np.asarray(folds, dtype=np.int64)
        if folds.shape != labels.shape or folds.min() < 0 or len(np.unique(folds)) != cfg.folds:
            raise ValueError(f"folds must give each of the {len(labels)} rows a fold number 0..{cfg.folds - 1}, all used")
    n = len(labels)
    logits = np.zeros((n, n_classes), np.float32)
    attr_logits = {k: np.zeros((n, size), np.float32) for k, (_, size) in attrs.items()}
    if progress:
        progress(0, cfg.folds)
    for f in range(cfg.folds):
        held = folds == f
        train = ~held
        model = train_category_model(
            features[train],
            labels[train],
            n_classes,
            sample_weight=None if sample_weight is None else sample_weight[train],
            attributes={k: (v[train], size) for k, (v, size) in attrs.items()},
            cfg=cfg,
        )
        logits[held] = model.logits(features[held])
        for k in attrs:
            attr_logits[k][held] = model.logits(features[held], k)
        if progress:
            progress(f + 1, cfg.folds)
    proba = np.zeros_like(logits)
    attr_proba = {k: np.zeros_like(v) for k, v in attr_logits.items()}
    for f in range(cfg.folds):
        held = folds == f
        if cfg.calibrate:
            t = fit_temperature(logits[~held], labels[~held])
        else:
            t = 1.0
        proba[held] = _softmax(logits[held] / t)
        for k, (values, _) in attrs.items():
            ta = fit_temperature(attr_logits[k][~held], values[~held]) if cfg.calibrate else 1.0
            attr_proba[k][held] = _softmax(attr_logits[k][held] / ta)
    return {"proba": proba, "attributes": attr_proba, "folds": folds}


def out_of_fold_proba(features, labels, n_classes, *, groups=None, sample_weight=None, cfg=None, progress=None) -> np.ndarray:
    return out_of_fold_predictions(features, labels, n_classes, groups=groups, sample_weight=sample_weight, cfg=cfg, progress=progress)["proba"]


def out_of_fold_attribute_proba(features, attribute_labels, n_classes, *, groups=None, sample_weight=None, cfg=None, progress=None) -> np.ndarray:
    """Out-of-fold probabilities of one attribute (rows with label -1 are predicted, never trained on)."""
    attribute_labels = np.asarray(attribute_labels, dtype=np.int64)
    known = attribute_labels >= 0
    features = np.asarray(features, dtype=np.float32)
    out = np.zeros((len(features), n_classes), np.float32)
    if known.sum() < (cfg or CategoryConfig()).folds:
        out[:] = 1.0 / n_classes
        return out
    res = out_of_fold_predictions(
        features[known], attribute_labels[known], n_classes, groups=None if groups is None else np.asarray(groups)[known],
        sample_weight=None if sample_weight is None else np.asarray(sample_weight)[known], cfg=cfg, progress=progress,
    )
    out[known] = res["proba"]
    if (~known).any():
        full = train_category_model(features[known], attribute_labels[known], n_classes, cfg=cfg)
        out[~known] = full.predict_proba(features[~known])
    return out


def _robust_std(x: torch.Tensor) -> torch.Tensor:
    """Per-feature std for standardising, with near-constant features left unscaled.

    Random-init ResNet features have dimensions that are almost always zero; dividing a held-out
    row's small value there by a near-zero std throws it thousands of deviations out, and the
    calibrated probabilities collapse to uniform.
    """
    if len(x) < 2:
        return torch.ones(x.shape[1])
    std = x.std(0)
    floor = max(float(std.median()) * 1e-2, 1e-6)
    return torch.where(std < floor, torch.ones_like(std), std)


def train_category_model(*args, **kwargs):
    """Seeded wrapper of _train_category_model_unseeded: dropout masks and initialisation come from cfg.seed, and
    the caller's global torch RNG state is left untouched (repeatable runs)."""
    cfg = kwargs.get("cfg")
    seed = getattr(cfg, "seed", 0) if cfg is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train_category_model_unseeded(*args, **kwargs)


train_category_model.__doc__ = (_train_category_model_unseeded.__doc__ or "") + "\n\n(Runs seeded by cfg.seed; the global torch RNG state is restored afterwards.)"
