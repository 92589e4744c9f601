"""Many labelers at once on PostgreSQL: no pair handed to two people, every label stored once."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from django.db import connection, connections

from curation.pairs import services
from curation.pairs.models import CandidatePair, PairLabel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")


def _run_threads(n, target):
    barrier = threading.Barrier(n)
    errors = []

    def wrapped(i):
        try:
            barrier.wait(timeout=10)
            target(i)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_concurrent_labelers_never_share_a_pair_and_each_label_is_stored_once(catalog, make_pairs, make_user):
    pairs = make_pairs(catalog, 28)
    users = [make_user("stylist", f"stylist{i}") for i in range(12)]
    received = defaultdict(set)  # user id -> every pair id they were handed
    submitted = defaultdict(list)

    def work(i):
        user = users[i]
        while True:
            state = services.stylist_queue_next(user=user)
            received[user.pk].update(p.pk for p in state.held)
            if state.current is None:
                return
            pid = state.current.pk
            # Submit twice, as a double click would: one label.
            services.stylist_label_submit(user=user, pair_id=pid, value="yes" if pid % 2 else "no")
            services.stylist_label_submit(user=user, pair_id=pid, value="yes" if pid % 2 else "no")
            submitted[user.pk].append(pid)

    _run_threads(len(users), work)

    owners = defaultdict(set)
    for uid, pids in received.items():
        for pid in pids:
            owners[pid].add(uid)
    shared = {pid: us for pid, us in owners.items() if len(us) > 1}
    assert shared == {}
    all_submitted = [pid for pids in submitted.values() for pid in pids]
    assert sorted(all_submitted) == sorted(p.pk for p in pairs)
    assert PairLabel.objects.count() == len(pairs)
    assert set(PairLabel.objects.values_list("pair_id", flat=True)) == {p.pk for p in pairs}
    assert CandidatePair.objects.filter(state="open").count() == 0


def test_the_same_decision_sent_by_many_requests_at_once_is_one_label(catalog, make_pairs, make_user):
    pair = make_pairs(catalog, 1)[0]
    user = make_user("stylist", "alice")
    label_ids = []

    def work(i):
        label, _ = services.stylist_label_submit(user=user, pair_id=pair.pk, value="yes")
        label_ids.append(label.pk)

    _run_threads(8, work)
    assert len(set(label_ids)) == 1
    assert PairLabel.objects.filter(pair=pair).count() == 1
