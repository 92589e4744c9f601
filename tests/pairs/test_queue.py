"""The stylist queue: reservations, prefetch, skip, submit, undo, counters and empty reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from curation.pairs import queue, services
from curation.pairs.models import CandidatePair, PairLabel, PairSkip

pytestmark = pytest.mark.django_db


def test_next_reserves_current_and_prefetch_in_priority_order(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 5)
    alice = make_user("stylist", "alice")
    state = services.stylist_queue_next(user=alice)
    assert [p.pk for p in state.held] == [pairs[0].pk, pairs[1].pk]
    assert state.current.pk == pairs[0].pk and state.prefetch.pk == pairs[1].pk
    rows = CandidatePair.objects.filter(pk__in=[pairs[0].pk, pairs[1].pk])
    assert all(r.reserved_by_id == alice.pk and r.reserved_until > timezone.now() for r in rows)
    assert state.empty_code is None


def test_two_stylists_never_get_the_same_pair(catalog, make_pairs, make_user):
    make_pairs(catalog, 5)
    alice, bob = make_user("stylist", "alice"), make_user("stylist", "bob")
    a = {p.pk for p in services.stylist_queue_next(user=alice).held}
    b = {p.pk for p in services.stylist_queue_next(user=bob).held}
    assert len(a) == 2 and len(b) == 2 and not a & b


def test_asking_again_returns_the_same_pairs_and_extends_the_reservation(catalog, make_pairs, make_user, settings):
    make_pairs(catalog, 5)
    alice = make_user("stylist", "alice")
    first = services.stylist_queue_next(user=alice)
    CandidatePair.objects.filter(reserved_by=alice).update(reserved_until=timezone.now() + timedelta(seconds=5))
    again = services.stylist_queue_next(user=alice)
    assert [p.pk for p in again.held] == [p.pk for p in first.held]
    until = CandidatePair.objects.get(pk=first.current.pk).reserved_until
    assert until > timezone.now() + timedelta(seconds=settings.PAIR_RESERVATION_SECONDS - 5)


def test_expired_reservations_return_to_the_queue(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 2)
    alice, bob = make_user("stylist", "alice"), make_user("stylist", "bob")
    services.stylist_queue_next(user=alice)
    assert services.stylist_queue_next(user=bob).held == []
    CandidatePair.objects.filter(reserved_by=alice).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert [p.pk for p in services.stylist_queue_next(user=bob).held] == [pairs[0].pk, pairs[1].pk]


def test_a_skipped_pair_goes_to_others_but_not_back_to_the_same_stylist_today(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 3)
    alice, bob = make_user("stylist", "alice"), make_user("stylist", "bob")
    services.stylist_queue_next(user=alice)
    services.pair_skip(user=alice, pair_id=pairs[0].pk)
    assert CandidatePair.objects.get(pk=pairs[0].pk).reserved_by_id is None
    held = [p.pk for p in services.stylist_queue_next(user=alice).held]
    assert pairs[0].pk not in held and held == [pairs[1].pk, pairs[2].pk]
    assert services.stylist_queue_next(user=bob).current.pk == pairs[0].pk
    # Tomorrow the skip no longer counts.
    PairSkip.objects.filter(user=alice).update(day=timezone.localdate() - timedelta(days=1))
    CandidatePair.objects.update(reserved_by=None, reserved_until=None, reserved_at=None)
    assert services.stylist_queue_next(user=alice).current.pk == pairs[0].pk


def test_skipping_twice_is_one_skip(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 1)
    alice = make_user("stylist", "alice")
    services.pair_skip(user=alice, pair_id=pairs[0].pk)
    services.pair_skip(user=alice, pair_id=pairs[0].pk)
    assert PairSkip.objects.filter(user=alice).count() == 1


def test_submit_closes_the_pair_as_gold_and_is_idempotent(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 3)
    alice = make_user("stylist", "alice")
    services.stylist_queue_next(user=alice)
    label, created = services.stylist_label_submit(
        user=alice, pair_id=pairs[0].pk, value="yes", reasons=["style", "colour_clash", "style"], note=" ok ", duration_ms=1234
    )
    assert created
    assert (label.kind, label.value, label.reasons, label.note, label.duration_ms) == ("stylist", "yes", ["colour_clash", "style"], "ok", 1234)
    pair = CandidatePair.objects.get(pk=pairs[0].pk)
    assert pair.state == "decided" and pair.is_gold and pair.reserved_by_id is None
    again, created_again = services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, value="no")
    assert not created_again and again.pk == label.pk and again.value == "yes"
    assert PairLabel.objects.filter(pair=pairs[0]).count() == 1
    # The decided pair leaves the queue; the prefetched pair is now the current one.
    state = services.stylist_queue_next(user=alice)
    assert [p.pk for p in state.held] == [pairs[1].pk, pairs[2].pk]
    assert state.today == 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"value": "maybe"}, "value"),
        ({"value": "yes", "reasons": ["ugly"]}, "reasons"),
        ({"value": "yes", "note": "x" * 2001}, "note"),
        ({"value": "yes", "duration_ms": -5}, "duration_ms"),
        ({"value": "yes", "duration_ms": "soon"}, "duration_ms"),
    ],
)
def test_submit_rejects_bad_input_naming_the_field(catalog, make_pairs, make_user, kwargs, field):
    pairs = make_pairs(catalog, 1)
    alice = make_user("stylist", "alice")
    with pytest.raises(services.LabelError, match=f"^{field}:"):
        services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, **kwargs)
    assert not PairLabel.objects.exists()


def test_submit_for_unknown_or_retired_pair_is_refused(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 1)
    alice = make_user("stylist", "alice")
    with pytest.raises(services.LabelError, match="no candidate pair with id 999999"):
        services.stylist_label_submit(user=alice, pair_id=999999, value="yes")
    CandidatePair.objects.filter(pk=pairs[0].pk).update(state="retired")
    with pytest.raises(services.LabelError, match="retired"):
        services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, value="yes")


def test_undo_reopens_the_last_decision_and_shows_it_first(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 4)
    alice = make_user("stylist", "alice")
    services.stylist_queue_next(user=alice)
    services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, value="yes")
    services.stylist_queue_next(user=alice)
    services.stylist_label_submit(user=alice, pair_id=pairs[1].pk, value="no")
    services.stylist_queue_next(user=alice)  # holds pairs 2 and 3
    undone = services.stylist_label_undo(user=alice)
    assert undone.pk == pairs[1].pk
    assert not PairLabel.objects.filter(pair=pairs[1]).exists()
    pair = CandidatePair.objects.get(pk=pairs[1].pk)
    assert pair.state == "open" and not pair.is_gold and pair.reserved_by_id == alice.pk
    assert [p.pk for p in services.stylist_queue_next(user=alice).held][:2] == [pairs[1].pk, pairs[2].pk]
    # A second undo reaches the decision before.
    assert services.stylist_label_undo(user=alice).pk == pairs[0].pk
    with pytest.raises(services.NothingToUndo):
        services.stylist_label_undo(user=alice)


def test_undo_only_reaches_own_recent_decisions(catalog, make_pairs, make_user, settings):
    pairs = make_pairs(catalog, 2)
    alice, bob = make_user("stylist", "alice"), make_user("stylist", "bob")
    services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, value="yes")
    with pytest.raises(services.NothingToUndo):
        services.stylist_label_undo(user=bob)
    PairLabel.objects.filter(user=alice).update(created_at=timezone.now() - timedelta(seconds=settings.PAIR_UNDO_SECONDS + 1))
    with pytest.raises(services.NothingToUndo, match="no decision from the last 15 min"):
        services.stylist_label_undo(user=alice)
    assert PairLabel.objects.filter(user=alice).count() == 1


def test_counters_count_todays_decisions_and_cap_the_queue_left(catalog, make_pairs, make_user, monkeypatch):
    pairs = make_pairs(catalog, 6)
    alice = make_user("stylist", "alice")
    services.stylist_label_submit(user=alice, pair_id=pairs[0].pk, value="yes")
    old, _ = services.stylist_label_submit(user=alice, pair_id=pairs[1].pk, value="no")
    PairLabel.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1, hours=1))
    counts = services.stylist_counts(user=alice)
    assert counts == {"today": 1, "queue_left": 4, "queue_left_capped": False}
    monkeypatch.setattr(queue, "QUEUE_LEFT_CAP", 3)
    assert services.stylist_counts(user=alice)["queue_left"] == 3
    assert services.stylist_counts(user=alice)["queue_left_capped"] is True


def test_empty_queue_says_why(catalog, make_pairs, make_user):
    alice, bob = make_user("stylist", "alice"), make_user("stylist", "bob")
    state = services.stylist_queue_next(user=alice)
    assert state.held == [] and state.empty_code == queue.EMPTY_NOTHING
    assert "Nothing to label" in state.empty_reason
    pairs = make_pairs(catalog, 2)
    services.stylist_queue_next(user=bob)
    state = services.stylist_queue_next(user=alice)
    assert state.empty_code == queue.EMPTY_RESERVED and "reserved by someone else" in state.empty_reason
    CandidatePair.objects.update(reserved_by=None, reserved_until=None)
    for p in pairs:
        services.pair_skip(user=alice, pair_id=p.pk)
    assert services.stylist_queue_next(user=alice).empty_code == queue.EMPTY_SKIPPED


def test_reserve_next_never_hands_back_a_pair_the_person_labeled(catalog, make_pairs, make_user):
    """The crowd case: a pair stays open after one vote, but not for the voter."""
    pairs = make_pairs(catalog, 2, audience="crowd")
    worker = make_user("crowd", "w1")
    services.pair_label_record(user=worker, pair_id=pairs[0].pk, kind="crowd", value="yes")
    CandidatePair.objects.update(reserved_by=None, reserved_until=None)
    held = queue.pair_reserve_next(user=worker, audience="crowd")
    assert [p.pk for p in held] == [pairs[1].pk]


def test_reserve_next_takes_ordering_and_filter_hooks(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 4, audience="crowd")
    CandidatePair.objects.filter(pk=pairs[3].pk).update(crowd_votes=2)
    CandidatePair.objects.filter(pk=pairs[0].pk).update(is_gold=True)
    worker = make_user("crowd", "w1")
    held = queue.pair_reserve_next(
        user=worker, audience="crowd", want=1, order_by=("-crowd_votes", "id"), extra_filter=~Q(is_gold=True)
    )
    assert [p.pk for p in held] == [pairs[3].pk]
    held = queue.pair_reserve_next(user=make_user("crowd", "w2"), audience="crowd", want=1, queryset_hook=lambda qs: qs.filter(is_gold=True))
    assert [p.pk for p in held] == [pairs[0].pk]


def test_the_higher_priority_pair_is_shown_first_whatever_the_ids(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 3)
    CandidatePair.objects.filter(pk=pairs[2].pk).update(priority=5000)  # newest row, most urgent
    CandidatePair.objects.filter(pk=pairs[1].pk).update(priority=4000)
    state = services.stylist_queue_next(user=make_user("stylist", "alice"))
    assert [p.pk for p in state.held] == [pairs[2].pk, pairs[1].pk]
