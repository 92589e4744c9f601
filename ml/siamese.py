"""Siamese pair model: f(i, j) = probability that items i and j are complementary.

Two legs with shared weights map item features to an embedding; a fusion combines the two
embeddings (concat, max, min, sum or avg, optionally plus |a-b| and a*b) and a head outputs a logit.
Exact symmetry f(i,j) == f(j,i): max/min/sum/avg/|a-b|/a*b are symmetric element-wise; for concat
the logit is the mean of head([a,b]) and head([b,a]), each computed by its own forward call, so
swapping the inputs swaps two identical computations and the sum is bit-for-bit the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.config import resolve_device
from ml.metrics import roc_auc

FUSIONS = ("concat", "max", "min", "sum", "avg")
EXTRAS = ("absdiff", "prod")


@dataclass
class SiameseConfig:
    fusion: str = "concat"
    extras: tuple[str, ...] = ("absdiff", "prod")
    hidden: int = 512
    embed_dim: int = 256
    dropout: float = 0.1
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    random_negatives: int = 1  # per positive, per epoch: (i, random item)
    category_negatives: int = 1  # per positive, per epoch: (i, another item of j's category)
    # Type-aware legs: each item's category as a learned embedding beside its features, so the head
    # can learn what makes a good pair for each pair of categories (shoes with trousers differ from
    # bags with dresses). 0 = features only. A category unseen in training maps to "unknown",
    # which training also shows (``category_dropout`` of the items) so it is never out of range.
    category_dim: int = 0
    category_dropout: float = 0.1
    # Side attributes from the catalog (gender, usage, season, colour...): one learned vector of this
    # size per attribute in each leg, because real outfits rarely mix genders, occasions or seasons
    # and two items of one fine category differ most in exactly these. 0 = none. Codes are per
    # attribute, -1 = unknown; ``attribute_dropout`` of the cells are shown as unknown in training,
    # so a product whose attribute is missing or new still gets a sensible score.
    attribute_dim: int = 0
    attribute_dropout: float = 0.15
    patience: int = 0  # with validation pairs: stop after this many epochs without a better AUC (0 = run every epoch)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r}; choose one of {FUSIONS}")
        self.extras = tuple(self.extras or ())
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise ValueError(f"unknown extras {unknown}; choose among {EXTRAS}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["extras"] = list(self.extras)
        return d


class SiameseNet(nn.Module):
    def __init__(self, in_dim: int, cfg: SiameseConfig | None = None, n_categories: int = 0, attribute_sizes=()):
        super().__init__()
        self.cfg = cfg = cfg or SiameseConfig()
        self.in_dim = int(in_dim)
        self.n_categories = int(n_categories) if cfg.category_dim > 0 else 0
        # Known values per side attribute; each table has one more row, for "unknown".
        self.attribute_sizes = tuple(int(s) for s in attribute_sizes) if cfg.attribute_dim > 0 else ()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        leg_in = in_dim
        if self.n_categories:
            self.category_embedding = nn.Embedding(self.n_categories + 1, cfg.category_dim)  # last row: unknown
            leg_in += cfg.category_dim
        self.attribute_embeddings = nn.ModuleList(nn.Embedding(size + 1, cfg.attribute_dim) for size in self.attribute_sizes)
        leg_in += cfg.attribute_dim * len(self.attribute_sizes)
        self.leg = nn.Sequential(
            nn.Linear(leg_in, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.embed_dim)
        )
        fused = cfg.embed_dim * (2 if cfg.fusion == "concat" else 1) + cfg.embed_dim * len(cfg.extras)
        self.head = nn.Sequential(nn.Linear(fused, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))

    def config_dict(self) -> dict:
        return {"in_dim": self.in_dim, "cfg": self.cfg.to_dict(), "n_categories": self.n_categories,
                "attribute_sizes": list(self.attribute_sizes)}

    @classmethod
    def from_state(cls, state: dict, config: dict) -> SiameseNet:
        model = cls(config["in_dim"], SiameseConfig(**config["cfg"]), n_categories=config.get("n_categories", 0),
                    attribute_sizes=config.get("attribute_sizes", ()))
        model.load_state_dict(state)
        return model.eval()

    @property
    def uses_categories(self) -> bool:
        return self.n_categories > 0

    def category_index(self, categories) -> torch.Tensor:
        """Category codes as embedding rows: negative or out-of-range codes are "unknown"."""
        unknown = self.n_categories
        if categories is None:
            raise ValueError("this pair model reads item categories: pass them (-1 = unknown)")
        c = torch.as_tensor(np.ascontiguousarray(categories, dtype=np.int64), device=self.mean.device)
        return torch.where((c >= 0) & (c < unknown), c, torch.full_like(c, unknown))

    @property
    def uses_attributes(self) -> bool:
        return bool(self.attribute_sizes)

    def attribute_index(self, attributes, n: int) -> torch.Tensor:
        """Side-attribute codes (n, K) as embedding rows: negative or out-of-range codes, and a
        missing array (None), are "unknown"."""
        sizes = torch.tensor(self.attribute_sizes, dtype=torch.long, device=self.mean.device)
        if attributes is None:
            return sizes.expand(n, -1).clone()
        a = torch.as_tensor(np.ascontiguousarray(attributes, dtype=np.int64), device=self.mean.device)
        if a.ndim != 2 or a.shape != (n, len(self.attribute_sizes)):
            raise ValueError(f"attributes must have shape ({n}, {len(self.attribute_sizes)}), got {tuple(a.shape)}")
        return torch.where((a >= 0) & (a < sizes), a, sizes.expand_as(a))

    def embed(self, x: torch.Tensor, categories: torch.Tensor | None = None, attributes: torch.Tensor | None = None) -> torch.Tensor:
        h = (x - self.mean) / self.std
        parts = [h]
        if self.n_categories:
            if categories is None:
                categories = torch.full((len(x),), self.n_categories, dtype=torch.long, device=x.device)
            parts.append(self.category_embedding(categories))
        if self.attribute_sizes:
            if attributes is None:
                attributes = self.attribute_index(None, len(x))
            parts += [table(attributes[:, k]) for k, table in enumerate(self.attribute_embeddings)]
        return self.leg(torch.cat(parts, dim=1) if len(parts) > 1 else h)

    def _extras(self, ea: torch.Tensor, eb: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for name in self.cfg.extras:
            out.append((ea - eb).abs() if name == "absdiff" else ea * eb)
        return out

    def _fused_logit(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        fusion = self.cfg.fusion
        if fusion == "max":
            parts = [torch.maximum(ea, eb)]
        elif fusion == "min":
            parts = [torch.minimum(ea, eb)]
        elif fusion == "sum":
            parts = [ea + eb]
        elif fusion == "avg":
            parts = [(ea + eb) * 0.5]
        else:
            parts = [ea, eb]
        return self.head(torch.cat(parts + self._extras(ea, eb), dim=1)).squeeze(1)

    def forward(self, fa: torch.Tensor, fb: torch.Tensor, ca: torch.Tensor | None = None, cb: torch.Tensor | None = None,
                aa: torch.Tensor | None = None, ab: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric logits (B,); ``ca``/``cb`` are category rows (see category_index) for type-aware
        models, ``aa``/``ab`` side-attribute rows (see attribute_index) for attribute-aware ones."""
        ea, eb = self.embed(fa, ca, aa), self.embed(fb, cb, ab)
        if self.cfg.fusion == "concat":
            return (self._fused_logit(ea, eb) + self._fused_logit(eb, ea)) * 0.5
        return self._fused_logit(ea, eb)


