"""Evaluation metrics (NumPy only)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def roc_auc(labels, scores, sample_weight=None) -> float:
    """Area under the ROC curve (ties count half); nan when only one class is present."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
    pos_w, neg_w = w[y].sum(), w[~y].sum()
    if pos_w == 0 or neg_w == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    # Group ties: each positive beats the negatives below its score and half of those tied with it.
    uniq, start = np.unique(s, return_index=True)
    bounds = np.append(start, len(s))
    neg_below = 0.0
    total = 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        pw = w[a:b][y[a:b]].sum()
        nw = w[a:b][~y[a:b]].sum()
        total += pw * (neg_below + 0.5 * nw)
        neg_below += nw
    return float(total / (pos_w * neg_w))


def accuracy(labels, proba_or_pred) -> float:
    labels = np.asarray(labels)
    pred = np.asarray(proba_or_pred)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    return float((pred == labels).mean()) if len(labels) else float("nan")


def top_k_accuracy(labels, proba, k: int = 5) -> float:
    labels = np.asarray(labels)
    proba = np.asarray(proba)
    k = min(k, proba.shape[1])
    top = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean()) if len(labels) else float("nan")


def macro_auc_by_category_pair(labels, scores, cat_a, cat_b, *, min_each: int = 1) -> dict:
    """Mean of per-(unordered category pair) AUCs, over pairs with both classes present."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    groups = defaultdict(list)
    for n, (a, b) in enumerate(zip(np.asarray(cat_a).tolist(), np.asarray(cat_b).tolist())):
        groups[(min(a, b), max(a, b))].append(n)
    per_pair = {}
    for key, rows in groups.items():
        y = labels[rows]
        if (y > 0.5).sum() >= min_each and (y <= 0.5).sum() >= min_each:
            per_pair[key] = roc_auc(y, scores[rows])
    values = [v for v in per_pair.values() if not np.isnan(v)]
    return {"macro_auc": float(np.mean(values)) if values else float("nan"), "pairs": len(values), "per_pair": per_pair}


def category_cooccurrence_baseline(train_pairs, train_labels, categories, eval_pairs, *, smoothing: float = 1.0) -> np.ndarray:
    """Score of a pair = smoothed share of positives among training pairs with the same two categories."""
    categories = np.asarray(categories)
    pos, tot = defaultdict(float), defaultdict(float)
    for (a, b), y in zip(np.asarray(train_pairs).tolist(), np.asarray(train_labels).tolist()):
        ca, cb = categories[a], categories[b]
        key = (min(ca, cb), max(ca, cb))
        pos[key] += float(y > 0.5)
        tot[key] += 1.0
    prior = (sum(pos.values()) + smoothing) / (sum(tot.values()) + 2 * smoothing)
    out = np.empty(len(eval_pairs), dtype=np.float64)
    for n, (a, b) in enumerate(np.asarray(eval_pairs).tolist()):
        ca, cb = categories[a], categories[b]
        key = (min(ca, cb), max(ca, cb))
        out[n] = (pos[key] + smoothing * prior) / (tot[key] + smoothing)
    return out


def fitb_accuracy(candidate_scores) -> float:
    """Fill-in-the-blank: each row scores the candidates, the right answer in column 0."""
    scores = np.asarray(candidate_scores, dtype=np.float64)
    if scores.size == 0:
        return float("nan")
    # A tie with the answer counts as a miss: no credit for an uninformative scorer.
    return float((scores[:, 0] > scores[:, 1:].max(axis=1)).mean())


def flag_precision_recall(flagged, truly_wrong) -> tuple[float, float]:
    flagged = np.asarray(flagged, dtype=bool)
    truth = np.asarray(truly_wrong, dtype=bool)
    tp = float((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.sum() else float("nan")
    recall = tp / truth.sum() if truth.sum() else float("nan")
    return float(precision), float(recall)


def precision_at_k(query_labels, neighbour_labels) -> float:
    """Share of neighbours (Q,k) that carry their query's label (e.g. same articleType)."""
    q = np.asarray(query_labels)[:, None]
    nb = np.asarray(neighbour_labels)
    return float((nb == q).mean()) if nb.size else float("nan")
