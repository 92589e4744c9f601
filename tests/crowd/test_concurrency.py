"""Many workers asking at once never push a pair past k valid votes (PostgreSQL row locks)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from tests.crowd.conftest import make_pairs


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_k_votes_are_never_exceeded_when_many_workers_ask_at_once(settings, crowd_workers):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED (SQLite serialises writers instead)")
    from curation.crowd.services import crowd_next, crowd_vote_submit
    from curation.pairs.models import PairLabel

    settings.CROWD_VOTES_PER_PAIR = 3
    settings.CROWD_GOLD_RATE = 0.0
    pairs = make_pairs(6)
    workers = crowd_workers(16)
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []
    served = Counter()

    def work(worker):
        try:
            start.wait()
            while True:
                state = crowd_next(worker=worker)
                if state.pair is None:
                    return
                served[state.pair.id] += 1
                crowd_vote_submit(worker=worker, pair_id=state.pair.id, value="yes", duration_ms=2000)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    votes = Counter(PairLabel.objects.filter(kind="crowd").values_list("pair_id", flat=True))
    assert votes == {p.id: 3 for p in pairs}
    assert all(n == 3 for n in served.values())