@torch.no_grad()
def score_pairs(model: SiameseNet, fa: np.ndarray, fb: np.ndarray, ca=None, cb=None, aa=None, ab=None,
                batch_size: int = 8192) -> np.ndarray:
    """Complementarity probabilities (M,) of row-aligned feature arrays; score(a,b) == score(b,a) exactly.

    ``ca``/``cb``: the items' category codes (as the model was trained with; -1 = unknown), required
    by a type-aware model and ignored by one that is not. ``aa``/``ab``: the items' side-attribute
    codes (M, K) for an attribute-aware model (-1 or None = unknown), ignored by one that is not."""
    model.eval()
    fa, fb = np.ascontiguousarray(fa, dtype=np.float32), np.ascontiguousarray(fb, dtype=np.float32)
    if fa.shape != fb.shape:
        raise ValueError(f"fa has shape {fa.shape}, fb has shape {fb.shape}")
    dev = model.mean.device
    cat_a = cat_b = None
    if model.uses_categories:
        cat_a, cat_b = model.category_index(ca), model.category_index(cb)
        if len(cat_a) != len(fa) or len(cat_b) != len(fb):
            raise ValueError(f"{len(fa)} pairs but {len(cat_a)} and {len(cat_b)} categories")
    att_a = att_b = None
    if model.uses_attributes:
        att_a, att_b = model.attribute_index(aa, len(fa)), model.attribute_index(ab, len(fb))
    out = np.empty(len(fa), dtype=np.float32)
    for start in range(0, len(fa), batch_size):
        a = torch.as_tensor(fa[start : start + batch_size], device=dev)
        b = torch.as_tensor(fb[start : start + batch_size], device=dev)
        cats = (cat_a[start : start + batch_size], cat_b[start : start + batch_size]) if cat_a is not None else (None, None)
        atts = (att_a[start : start + batch_size], att_b[start : start + batch_size]) if att_a is not None else (None, None)
        out[start : start + len(a)] = torch.sigmoid(model(a, b, *cats, *atts)).float().cpu().numpy()
    return out


