"""The held-out protocol the pipeline judges models by (arrays only, no database).

Items are split by product model (colour variants share it), so no test item or its variants is
trained on: the split is a stable hash of the group, the same in every run, so the active model
never trained on this run's test items either. Pair AUC: each held-out positive pair against a
negative that replaces the partner with another item of the partner's own category. FITB-4: an
outfit with one held-out item blanked, the answer among four candidates of its category.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ml.metrics import category_cooccurrence_baseline, fitb_accuracy, roc_auc

TEST, VAL, TRAIN = 2, 1, 0


def split_of_groups(groups: list[str], *, test_percent: int, val_percent: int) -> np.ndarray:
    """TEST / VAL / TRAIN per row, from a stable hash of its group."""
    out = np.empty(len(groups), dtype=np.int8)
    for i, group in enumerate(groups):
        bucket = int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % 100
        out[i] = TEST if bucket < test_percent else VAL if bucket < test_percent + val_percent else TRAIN
    return out


@dataclass
class PairEval:
    pairs: np.ndarray  # (M, 2) rows
    labels: np.ndarray  # (M,) 0/1


def category_matched_eval(
    positives: np.ndarray,
    categories: np.ndarray,
    *,
    pool: np.ndarray,
    known_positive: set[tuple[int, int]],
    seed: int = 0,
) -> PairEval:
    """Each positive (a, b) and one negative (a, b') with b' of b's category drawn from ``pool`` rows."""
    rng = np.random.default_rng(seed)
    pool_by_cat: dict[int, np.ndarray] = {}
    for c in np.unique(categories[pool]) if len(pool) else []:
        pool_by_cat[int(c)] = pool[categories[pool] == c]
    pairs, labels = [], []
    for a, b in np.asarray(positives, dtype=np.int64).reshape(-1, 2).tolist():
        cands = pool_by_cat.get(int(categories[b]))
        if cands is None:
            continue
        cands = cands[(cands != a) & (cands != b)]
        cands = np.array([c for c in cands.tolist() if (min(a, c), max(a, c)) not in known_positive])
        if len(cands) == 0:
            continue
        pairs += [(a, b), (a, int(cands[rng.integers(0, len(cands))]))]
        labels += [1, 0]
    return PairEval(np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(labels, dtype=np.float32))


@dataclass
class FitbQuestion:
    given: list[int]
    candidates: list[int]  # the answer first


def fitb_questions(
    outfits: list[list[int]], categories: np.ndarray, *, is_test: np.ndarray, pool: np.ndarray, n_candidates: int = 4, seed: int = 0
) -> list[FitbQuestion]:
    """One question per outfit holding a test item: blank it, add distractors of its category."""
    rng = np.random.default_rng(seed)
    questions = []
    for outfit in outfits:
        test_items = [i for i in outfit if is_test[i]]
        if not test_items or len(outfit) < 2:
            continue
        answer = test_items[0]
        given = [i for i in outfit if i != answer]
        same = pool[(categories[pool] == categories[answer])]
        same = np.array([c for c in same.tolist() if c not in outfit])
        if len(same) < n_candidates - 1:
            continue
        distractors = rng.choice(same, size=n_candidates - 1, replace=False).tolist()
        questions.append(FitbQuestion(given=given, candidates=[answer] + [int(d) for d in distractors]))
    return questions


def fitb_with(questions: list[FitbQuestion], score_outfit: Callable[[list[list[int]]], np.ndarray]) -> float:
    """FITB accuracy where ``score_outfit`` scores completed outfits (lists of rows)."""
    if not questions:
        return float("nan")
    rows = [q.given + [c] for q in questions for c in q.candidates]
    scores = np.asarray(score_outfit(rows), dtype=np.float64).reshape(len(questions), -1)
    return fitb_accuracy(scores)


def pair_metrics(
    score_pairs: Callable[[np.ndarray], np.ndarray], eval_set: PairEval, *, baseline: np.ndarray | None = None, cosine: np.ndarray | None = None
) -> dict:
    if len(eval_set.labels) == 0 or len(np.unique(eval_set.labels)) < 2:
        return {"pair_auc": None, "eval_pairs": int(len(eval_set.labels))}
    out = {"pair_auc": _finite(roc_auc(eval_set.labels, score_pairs(eval_set.pairs))), "eval_pairs": int(len(eval_set.labels))}
    if baseline is not None:
        out["baseline_auc"] = _finite(roc_auc(eval_set.labels, baseline))
    if cosine is not None:
        out["cosine_auc"] = _finite(roc_auc(eval_set.labels, cosine))
    return out


def cosine_scores(features: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])


def baseline_scores(train_pairs: np.ndarray, train_labels: np.ndarray, categories: np.ndarray, eval_pairs: np.ndarray) -> np.ndarray:
    return category_cooccurrence_baseline(train_pairs, train_labels, categories, eval_pairs)


def _finite(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)
