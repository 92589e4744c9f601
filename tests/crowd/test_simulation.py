"""Done-when for the crowd queue: 20 simulated workers with known accuracies label 500 pairs with
known truth through the service layer (the same calls the API makes)."""

from __future__ import annotations

import random

import pytest

from tests.crowd.conftest import make_gold, make_pairs

GOOD = [0.95, 0.93, 0.92, 0.9, 0.9, 0.88, 0.87, 0.86, 0.85, 0.85, 0.84, 0.82]
COIN_FLIPPERS = [0.5, 0.5, 0.5]  # answer at random
ALWAYS_YES = 2  # near-random spammers of another kind: always "yes"
ADVERSARIAL = [0.15, 0.2, 0.25]  # mostly wrong on purpose


@pytest.mark.django_db
@pytest.mark.timeout(900)
def test_twenty_workers_label_500_pairs(settings, crowd_workers, stylist):
    from curation.crowd.aggregation import aggregate
    from curation.crowd.models import AggregatedLabel, WorkerProfile
    from curation.crowd.selectors import aggregated_training_labels, crowd_quality
    from curation.crowd.services import crowd_aggregate, crowd_next, crowd_vote_submit
    from curation.pairs.models import CandidatePair, PairLabel

    settings.CROWD_VOTES_PER_PAIR = 3
    settings.CROWD_GOLD_RATE = 0.3
    settings.CROWD_MIN_GOLD_ANSWERS = 10
    settings.CROWD_MIN_GOLD_ACCURACY = 0.7
    settings.CROWD_ESCALATE_BELOW = 0.7
    settings.CROWD_DAILY_CAP = 10_000

    rng = random.Random(20261128)
    pairs = make_pairs(500)
    truth = {p.id: rng.choice(["yes", "no"]) for p in pairs}
    gold = make_gold(150, stylist)
    truth.update(gold)

    workers = crowd_workers(20)
    kinds = {}
    accuracy = {}
    for w, acc in zip(workers, GOOD + COIN_FLIPPERS + [None] * ALWAYS_YES + ADVERSARIAL):
        accuracy[w.id] = acc
        kinds[w.id] = "good" if acc is not None and acc >= 0.8 else ("always_yes" if acc is None else ("coin" if acc == 0.5 else "adversarial"))

    def answer(worker, pair_id):
        acc = accuracy[worker.id]
        if acc is None:
            return "yes"
        right = truth[pair_id]
        return right if rng.random() < acc else ("no" if right == "yes" else "yes")

    active = list(workers)
    steps = 0
    while active:
        rng.shuffle(active)
        for worker in list(active):
            state = crowd_next(worker=worker, rng=rng)
            if state.pair is None:
                active.remove(worker)
                continue
            fast = kinds[worker.id] in ("coin", "always_yes")
            crowd_vote_submit(
                worker=worker, pair_id=state.pair.id, value=answer(worker, state.pair.id),
                duration_ms=rng.randint(200, 700) if fast else rng.randint(2000, 9000),
            )
            steps += 1
        assert steps < 20_000, "the simulation does not converge"

    # Every crowd pair got exactly k valid votes, and no more.
    valid = PairLabel.objects.filter(kind="crowd", pair__is_gold=False).exclude(user__crowd_profile__status="suspended")
    per_pair = {}
    for pair_id in valid.values_list("pair_id", flat=True):
        per_pair[pair_id] = per_pair.get(pair_id, 0) + 1
    assert set(per_pair) == {p.id for p in pairs}
    assert set(per_pair.values()) == {3}

    # Spammers and adversaries suspended; no good worker is. Their votes are kept.
    status = dict(WorkerProfile.objects.values_list("user_id", "status"))
    bad = [w.id for w in workers if kinds[w.id] != "good"]
    good = [w.id for w in workers if kinds[w.id] == "good"]
    assert all(status[uid] == "suspended" for uid in bad), {uid: (kinds[uid], status[uid]) for uid in bad}
    assert all(status[uid] == "active" for uid in good)
    assert PairLabel.objects.filter(user_id__in=bad, pair__is_gold=False).count() > 0

    report = crowd_aggregate()
    assert report.aggregated == 500
    aggregates = {a.pair_id: a for a in AggregatedLabel.objects.all()}
    ds_accuracy = sum(aggregates[p.id].value == truth[p.id] for p in pairs) / 500
    mv_accuracy = sum(aggregates[p.id].majority_value == truth[p.id] for p in pairs) / 500
    assert ds_accuracy >= 0.93 and mv_accuracy >= 0.93

    # The same comparison on every vote the crowd cast, suspended workers' included: what the two
    # methods make of unreliable votes (Dawid-Skene turns adversaries around, majority cannot).
    pair_ids = {p.id for p in pairs}
    every_vote = [
        (pid, uid, 1 if value == "yes" else 0)
        for pid, uid, value in PairLabel.objects.filter(kind="crowd").values_list("pair_id", "user_id", "value")
    ]
    gold_truth = {pid: 1 if v == "yes" else 0 for pid, v in gold.items()}
    ds_all = aggregate(every_vote, gold=gold_truth, method="dawid_skene")
    mv_all = aggregate(every_vote, method="majority")
    ds_all_accuracy = sum((ds_all[pid].value == 1) == (truth[pid] == "yes") for pid in pair_ids) / 500
    mv_all_accuracy = sum((mv_all[pid].value == 1) == (truth[pid] == "yes") for pid in pair_ids) / 500
    assert ds_all_accuracy >= mv_all_accuracy

    # Doubtful pairs (low confidence, or the two methods disagree) went to the stylist queue;
    # the rest feed training with their confidence as weight, and are right more often.
    escalated = CandidatePair.objects.filter(source="escalated", audience="stylist", state="open")
    assert escalated.count() == report.escalated == sum(a.escalated for a in aggregates.values())
    assert all(a.value == a.majority_value for a in aggregates.values() if not a.escalated)
    training = aggregated_training_labels()
    assert len(training) == report.decided == 500 - report.escalated
    pair_by_ab = {(p.a_id, p.b_id): p.id for p in pairs}
    settled_accuracy = sum((value == 1) == (truth[pair_by_ab[(a, b)]] == "yes") for a, b, value, _w in training) / len(training)
    assert settled_accuracy >= ds_accuracy
    assert all(settings.CROWD_ESCALATE_BELOW <= weight <= 1.0 for *_ab, _v, weight in training)

    quality = crowd_quality()
    too_fast = {w["user_id"]: w["too_fast_share"] for w in quality["workers"]}
    assert all(too_fast[uid] == 1.0 for uid in bad if kinds[uid] in ("coin", "always_yes"))
    assert all(too_fast[uid] == 0.0 for uid in good)
    assert quality["alpha_overall"] is not None and quality["alpha_overall"] > 0.5
    print(
        f"\nsimulation: steps={steps} valid votes: ds={ds_accuracy:.3f} mv={mv_accuracy:.3f}; every vote: "
        f"ds={ds_all_accuracy:.3f} mv={mv_all_accuracy:.3f}; settled={settled_accuracy:.3f} "
        f"escalated={report.escalated} alpha={quality['alpha_overall']:.3f}"
    )