def _sample_negatives(rng, pairs_pos, n_items, categories, by_category, cfg, positive_keys):
    """Random negatives (i, random) and category-matched negatives (i, same category as j)."""
    negs = []
    if len(pairs_pos) == 0:
        return np.empty((0, 2), np.int64)
    for _ in range(cfg.random_negatives):
        anchors = pairs_pos[np.arange(len(pairs_pos)), rng.integers(0, 2, len(pairs_pos))]
        negs.append(np.stack([anchors, rng.integers(0, n_items, len(anchors))], axis=1))
    if categories is not None:
        for _ in range(cfg.category_negatives):
            side = rng.integers(0, 2, len(pairs_pos))
            keep = pairs_pos[np.arange(len(pairs_pos)), side]
            swap = pairs_pos[np.arange(len(pairs_pos)), 1 - side]
            repl = np.empty_like(swap)
            for n, item in enumerate(swap.tolist()):
                pool = by_category[categories[item]]
                repl[n] = pool[rng.integers(0, len(pool))]
            negs.append(np.stack([keep, repl], axis=1))
    negs = np.concatenate(negs)
    ok = negs[:, 0] != negs[:, 1]
    lo, hi = np.minimum(negs[:, 0], negs[:, 1]), np.maximum(negs[:, 0], negs[:, 1])
    if positive_keys is not None and len(positive_keys):
        ok &= ~np.isin(lo * n_items + hi, positive_keys)
    return negs[ok]


