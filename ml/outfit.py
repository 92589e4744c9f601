"""Outfit scorer f(i, j, k, ...): shared legs over any number of items, permutation-invariant pooling.

Trained on curated outfits (positives) against corrupted outfits (one item swapped for another
item of the same category). Pooling is the mean and the max over items of the leg embeddings; the
sum behind the mean runs over values sorted per dimension, so any order of the same items gives
bit-for-bit the same score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.config import resolve_device


@dataclass
class OutfitConfig:
    hidden: int = 512
    embed_dim: int = 256
    dropout: float = 0.1
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    negatives_per_outfit: int = 2
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


class OutfitScorer(nn.Module):
    def __init__(self, in_dim: int, cfg: OutfitConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or OutfitConfig()
        self.in_dim = int(in_dim)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.leg = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.embed_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(2 * cfg.embed_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))

    def config_dict(self) -> dict:
        return {"in_dim": self.in_dim, "cfg": self.cfg.to_dict()}

    @classmethod
    def from_state(cls, state: dict, config: dict) -> OutfitScorer:
        model = cls(config["in_dim"], OutfitConfig(**config["cfg"]))
        model.load_state_dict(state)
        return model.eval()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) padded item features, mask (B, L) True for real items -> logits (B,)."""
        b, length, d = x.shape
        e = self.leg(((x - self.mean) / self.std).reshape(b * length, d)).reshape(b, length, -1)
        m = mask.unsqueeze(-1)
        # Embeddings are >= 0 (ReLU), so a padded slot set to 0 never wins the max, and adds 0 to the sum.
        e = e * m
        total = torch.sort(e, dim=1).values.sum(dim=1)
        mean = total / mask.sum(dim=1, keepdim=True).clamp_min(1)
        pooled = torch.cat([mean, e.max(dim=1).values], dim=1)
        return self.head(pooled).squeeze(1)


