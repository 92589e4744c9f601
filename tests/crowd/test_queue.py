"""The crowd queue through the service layer: reservations, overlap, gold mixing, limits, undo."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.crowd.conftest import make_gold, make_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _crowd_settings(settings):
    settings.CROWD_VOTES_PER_PAIR = 3
    settings.CROWD_GOLD_RATE = 0.0
    settings.CROWD_DAILY_CAP = 1000
    settings.CROWD_MIN_GOLD_ANSWERS = 4
    settings.CROWD_MIN_GOLD_ACCURACY = 0.7
    settings.CROWD_MIN_SECONDS_PER_DECISION = 1.0
    settings.PAIR_RESERVATION_SECONDS = 300


def _services():
    from curation.crowd import services

    return services


def test_next_reserves_current_and_prefetch_and_a_reload_returns_the_same(crowd_workers):
    s = _services()
    make_pairs(5)
    (worker,) = crowd_workers(1)
    first = s.crowd_next(worker=worker)
    again = s.crowd_next(worker=worker)
    assert first.pair is not None and first.prefetch is not None and first.pair != first.prefetch
    assert (again.pair.id, again.prefetch.id) == (first.pair.id, first.prefetch.id)
    assert first.empty_reason is None and first.today == 0
    assert first.queue_left == 5


def test_queue_prefers_pairs_that_already_have_votes(crowd_workers):
    s = _services()
    pairs = make_pairs(6)
    w1, w2 = crowd_workers(2)
    # w1 votes on the last pair only; w2 must be handed that one first.
    s.crowd_next(worker=w1)
    from curation.crowd.models import CrowdReservation

    CrowdReservation.objects.filter(user=w1).delete()
    s._reserve(pairs[-1].id, w1, timezone.now())
    s.crowd_vote_submit(worker=w1, pair_id=pairs[-1].id, value="yes", duration_ms=3000)
    assert s.crowd_next(worker=w2).pair.id == pairs[-1].id


def test_a_worker_never_gets_a_pair_twice(crowd_workers):
    s = _services()
    make_pairs(4)
    (worker,) = crowd_workers(1)
    seen = []
    while True:
        state = s.crowd_next(worker=worker)
        if state.pair is None:
            break
        seen.append(state.pair.id)
        if len(seen) % 2:
            s.crowd_vote_submit(worker=worker, pair_id=state.pair.id, value="no", duration_ms=2000)
        else:
            s.crowd_skip(worker=worker, pair_id=state.pair.id)
    assert len(seen) == 4 == len(set(seen))
    assert "No pairs are waiting for you" in state.empty_reason and state.empty_code == s.EMPTY_NOTHING


def test_at_most_k_workers_hold_or_vote_a_pair(settings, crowd_workers):
    s = _services()
    settings.CROWD_VOTES_PER_PAIR = 2
    (pair,) = make_pairs(1)
    w1, w2, w3 = crowd_workers(3)
    assert s.crowd_next(worker=w1).pair.id == pair.id
    assert s.crowd_next(worker=w2).pair.id == pair.id
    assert s.crowd_next(worker=w3).pair is None  # both places are held
    s.crowd_vote_submit(worker=w1, pair_id=pair.id, value="yes", duration_ms=2000)
    assert s.crowd_next(worker=w3).pair is None
    # w2's reservation lapses: the place is free for w3.
    from curation.crowd.models import CrowdReservation

    CrowdReservation.objects.filter(user=w2).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert s.crowd_next(worker=w3).pair.id == pair.id
    s.crowd_vote_submit(worker=w3, pair_id=pair.id, value="yes", duration_ms=2000)
    pair.refresh_from_db()
    assert pair.crowd_votes == 2
    # w2 comes back late: the pair is full, the vote is refused with a clear message.
    with pytest.raises(s.PairNotAvailable, match=f"Your time on pair {pair.id} ran out"):
        s.crowd_vote_submit(worker=w2, pair_id=pair.id, value="no", duration_ms=2000)
    assert pair.labels.count() == 2


def test_a_lapsed_reservation_still_counts_when_nobody_took_the_place(crowd_workers):
    s = _services()
    (pair,) = make_pairs(1)
    (worker,) = crowd_workers(1)
    s.crowd_next(worker=worker)
    from curation.crowd.models import CrowdReservation

    CrowdReservation.objects.filter(user=worker).update(reserved_until=timezone.now() - timedelta(seconds=5))
    outcome = s.crowd_vote_submit(worker=worker, pair_id=pair.id, value="yes", duration_ms=4000)
    assert outcome.created and outcome.label.kind == "crowd"


def test_gold_pairs_are_mixed_in_at_the_set_rate_only_while_work_remains(settings, crowd_workers, stylist):
    s = _services()
    settings.CROWD_GOLD_RATE = 0.3
    make_pairs(300)
    gold = make_gold(150, stylist)
    (worker,) = crowd_workers(1)
    rng = random.Random(5)
    served_gold = served = 0
    for _ in range(200):
        state = s.crowd_next(worker=worker, rng=rng)
        served += 1
        served_gold += state.pair.id in gold
        # Right on gold (this test is about the mix, not about suspension).
        s.crowd_vote_submit(worker=worker, pair_id=state.pair.id, value=gold.get(state.pair.id, "yes"), duration_ms=2500)
    assert 0.2 <= served_gold / served <= 0.4

    settings.CROWD_GOLD_RATE = 1.0
    from curation.pairs.models import CandidatePair

    CandidatePair.objects.filter(audience="crowd").update(state="retired")  # no real work left
    state = s.crowd_next(worker=worker, rng=rng)
    assert state.pair is None or state.pair.id not in gold  # no gold without work
    assert state.pair is None


def test_gold_answers_are_scored_and_a_bad_worker_is_suspended_politely(crowd_workers, stylist):
    s = _services()
    from curation.crowd.models import AggregatedLabel, WorkerProfile
    from curation.pairs.models import CandidatePair, PairLabel

    work = make_pairs(3)
    gold = make_gold(6, stylist)
    bad, good1, good2 = crowd_workers(3)
    # The bad worker voted on a pair that was already settled with two other votes.
    for w in (bad, good1, good2):
        s._reserve(work[0].id, w, timezone.now())
        s.crowd_vote_submit(worker=w, pair_id=work[0].id, value="yes", duration_ms=3000)
    s.crowd_aggregate()
    assert CandidatePair.objects.get(pk=work[0].id).state == "decided"

    answers = []
    for gold_id, truth in list(gold.items())[:4]:
        s._reserve(gold_id, bad, timezone.now())
        wrong = "no" if truth == "yes" else "yes"
        answers.append(s.crowd_vote_submit(worker=bad, pair_id=gold_id, value=wrong, duration_ms=3000))
    assert [a.label.gold_correct for a in answers] == [False] * 4
    assert [a.worker_suspended for a in answers] == [False, False, False, True]
    profile = WorkerProfile.objects.get(user=bad)
    assert profile.status == "suspended" and "0/4" in profile.suspended_reason

    # Votes kept, no longer counted: the settled pair goes back to the queue for another vote.
    assert PairLabel.objects.filter(user=bad).count() == 5
    pair = CandidatePair.objects.get(pk=work[0].id)
    assert (pair.crowd_votes, pair.state) == (2, "open")
    assert not AggregatedLabel.objects.filter(pair=pair).exists()

    state = s.crowd_next(worker=bad)
    assert state.pair is None and state.empty_reason == s.SUSPENDED_MESSAGE
    assert "paused" in state.empty_reason and "Thank you" in state.empty_reason
    with pytest.raises(s.WorkerSuspended):
        s.crowd_vote_submit(worker=bad, pair_id=work[1].id, value="yes")


def test_reinstating_counts_the_votes_again_with_a_fresh_gold_record(crowd_workers, stylist, make_user):
    s = _services()
    from curation.crowd.models import WorkerProfile
    from curation.pairs.models import CandidatePair

    (pair,) = make_pairs(1)
    (worker,) = crowd_workers(1)
    s._reserve(pair.id, worker, timezone.now())
    s.crowd_vote_submit(worker=worker, pair_id=pair.id, value="yes", duration_ms=3000)
    profile = s.worker_suspend(profile=s.worker_profile_get(user=worker), reason="test")
    assert CandidatePair.objects.get(pk=pair.id).crowd_votes == 0
    admin = make_user("admin", "boss")
    profile = s.worker_reinstate(profile=profile, by=admin)
    assert (profile.status, profile.reinstated_by, profile.gold_answered) == ("active", admin, 0)
    assert profile.gold_counted_since is not None
    assert CandidatePair.objects.get(pk=pair.id).crowd_votes == 1
    with pytest.raises(s.CrowdError, match="is not suspended"):
        s.worker_reinstate(profile=WorkerProfile.objects.get(pk=profile.pk), by=admin)


def test_daily_cap_stops_the_queue_with_a_clear_message(settings, crowd_workers):
    s = _services()
    settings.CROWD_DAILY_CAP = 2
    make_pairs(5)
    (worker,) = crowd_workers(1)
    for _ in range(2):
        state = s.crowd_next(worker=worker)
        s.crowd_vote_submit(worker=worker, pair_id=state.pair.id, value="yes", duration_ms=2000)
    state = s.crowd_next(worker=worker)
    assert state.pair is None and "the daily limit is 2" in state.empty_reason
    other = make_pairs(1)[0]
    s._reserve(other.id, worker, timezone.now())
    with pytest.raises(s.DailyCapReached, match="You have made 2 decisions today"):
        s.crowd_vote_submit(worker=worker, pair_id=other.id, value="yes")


def test_submit_is_idempotent_and_flags_answers_that_are_too_fast(crowd_workers):
    s = _services()
    make_pairs(2)
    (worker,) = crowd_workers(1)
    state = s.crowd_next(worker=worker)
    first = s.crowd_vote_submit(worker=worker, pair_id=state.pair.id, value="yes", duration_ms=400)
    again = s.crowd_vote_submit(worker=worker, pair_id=state.pair.id, value="no", duration_ms=5000)
    assert first.created and not again.created and again.label.pk == first.label.pk
    first.label.refresh_from_db()
    assert (first.label.value, first.label.too_fast) == ("yes", True)
    slow = s.crowd_vote_submit(worker=worker, pair_id=state.prefetch.id, value="no", duration_ms=1500)
    assert slow.label.too_fast is False
    state.pair.refresh_from_db()
    assert state.pair.crowd_votes == 1


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"value": "maybe"}, "value: 'maybe' is not one of yes, no"),
        ({"reasons": ["ugly"]}, r"reasons: unknown tag\(s\) 'ugly'; expected some of colour_clash"),
        ({"duration_ms": -5}, "duration_ms: -5 is negative"),
        ({"duration_ms": "soon"}, "duration_ms: 'soon' is not an integer"),
        ({"pair_id": "abc"}, "pair_id must be an integer"),
    ],
)
def test_bad_votes_are_refused_naming_the_field(crowd_workers, fields, message):
    s = _services()
    make_pairs(1)
    (worker,) = crowd_workers(1)
    state = s.crowd_next(worker=worker)
    vote = {"pair_id": state.pair.id, "value": "yes", "duration_ms": 2000} | fields
    with pytest.raises(s.InvalidVote, match=message):
        s.crowd_vote_submit(worker=worker, **vote)
    from curation.pairs.models import PairLabel

    assert PairLabel.objects.count() == 0


def test_voting_on_a_pair_not_given_to_you_is_refused(crowd_workers):
    s = _services()
    pairs = make_pairs(1)
    (worker,) = crowd_workers(1)
    with pytest.raises(s.PairNotAvailable, match=f"Pair {pairs[0].id} was not given to you"):
        s.crowd_vote_submit(worker=worker, pair_id=pairs[0].id, value="yes")
    with pytest.raises(s.PairNotAvailable, match="not reserved for you"):
        s.crowd_skip(worker=worker, pair_id=pairs[0].id)


def test_undo_takes_back_the_latest_vote_and_holds_the_pair_again(crowd_workers, stylist):
    s = _services()
    from curation.crowd.models import CrowdReservation, WorkerProfile
    from curation.pairs.models import CandidatePair, PairLabel

    with pytest.raises(s.NothingToUndo, match="Nothing to undo"):
        s.crowd_undo(worker=crowd_workers(1, prefix="idle")[0])
    (pair,) = make_pairs(1)
    gold = make_gold(1, stylist)
    (worker,) = crowd_workers(1)
    s._reserve(pair.id, worker, timezone.now())
    s.crowd_vote_submit(worker=worker, pair_id=pair.id, value="yes", duration_ms=3000)
    gold_id = next(iter(gold))
    s._reserve(gold_id, worker, timezone.now())
    s.crowd_vote_submit(worker=worker, pair_id=gold_id, value=gold[gold_id], duration_ms=3000)
    assert WorkerProfile.objects.get(user=worker).gold_correct == 1

    assert s.crowd_undo(worker=worker).id == gold_id
    assert (WorkerProfile.objects.get(user=worker).gold_answered, WorkerProfile.objects.get(user=worker).gold_correct) == (0, 0)
    assert s.crowd_undo(worker=worker).id == pair.id
    assert CandidatePair.objects.get(pk=pair.id).crowd_votes == 0
    assert PairLabel.objects.filter(user=worker).count() == 0
    assert set(CrowdReservation.objects.filter(user=worker).values_list("pair_id", flat=True)) == {pair.id, gold_id}


def test_undo_is_refused_once_the_crowd_settled_the_pair(settings, crowd_workers):
    s = _services()
    settings.CROWD_VOTES_PER_PAIR = 1
    (pair,) = make_pairs(1)
    (worker,) = crowd_workers(1)
    s.crowd_next(worker=worker)
    s.crowd_vote_submit(worker=worker, pair_id=pair.id, value="yes", duration_ms=3000)
    s.crowd_aggregate()
    with pytest.raises(s.NothingToUndo, match="already been settled"):
        s.crowd_undo(worker=worker)
