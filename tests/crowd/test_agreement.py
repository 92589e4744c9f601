"""Agreement statistics and aggregation: plain functions, no database."""

from __future__ import annotations

import random

import pytest

from curation.crowd.agreement import krippendorff_alpha_nominal, median, wilson_interval
from curation.crowd.aggregation import aggregate, majority


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal data with missing
    # values: 4 observers, 12 units; the paper gives alpha = 0.743.
    rows = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    table = [r.split() for r in rows]
    units = [[row[i] for row in table if row[i] != "."] for i in range(12)]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_extremes_and_undefined():
    assert krippendorff_alpha_nominal([["yes", "yes"], ["no", "no", "no"], ["yes", "yes", "yes"]]) == pytest.approx(1.0)
    # Raters who always disagree do worse than chance.
    assert krippendorff_alpha_nominal([["yes", "no"], ["no", "yes"], ["yes", "no"]]) < 0
    # One category throughout, or nothing pairable: undefined, not a fake number.
    assert krippendorff_alpha_nominal([["yes", "yes"], ["yes", "yes"]]) is None
    assert krippendorff_alpha_nominal([["yes"], ["no"]]) is None


def test_wilson_interval_known_values_and_bounds():
    low, high = wilson_interval(8, 10, z=1.96)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    assert 0.0 <= low < 1.0 and high == pytest.approx(1.0)
    with pytest.raises(ValueError, match="successes=11, n=10"):
        wilson_interval(11, 10)


def test_median():
    assert median([]) is None
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_majority_ties_resolve_to_no_with_half_share():
    result = majority([(1, "a", 1), (1, "b", 0), (2, "a", 1), (2, "b", 1), (2, "c", 0)])
    assert result[1] == (0, 0.5, 2)
    assert result[2] == (1, pytest.approx(2 / 3), 3)


def _simulate(seed: int, accuracies: list[float], tasks: int = 300, per_task: int = 3):
    rng = random.Random(seed)
    truth = {t: rng.randint(0, 1) for t in range(tasks)}
    votes = []
    for t in range(tasks):
        for w in rng.sample(range(len(accuracies)), per_task):
            votes.append((t, w, truth[t] if rng.random() < accuracies[w] else 1 - truth[t]))
    return truth, votes


def test_dawid_skene_beats_majority_when_some_workers_are_adversarial():
    accuracies = [0.9] * 6 + [0.5] * 2 + [0.1] * 4
    truth, votes = _simulate(7, accuracies)
    ds = aggregate(votes, method="dawid_skene")
    mv = aggregate(votes, method="majority")
    ds_acc = sum(ds[t].value == truth[t] for t in truth) / len(truth)
    mv_acc = sum(mv[t].value == truth[t] for t in truth) / len(truth)
    assert ds_acc > mv_acc + 0.1
    assert all(0.5 <= r.confidence <= 1.0 for r in ds.values())


def test_gold_truths_are_clamped_and_split_flags_disagreement():
    truth, votes = _simulate(3, [0.85] * 8, tasks=80)
    gold = {t: truth[t] for t in range(10)}
    result = aggregate(votes, gold=gold)
    assert all(result[t].value == truth[t] and result[t].confidence == pytest.approx(1.0) for t in gold)
    tie = aggregate([(1, "a", 1), (1, "b", 0), (2, "a", 1), (2, "b", 1)], method="majority")
    assert tie[1].split and not tie[2].split


def test_aggregate_rejects_unknown_method_and_handles_one_label_only():
    with pytest.raises(ValueError, match="unknown aggregation method 'glad'"):
        aggregate([(1, "a", 1)], method="glad")
    assert aggregate([]) == {}
    only_yes = aggregate([(1, "a", 1), (1, "b", 1), (2, "a", 1)])
    assert only_yes[1].value == 1 and only_yes[1].confidence == 1.0
