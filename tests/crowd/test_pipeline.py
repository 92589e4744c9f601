"""Sending pairs to the crowd, gold marking, aggregation, escalation and training labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.crowd.conftest import make_gold, make_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _crowd_settings(settings):
    settings.CROWD_VOTES_PER_PAIR = 3
    settings.CROWD_GOLD_RATE = 0.0
    settings.CROWD_ESCALATE_BELOW = 0.7


def _vote(pair_id, workers, values):
    from curation.crowd import services

    for worker, value in zip(workers, values):
        services._reserve(pair_id, worker, timezone.now())
        services.crowd_vote_submit(worker=worker, pair_id=pair_id, value=value, duration_ms=3000)


def test_enqueue_moves_open_unlabelled_free_stylist_pairs_by_priority(stylist, make_user):
    from curation.crowd.services import crowd_enqueue
    from curation.pairs.models import CandidatePair, PairLabel

    pairs = make_pairs(6, audience="stylist")
    for i, p in enumerate(pairs):
        CandidatePair.objects.filter(pk=p.pk).update(priority=i)
    labelled, held, escalated = pairs[5], pairs[4], pairs[3]
    PairLabel.objects.create(pair=labelled, user=stylist, kind="stylist", value="yes")
    CandidatePair.objects.filter(pk=held.pk).update(reserved_by=stylist, reserved_until=timezone.now() + timedelta(minutes=5))
    CandidatePair.objects.filter(pk=escalated.pk).update(source="escalated")

    report = crowd_enqueue(limit=2)
    assert report.moved == [pairs[2].id, pairs[1].id]  # the highest priorities that are eligible
    assert set(CandidatePair.objects.filter(audience="crowd").values_list("id", flat=True)) == {pairs[2].id, pairs[1].id}

    report = crowd_enqueue(pair_ids=[pairs[0].id, labelled.id, held.id, 999999])
    assert report.moved == [pairs[0].id]
    assert report.skipped[999999] == "no such pair"
    assert "unlabelled" in report.skipped[labelled.id] and held.id in report.skipped


def test_enqueue_command(stylist):
    from curation.pairs.models import CandidatePair

    make_pairs(3, audience="stylist")
    call_command("crowd_enqueue", "--limit", "2")
    assert CandidatePair.objects.filter(audience="crowd").count() == 2
    with pytest.raises(CommandError, match="give --limit N or --pairs"):
        call_command("crowd_enqueue")
    with pytest.raises(CommandError, match="comma-separated integers, got 'a,b'"):
        call_command("crowd_enqueue", "--pairs", "a,b")


def test_gold_marking_needs_agreeing_stylists(stylist, make_user):
    from curation.crowd.services import gold_pairs_mark
    from curation.pairs.models import PairLabel

    other = make_user("stylist", "other-stylist")
    agree, disagree, unlabelled = make_pairs(3, audience="stylist", state="decided")
    PairLabel.objects.create(pair=agree, user=stylist, kind="stylist", value="no")
    PairLabel.objects.create(pair=agree, user=other, kind="stylist", value="no")
    PairLabel.objects.create(pair=disagree, user=stylist, kind="stylist", value="no")
    PairLabel.objects.create(pair=disagree, user=other, kind="stylist", value="yes")
    assert gold_pairs_mark() == [agree.id]
    agree.refresh_from_db()
    disagree.refresh_from_db()
    assert agree.is_gold and not disagree.is_gold


def test_aggregation_settles_clear_pairs_and_escalates_split_ones(settings, crowd_workers, stylist):
    from curation.crowd.models import AggregatedLabel
    from curation.crowd.selectors import aggregated_training_labels
    from curation.crowd.services import crowd_aggregate
    from curation.pairs.models import CandidatePair

    settings.CROWD_VOTES_PER_PAIR = 2
    settings.CROWD_ESCALATE_BELOW = 0.6
    clear_yes, clear_no, split, unfinished = make_pairs(4)
    workers = crowd_workers(2)
    _vote(clear_yes.id, workers, ["yes", "yes"])
    _vote(clear_no.id, workers, ["no", "no"])
    _vote(split.id, workers, ["yes", "no"])
    _vote(unfinished.id, workers[:1], ["yes"])
    report = crowd_aggregate()
    assert report.aggregated == 3
    settled = {a.pair_id: a for a in AggregatedLabel.objects.all()}
    assert settled[clear_yes.id].value == "yes" and settled[clear_no.id].value == "no"
    assert unfinished.id not in settled
    assert CandidatePair.objects.get(pk=clear_yes.id).state == "decided"

    # A tie goes to the stylists, at the top of their queue.
    split_row = settled[split.id]
    assert split_row.escalated and split_row.escalation_reason == "votes split"
    pair = CandidatePair.objects.get(pk=split.id)
    assert (pair.audience, pair.source, pair.state) == ("stylist", "escalated", "open")
    assert pair.priority > 1.0
    assert report.escalated_pair_ids == [split.id]

    training = aggregated_training_labels()
    assert sorted((a, b, v) for a, b, v, _w in training) == sorted(
        [(clear_yes.a_id, clear_yes.b_id, 1), (clear_no.a_id, clear_no.b_id, 0)]
    )
    weights = {(a, b): w for a, b, _v, w in training}
    assert weights[(clear_yes.a_id, clear_yes.b_id)] == pytest.approx(settled[clear_yes.id].confidence)

    # Raise the bar: the same unanimous pairs are now too uncertain (two workers, little history).
    settings.CROWD_ESCALATE_BELOW = 0.99
    report = crowd_aggregate()
    assert report.escalated == 2 and aggregated_training_labels() == []
    assert AggregatedLabel.objects.get(pair=clear_yes).escalation_reason.startswith("confidence 0.")


def test_few_votes_do_not_make_dawid_skene_certain():
    from curation.crowd.aggregation import aggregate

    # Three workers, three pairs, one dissent: crowd-kit's bare EM calls this certain (1.00);
    # with pseudo-counts on the confusion matrices it stays below certainty.
    votes = [(1, "a", 1), (1, "b", 1), (1, "c", 1), (2, "a", 0), (2, "b", 0), (2, "c", 0), (3, "a", 1), (3, "b", 0), (3, "c", 0)]
    result = aggregate(votes)
    assert result[3].value == 0 and 0.6 < result[3].confidence < 0.95
    assert all(r.confidence < 0.99 for r in result.values())


def test_training_labels_leave_out_pairs_a_stylist_labelled(crowd_workers, stylist):
    from curation.crowd.selectors import aggregated_training_labels
    from curation.crowd.services import crowd_aggregate
    from curation.pairs.models import PairLabel

    (pair,) = make_pairs(1)
    _vote(pair.id, crowd_workers(3), ["yes"] * 3)
    crowd_aggregate()
    assert len(aggregated_training_labels()) == 1
    PairLabel.objects.create(pair=pair, user=stylist, kind="stylist", value="no")
    assert aggregated_training_labels() == []


def test_aggregate_command_reports(crowd_workers, capsys):
    (pair,) = make_pairs(1)
    _vote(pair.id, crowd_workers(3), ["no"] * 3)
    call_command("crowd_aggregate")
    out = capsys.readouterr().out
    assert "aggregated 1 pair(s): 1 settled, 0 escalated" in out


def test_quality_figures(crowd_workers, stylist, settings):
    from curation.crowd.selectors import crowd_quality
    from curation.crowd.services import crowd_aggregate
    from curation.crowd.agreement import krippendorff_alpha_nominal

    settings.CROWD_MIN_SECONDS_PER_DECISION = 1.0
    p1, p2 = make_pairs(2)
    gold = make_gold(2, stylist)
    w1, w2, w3 = crowd_workers(3)
    _vote(p1.id, [w1, w2, w3], ["yes", "yes", "no"])
    _vote(p2.id, [w1, w2, w3], ["no", "no", "no"])
    from curation.crowd import services

    for gold_id, truth in gold.items():
        services._reserve(gold_id, w1, timezone.now())
        services.crowd_vote_submit(worker=w1, pair_id=gold_id, value=truth, duration_ms=500)
    crowd_aggregate()
    q = crowd_quality()
    by_name = {w["username"]: w for w in q["workers"]}
    assert by_name["worker0"]["decisions"] == 4 and by_name["worker0"]["today"] == 4
    assert (by_name["worker0"]["gold_answered"], by_name["worker0"]["gold_correct"]) == (2, 2)
    assert by_name["worker0"]["gold_ci_low"] < 1.0 <= by_name["worker0"]["gold_ci_high"] + 1e-9
    assert by_name["worker0"]["too_fast"] == 2 and by_name["worker0"]["too_fast_share"] == 0.5
    assert by_name["worker0"]["median_seconds"] == pytest.approx(1.75)
    assert by_name["worker1"]["gold_accuracy"] is None
    # Agreement with the aggregate (escalated pairs keep their aggregate row for this comparison).
    from curation.crowd.models import AggregatedLabel

    p1_value = AggregatedLabel.objects.get(pair=p1).value
    assert by_name["worker2"]["agreement"] == pytest.approx(((p1_value == "no") + 1) / 2)
    # Gold pairs here have one vote each, which carries no agreement information.
    assert q["alpha_overall"] == pytest.approx(krippendorff_alpha_nominal([["yes", "yes", "no"], ["no", "no", "no"]]))
    assert len(q["batches"]) == 1 and q["batches"][0]["pairs"] == 2
    assert q["labels_per_day"] == [{"day": timezone.localdate().isoformat(), "count": 8}]
    assert q["totals"]["gold_pairs"] == 2 and q["totals"]["votes"] == 8
