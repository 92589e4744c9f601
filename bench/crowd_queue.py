"""The crowd queue under concurrent workers, and the cost of aggregating their votes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/curation_crowd_bench .venv/bin/python bench/crowd_queue.py

Loads --pairs open crowd pairs (and --gold gold pairs) into a dedicated database (created and
migrated if missing; its name must contain "bench" because the pairs, crowd and catalog tables
are emptied), then starts --clients crowd-worker processes at once. Each asks for its next pair
(reservation, counters and the blind JSON payload: everything but HTTP), votes, and asks again,
--requests times. Then runs the aggregation (Dawid-Skene over every valid vote) once.

Prints one JSON line: open_pairs, clients, votes, next_p50/p95_ms, submit_p50/p95_ms,
queue_exec_ms (planning + execution of the reservation query in PostgreSQL, EXPLAIN ANALYZE),
over_k (pairs with more than CROWD_VOTES_PER_PAIR valid votes: must be 0), aggregate_s (one
aggregation run, crowd-kit already imported) and aggregated (pairs). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

from bench_support import ensure_database, percentile, progress

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/curation_crowd_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def load(n_pairs: int, n_gold: int, clients: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from curation.accounts.services import user_create_with_role
    from curation.catalog.models import Category, Product
    from curation.pairs.models import CandidatePair, PairLabel

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE crowd_crowdreservation, crowd_aggregatedlabel, crowd_workerprofile, pairs_pairlabel, pairs_pairskip, "
            "pairs_candidatepair, catalog_product, catalog_category RESTART IDENTITY CASCADE"
        )
    get_user_model().objects.filter(username__startswith="bench-crowd-").delete()
    root = Category.objects.create(name="Apparel", path="Apparel", level=0)
    n_products = 2
    while n_products * (n_products - 1) // 2 < n_pairs + n_gold:
        n_products += 1
    Product.objects.bulk_create(
        [Product(sku=f"C{i:07d}", title=f"Bench product {i}", brand="Bench", category=root, colour="Black") for i in range(n_products)],
        batch_size=2000,
    )
    ids = list(Product.objects.order_by("id").values_list("id", flat=True))
    rng = random.Random(0)
    rows, made = [], 0
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            gold = made >= n_pairs
            rows.append(
                CandidatePair(a_id=a, b_id=b, source="exploration", audience="stylist" if gold else "crowd",
                              state="decided" if gold else "open", is_gold=gold, priority=rng.random())
            )
            made += 1
            if made == n_pairs + n_gold:
                break
        if made == n_pairs + n_gold:
            break
    CandidatePair.objects.bulk_create(rows, batch_size=5000)
    stylist = user_create_with_role(username="bench-crowd-stylist", password="bench-pw-12345", role="stylist")
    PairLabel.objects.bulk_create(
        [PairLabel(pair=p, user=stylist, kind="stylist", value=rng.choice(["yes", "no"])) for p in CandidatePair.objects.filter(is_gold=True)]
    )
    for i in range(clients):
        user_create_with_role(username=f"bench-crowd-{i}", password="bench-pw-12345", role="crowd")
    with connection.cursor() as cur:
        cur.execute("ANALYZE pairs_candidatepair")
        cur.execute("ANALYZE pairs_pairlabel")
    progress(f"loaded {n_pairs} crowd pairs, {n_gold} gold pairs, {clients} workers")


def worker(args) -> dict:
    index, requests, start_at = args
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from curation.crowd import services
    from curation.pairs.selectors import pair_payload

    user = get_user_model().objects.get(username=f"bench-crowd-{index}")
    services.worker_profile_get(user=user)  # open the connection before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    rng = random.Random(index)
    next_ms, submit_ms = [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        state = services.crowd_next(worker=user, rng=rng)
        payload = pair_payload(state.pair, blind=True)
        next_ms.append((time.perf_counter() - t0) * 1000)
        if payload is None:
            break
        t0 = time.perf_counter()
        services.crowd_vote_submit(worker=user, pair_id=payload["id"], value=rng.choice(["yes", "no"]), duration_ms=2500)
        submit_ms.append((time.perf_counter() - t0) * 1000)
    connections.close_all()
    return {"next_ms": next_ms, "submit_ms": submit_ms}


def queue_exec_ms(samples: int) -> list[float]:
    """Planning + execution of the crowd reservation query inside PostgreSQL (EXPLAIN ANALYZE,
    rolled back): the query's own cost at this size, whatever the machine adds around it."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from curation.crowd import services

    user = get_user_model().objects.get(username="bench-crowd-0")
    sql = services._queue_sql(select="p.id", gold=False, capacity=True, lock=True)
    params = services._queue_params(user, timezone.now(), gold=False)
    out = []
    with connection.cursor() as cur:
        for _ in range(samples):
            cur.execute("BEGIN")
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cur.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            out.append(plan[0]["Execution Time"] + plan[0]["Planning Time"])
            cur.execute("ROLLBACK")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--gold", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="decisions per worker")
    args = parser.parse_args()

    ensure_database(os.environ["DATABASE_URL"], script="crowd_queue.py")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    load(args.pairs, args.gold, args.clients)
    connections.close_all()

    start_at = time.time() + 1.0
    ctx = mp.get_context("spawn")
    progress(f"{args.clients} workers x {args.requests} decisions")
    with ctx.Pool(args.clients) as pool:
        results = pool.map(worker, [(i, args.requests, start_at) for i in range(args.clients)])
    next_ms = [v for r in results for v in r["next_ms"]]
    submit_ms = [v for r in results for v in r["submit_ms"]]

    from django.db.models import Count

    from curation.crowd import services
    from curation.pairs.models import PairLabel

    over_k = (
        PairLabel.objects.filter(kind="crowd", pair__is_gold=False)
        .values("pair_id")
        .annotate(n=Count("id"))
        .filter(n__gt=settings.CROWD_VOTES_PER_PAIR)
        .count()
    )
    queue_exec = queue_exec_ms(samples=5)
    progress("aggregating")
    import crowdkit.aggregation  # noqa: F401 - a worker process imports it once; time the work, not the import

    t0 = time.perf_counter()
    report = services.crowd_aggregate()
    aggregate_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "bench": "crowd_queue",
                "open_pairs": args.pairs,
                "gold_pairs": args.gold,
                "clients": args.clients,
                "votes": len(submit_ms),
                "next_p50_ms": round(percentile(next_ms, 0.5), 2),
                "next_p95_ms": round(percentile(next_ms, 0.95), 2),
                "submit_p50_ms": round(percentile(submit_ms, 0.5), 2),
                "submit_p95_ms": round(percentile(submit_ms, 0.95), 2),
                "queue_exec_ms": round(percentile(queue_exec, 0.5), 2),
                "over_k": over_k,
                "aggregate_s": round(aggregate_s, 2),
                "aggregated": report.aggregated,
            }
        )
    )


if __name__ == "__main__":
    main()
