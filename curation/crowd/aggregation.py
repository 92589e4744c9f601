"""Turning crowd votes into labels: majority vote and Dawid-Skene, through crowd-kit.

Plain data in, plain data out (no Django): votes are (task, worker, label) triples with label 0/1.
crowd-kit fits, per worker, a confusion matrix (Dawid-Skene) by EM, so a worker who is usually
wrong ends up pointing the other way and a coin-flipper ends up weightless; majority vote counts
every vote the same. Gold tasks (stylist-decided pairs answered by the crowd) are passed as known
truths: they anchor each worker's confusion matrix.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


# Pseudo-counts added to every worker's confusion matrix (see ``smoothed_posteriors``).
PRIOR_RIGHT = 4.0
PRIOR_WRONG = 2.0


@dataclass(frozen=True)
class TaskAggregate:
    value: int  # 1 complementary, 0 not
    confidence: float  # posterior probability of value (Dawid-Skene) or vote share (majority)
    majority_value: int
    majority_share: float  # share of votes agreeing with the majority; 0.5 on a tie
    votes: int

    @property
    def split(self) -> bool:
        """A tie, or the two methods disagree: a stylist should look."""
        return self.majority_share <= 0.5 or self.value != self.majority_value


def majority(votes: Iterable[tuple[Hashable, Hashable, int]]) -> dict[Hashable, tuple[int, float, int]]:
    """task -> (label, share of votes for it, number of votes). A tie resolves to 0 with share 0.5:
    "not complementary" is the cheaper mistake for a recommender, and the tie is escalated anyway."""
    by_task: dict[Hashable, Counter] = defaultdict(Counter)
    for task, _worker, label in votes:
        by_task[task][int(label)] += 1
    result = {}
    for task, counts in by_task.items():
        total = counts[0] + counts[1]
        label = 1 if counts[1] > counts[0] else 0
        result[task] = (label, counts[label] / total, total)
    return result


def aggregate(
    votes: list[tuple[Hashable, Hashable, int]],
    *,
    gold: Mapping[Hashable, int] | None = None,
    method: str = "dawid_skene",
    n_iter: int = 100,
) -> dict[Hashable, TaskAggregate]:
    """Aggregate every task that has votes. ``method``: "dawid_skene" or "majority"."""
    if method not in ("dawid_skene", "majority"):
        raise ValueError(f"unknown aggregation method {method!r}; expected 'dawid_skene' or 'majority'")
    if not votes:
        return {}
    mv = majority(votes)
    if method == "majority" or len({int(v[2]) for v in votes}) < 2:
        # A single label value across all votes leaves Dawid-Skene nothing to estimate.
        return {t: TaskAggregate(value=m[0], confidence=m[1], majority_value=m[0], majority_share=m[1], votes=m[2]) for t, m in mv.items()}

    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame(votes, columns=["task", "worker", "label"]).astype({"label": int})
    known = None
    if gold:
        voted = set(frame["task"])
        known = pd.Series({t: int(v) for t, v in gold.items() if t in voted}, dtype=int)
        known = known if len(known) else None
    with warnings.catch_warnings():
        # crowd-kit 1.4 uses pandas keywords that pandas 3 deprecates; the warnings are theirs.
        warnings.filterwarnings("ignore", module=r"crowdkit(\..*)?$")
        model = DawidSkene(n_iter=n_iter).fit(frame, true_labels=known)
    fitted = {task: float(row.get(1, 0.0)) for task, row in model.probas_.iterrows()}
    posterior = smoothed_posteriors(votes, fitted, gold=gold or {})
    result = {}
    for task, p1 in posterior.items():
        value = 1 if p1 >= 0.5 else 0
        m = mv[task]
        result[task] = TaskAggregate(value=value, confidence=p1 if value else 1.0 - p1, majority_value=m[0], majority_share=m[1], votes=m[2])
    return result


def smoothed_posteriors(
    votes: list[tuple[Hashable, Hashable, int]],
    fitted: Mapping[Hashable, float],
    *,
    gold: Mapping[Hashable, int],
    prior_right: float = PRIOR_RIGHT,
    prior_wrong: float = PRIOR_WRONG,
) -> dict[Hashable, float]:
    """P(label = 1) per task: one more Dawid-Skene E-step, with each worker's confusion matrix
    estimated from the fitted posteriors plus pseudo-counts.

    Why: crowd-kit's EM has no prior on the confusion matrices, so a worker seen on three tasks
    gets a matrix of 0s and 1s and the posteriors come out certain (a 2-1 split among three new
    workers scored 1.00). The pseudo-counts (``prior_right`` on the diagonal, ``prior_wrong`` off
    it: a prior accuracy of 2/3 worth six answers) wash out as a worker's history grows.
    """
    counts: dict[Hashable, list[list[float]]] = {}
    for task, worker, label in votes:
        q = float(gold[task]) if task in gold else fitted[task]
        c = counts.setdefault(worker, [[prior_right, prior_wrong], [prior_wrong, prior_right]])  # [true][observed]
        c[1][label] += q
        c[0][label] += 1.0 - q
    log_err = {
        w: [[math.log(c[t][o] / (c[t][0] + c[t][1])) for o in (0, 1)] for t in (0, 1)] for w, c in counts.items()
    }
    share_yes = sum(fitted.values()) / len(fitted)
    share_yes = min(max(share_yes, 0.01), 0.99)
    log_post: dict[Hashable, list[float]] = {task: [math.log(1.0 - share_yes), math.log(share_yes)] for task in fitted}
    for task, worker, label in votes:
        log_post[task][0] += log_err[worker][0][label]
        log_post[task][1] += log_err[worker][1][label]
    result = {}
    for task, (l0, l1) in log_post.items():
        if task in gold:
            result[task] = float(gold[task])
        else:
            result[task] = 1.0 / (1.0 + math.exp(max(-700.0, min(700.0, l0 - l1))))
    return result