def _pad(features: np.ndarray, outfits: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max((len(o) for o in outfits), default=1)
    idx = np.zeros((len(outfits), length), np.int64)
    mask = np.zeros((len(outfits), length), bool)
    for n, o in enumerate(outfits):
        idx[n, : len(o)] = o
        mask[n, : len(o)] = True
    return torch.from_numpy(np.asarray(features, dtype=np.float32)[idx]), torch.from_numpy(mask)


def _validate(outfits, n_items: int) -> list[list[int]]:
    clean = []
    for n, o in enumerate(outfits):
        o = [int(i) for i in o]
        if len(o) < 1:
            raise ValueError(f"outfit {n} is empty")
        bad = [i for i in o if i < 0 or i >= n_items]
        if bad:
            raise ValueError(f"outfit {n} refers to items {bad} outside 0..{n_items - 1}")
        clean.append(o)
    return clean


@torch.no_grad()
def score_outfits(model: OutfitScorer, features: np.ndarray, outfits: list[list[int]], batch_size: int = 1024) -> np.ndarray:
    """Probability (M,) that each outfit (list of row indices into ``features``) goes together."""
    model.eval()
    outfits = _validate(outfits, len(features))
    out = np.empty(len(outfits), np.float32)
    for start in range(0, len(outfits), batch_size):
        x, mask = _pad(features, outfits[start : start + batch_size])
        out[start : start + len(x)] = torch.sigmoid(model(x, mask)).numpy()
    return out


def corrupt_outfits(outfits: list[list[int]], categories: np.ndarray, rng: np.random.Generator, per_outfit: int = 1) -> list[list[int]]:
    """Each negative: one item swapped for another item of the same category, not already in the outfit."""
    categories = np.asarray(categories)
    by_category = {c: np.flatnonzero(categories == c) for c in np.unique(categories)}
    negatives = []
    for o in outfits:
        for _ in range(per_outfit):
            for _attempt in range(5):
                slot = int(rng.integers(0, len(o)))
                pool = by_category[categories[o[slot]]]
                repl = int(pool[rng.integers(0, len(pool))])
                if repl not in o:
                    neg = list(o)
                    neg[slot] = repl
                    negatives.append(neg)
                    break
    return negatives


def _train_outfit_scorer_unseeded(
    features: np.ndarray,
    outfits: list[list[int]],
    categories: np.ndarray,
    *,
    cfg: OutfitConfig | None = None,
    progress: Callable[[dict], None] | None = None,
) -> tuple[OutfitScorer, list[dict]]:
    """Train against fresh same-category corruptions each epoch; history rows {"epoch","epochs","loss"}."""
    cfg = cfg or OutfitConfig()
    features = np.asarray(features, dtype=np.float32)
    outfits = _validate(outfits, len(features))
    categories = np.asarray(categories)
    if len(categories) != len(features):
        raise ValueError(f"categories has {len(categories)} rows, features has {len(features)}")
    device = resolve_device(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = OutfitScorer(features.shape[1], cfg)
    model.mean.copy_(torch.from_numpy(features.mean(0)))
    model.std.copy_(torch.from_numpy(features.std(0)).clamp_min(1e-6))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        negatives = corrupt_outfits(outfits, categories, rng, cfg.negatives_per_outfit)
        batch_outfits = outfits + negatives
        targets = np.concatenate([np.ones(len(outfits)), np.zeros(len(negatives))]).astype(np.float32)
        # Positives weigh as much in total as negatives.
        w = np.where(targets > 0, 1.0, len(outfits) / max(len(negatives), 1)).astype(np.float32)
        order = rng.permutation(len(batch_outfits))
        model.train()
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            x, mask = _pad(features, [batch_outfits[i] for i in idx])
            y = torch.from_numpy(targets[idx]).to(device)
            wb = torch.from_numpy(w[idx]).to(device)
            loss = (F.binary_cross_entropy_with_logits(model(x.to(device), mask.to(device)), y, reduction="none") * wb).sum() / wb.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch, "epochs": cfg.epochs, "loss": total / max(len(order), 1)}
        history.append(row)
        if progress:
            progress(dict(row))
    return model.cpu().eval(), history


def complete_outfit(
    model: OutfitScorer,
    features: np.ndarray,
    given: list[int],
    candidates_by_slot: dict[str, np.ndarray],
    top: int = 1,
) -> dict[str, list[tuple[int, float]]]:
    """Best candidates per missing slot: {slot: [(row, score), ...]} best first.

    Slots are filled greedily in the given order: each slot is scored together with the given
    items and the best pick of every earlier slot, so the completed outfit is judged as a whole.
    """
    return complete_by_score(lambda looks: score_outfits(model, features, looks), given, candidates_by_slot, top=top)


def complete_by_score(
    score: Callable[[list[list[int]]], np.ndarray], given: list[int], candidates_by_slot: dict[str, np.ndarray], top: int = 1
) -> dict[str, list[tuple[int, float]]]:
    """complete_outfit's greedy completion with any scorer of looks (lists of ids); a candidate
    scored NaN (unscorable) is never picked."""
    chosen = [int(i) for i in given]
    result: dict[str, list[tuple[int, float]]] = {}
    for slot, candidates in candidates_by_slot.items():
        cands = [int(c) for c in np.asarray(candidates).reshape(-1).tolist() if int(c) not in chosen]
        scores = np.asarray(score([chosen + [c] for c in cands]), dtype=np.float64) if cands else np.zeros(0)
        order = [i for i in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable") if np.isfinite(scores[i])][: max(top, 1)]
        result[slot] = [(cands[i], float(scores[i])) for i in order]
        if result[slot]:
            chosen.append(result[slot][0][0])
    return result


def train_outfit_scorer(*args, **kwargs):
    """Seeded wrapper of _train_outfit_scorer_unseeded: dropout masks and initialisation come from cfg.seed, and
    the caller's global torch RNG state is left untouched (repeatable runs)."""
    cfg = kwargs.get("cfg")
    seed = getattr(cfg, "seed", 0) if cfg is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train_outfit_scorer_unseeded(*args, **kwargs)


train_outfit_scorer.__doc__ = (_train_outfit_scorer_unseeded.__doc__ or "") + "\n\n(Runs seeded by cfg.seed; the global torch RNG state is restored afterwards.)"