def _train_siamese_unseeded(
    features: np.ndarray,
    pairs: np.ndarray,
    labels: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    categories: np.ndarray | None = None,
    attributes: np.ndarray | None = None,
    cfg: SiameseConfig | None = None,
    val_pairs: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    progress: Callable[[dict], None] | None = None,
) -> tuple[SiameseNet, list[dict]]:
    """Train on labeled pairs plus fresh random and category-matched negatives each epoch.

    ``features``: (N, D), or a bank (N, V, D) of augmented views from which each epoch draws one
    view per item occurrence. ``pairs`` (M, 2) are row indices, ``labels`` 0/1, ``weights`` per pair.
    ``attributes``: (N, K) side-attribute codes per item (-1 = unknown), read when
    ``cfg.attribute_dim`` > 0; each attribute's number of values is its largest code + 1.
    With validation pairs, the epoch with the best validation AUC is kept (``best_epoch``); with
    ``cfg.patience``, training stops that many epochs after it.
    """
    cfg = cfg or SiameseConfig()
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim not in (2, 3):
        raise ValueError(f"features must be (N, D) or (N, V, D), got shape {feats.shape}")
    n_items = feats.shape[0]
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.float32).reshape(-1)
    if len(labels) != len(pairs):
        raise ValueError(f"labels has {len(labels)} rows, pairs has {len(pairs)}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n_items):
        bad = int(np.flatnonzero((pairs < 0).any(1) | (pairs >= n_items).any(1))[0])
        raise ValueError(f"pair {pairs[bad].tolist()} at row {bad} refers to an item outside 0..{n_items - 1}")
    weights = np.ones(len(pairs), np.float32) if weights is None else np.asarray(weights, dtype=np.float32).reshape(-1)
    if len(weights) != len(pairs):
        raise ValueError(f"weights has {len(weights)} rows, pairs has {len(pairs)}")
    by_category = None
    if categories is not None:
        categories = np.asarray(categories)
        if len(categories) != n_items:
            raise ValueError(f"categories has {len(categories)} rows, features has {n_items}")
        by_category = {c: np.flatnonzero(categories == c) for c in np.unique(categories)}
    device = resolve_device(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    n_categories = int(categories.max()) + 1 if categories is not None and len(categories) and cfg.category_dim > 0 else 0
    if cfg.category_dim > 0 and categories is None:
        raise ValueError("category_dim > 0 needs the items' categories")
    attribute_sizes: tuple[int, ...] = ()
    if attributes is not None and cfg.attribute_dim > 0:
        attributes = np.asarray(attributes, dtype=np.int64)
        if attributes.ndim != 2 or len(attributes) != n_items:
            raise ValueError(f"attributes must have shape ({n_items}, K), got {attributes.shape}")
        attribute_sizes = tuple(int(max(col.max(initial=-1) + 1, 1)) for col in attributes.T)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = SiameseNet(feats.shape[-1], cfg, n_categories=n_categories, attribute_sizes=attribute_sizes)
    flat = feats.reshape(-1, feats.shape[-1])
    model.mean.copy_(torch.from_numpy(flat.mean(0)))
    model.std.copy_(torch.from_numpy(flat.std(0)).clamp_min(1e-6))
    model.to(device)
    bank = torch.from_numpy(feats)
    n_views = feats.shape[1] if feats.ndim == 3 else 0
    pos = pairs[labels > 0.5]
    positive_keys = np.unique(np.minimum(pos[:, 0], pos[:, 1]) * n_items + np.maximum(pos[:, 0], pos[:, 1]))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    best_auc, best_state = -1.0, None
    val_feats = feats.mean(axis=1) if n_views else feats

    cat_rows = torch.from_numpy(np.asarray(categories, dtype=np.int64)) if n_categories else None

    def gather_categories(rows: np.ndarray) -> torch.Tensor | None:
        if cat_rows is None:
            return None
        c = cat_rows[torch.from_numpy(rows)]
        if cfg.category_dropout > 0:
            c = torch.where(torch.from_numpy(rng.random(len(rows)) < cfg.category_dropout), torch.full_like(c, n_categories), c)
        return c.to(device)

    att_rows = model.attribute_index(attributes, n_items).cpu() if attribute_sizes else None
    unknown_attribute = torch.tensor(attribute_sizes, dtype=torch.long) if attribute_sizes else None

    def gather_attributes(rows: np.ndarray) -> torch.Tensor | None:
        if att_rows is None:
            return None
        a = att_rows[torch.from_numpy(rows)]
        if cfg.attribute_dropout > 0:
            hide = torch.from_numpy(rng.random(a.shape) < cfg.attribute_dropout)
            a = torch.where(hide, unknown_attribute.expand_as(a), a)
        return a.to(device)

    def gather(rows: np.ndarray) -> torch.Tensor:
        if not n_views:
            return bank[torch.from_numpy(rows)]
        views = torch.from_numpy(rng.integers(0, n_views, len(rows)))
        return bank[torch.from_numpy(rows), views]

    for epoch in range(1, cfg.epochs + 1):
        negs = _sample_negatives(rng, pos, n_items, categories, by_category, cfg, positive_keys)
        all_pairs = np.concatenate([pairs, negs])
        all_labels = np.concatenate([labels, np.zeros(len(negs), np.float32)])
        all_weights = np.concatenate([weights, np.ones(len(negs), np.float32)])
        order = rng.permutation(len(all_pairs))
        model.train()
        total, count = 0.0, 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            fa = gather(all_pairs[idx, 0]).to(device)
            fb = gather(all_pairs[idx, 1]).to(device)
            y = torch.from_numpy(all_labels[idx]).to(device)
            w = torch.from_numpy(all_weights[idx]).to(device)
            ca, cb = gather_categories(all_pairs[idx, 0]), gather_categories(all_pairs[idx, 1])
            aa, ab = gather_attributes(all_pairs[idx, 0]), gather_attributes(all_pairs[idx, 1])
            loss = (F.binary_cross_entropy_with_logits(model(fa, fb, ca, cb, aa, ab), y, reduction="none") * w).sum() / w.sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        model.eval()
        val_auc = None
        if val_pairs is not None and val_labels is not None and len(val_pairs):
            vp = np.asarray(val_pairs, dtype=np.int64).reshape(-1, 2)
            vc = (categories[vp[:, 0]], categories[vp[:, 1]]) if n_categories else (None, None)
            va = (attributes[vp[:, 0]], attributes[vp[:, 1]]) if attribute_sizes else (None, None)
            val_auc = roc_auc(val_labels, score_pairs(model, val_feats[vp[:, 0]], val_feats[vp[:, 1]], *vc, *va))
            if not math.isnan(val_auc) and val_auc > best_auc:
                best_auc = val_auc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row = {"epoch": epoch, "epochs": cfg.epochs, "loss": total / max(count, 1), "val_auc": val_auc}
        history.append(row)
        if progress:
            progress(dict(row))
        if cfg.patience > 0 and best_state is not None and epoch - best_epoch(history) >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.cpu().eval(), history


def best_epoch(history: list[dict]) -> int:
    """The epoch (1-based) with the best validation AUC, the first of equals; the last epoch when none was measured."""
    scored = [(h["val_auc"], -h["epoch"]) for h in history if h.get("val_auc") is not None and not math.isnan(h["val_auc"])]
    return -max(scored)[1] if scored else (history[-1]["epoch"] if history else 0)


def train_siamese(*args, **kwargs):
    """Seeded wrapper of _train_siamese_unseeded: dropout masks and initialisation come from cfg.seed, and
    the caller's global torch RNG state is left untouched (repeatable runs)."""
    cfg = kwargs.get("cfg")
    seed = getattr(cfg, "seed", 0) if cfg is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train_siamese_unseeded(*args, **kwargs)


train_siamese.__doc__ = (_train_siamese_unseeded.__doc__ or "") + "\n\n(Runs seeded by cfg.seed; the global torch RNG state is restored afterwards.)"
