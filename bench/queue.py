"""Next-pair latency of the stylist queue with a million open pairs and 32 labelers at once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/curation_bench .venv/bin/python bench/queue.py

Loads --pairs open candidate pairs with COPY into a dedicated database (created if missing; its
name must contain "bench" because the pairs and catalog tables are emptied), then starts
--clients labeler processes at once. Each asks for its next pair (the reservation, the counters
and the JSON payload the API returns: everything but HTTP), decides it, and asks again,
--requests times, after an optional think time. Prints one JSON line: open_pairs, clients,
p50_ms / p95_ms / p99_ms of "next", submit_p95_ms, select1_p50/p95_ms (a bare "SELECT 1" round
trip timed by the same clients: what the machine itself adds), db_exec_p50/p95_ms (planning +
execution of the reservation query inside PostgreSQL, after the run, from EXPLAIN ANALYZE), and
double_assignments: pairs handed to two labelers while both held them (must be 0). Progress
goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's "queue", and a script run from bench/ has
# bench/ first on its import path.
if __name__ == "queue":
    # Another bench script imported the standard "queue" and found this file: hand it the real
    # module (the import system returns what sys.modules holds once this file has run).
    import importlib.util as _ilu
    import sysconfig as _sysconfig

    _spec = _ilu.spec_from_file_location("queue", Path(_sysconfig.get_paths()["stdlib"]) / "queue.py")
    _std = _ilu.module_from_spec(_spec)
    sys.modules["queue"] = _std
    _spec.loader.exec_module(_std)
    globals().update({k: v for k, v in vars(_std).items() if not k.startswith("__")})
elif __name__ == "__main__":
    # Run as the benchmark: drop bench/ from the path before anything imports the real queue
    # (bench_support first, while bench/ is still on the path; it imports nothing at load time).
    from bench_support import ensure_database, percentile, progress  # noqa: F401

    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import argparse
import io
import json
import multiprocessing as mp
import os
import random
import statistics
import time
from collections import defaultdict

ROOT = Path(__file__).resolve().parent.parent


def load(n_pairs: int, n_products: int, seed: int) -> int:
    """Empty the pairs and catalog tables and COPY in products and n_pairs open pairs."""
    from django.db import connection

    from curation.catalog.models import Category

    rng = random.Random(seed)
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE pairs_pairlabel, pairs_pairskip, pairs_outfititem, pairs_outfit, pairs_candidatepair, "
            "crowd_aggregatedlabel, catalog_product, catalog_category RESTART IDENTITY CASCADE"
        )
    root = Category.objects.create(name="Apparel", path="Apparel", level=0)
    cats = [Category.objects.create(name=f"Group {i}", parent=root, level=1, path=f"Apparel > Group {i}") for i in range(8)]
    raw = connection.connection  # psycopg 3 connection under Django's wrapper
    progress(f"COPY {n_products} products")
    with raw.cursor() as cur:
        with cur.copy(
            "COPY catalog_product (sku, title, brand, gender, category_id, colour, season, usage, product_model, attributes, "
            "in_stock, image, image_sha256, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(n_products):
                copy.write_row((f"B{i:07d}", f"Bench product {i}", "Bench", "", cats[i % len(cats)].pk, "Black", "", "", "", "{}",
                                True, f"products/B{i:07d}.jpg", "", "now", "now"))
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM catalog_product ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
    max_pairs = len(ids) * (len(ids) - 1) // 2
    if n_pairs > max_pairs:
        sys.exit(f"--pairs {n_pairs} needs more than {n_products} products (at most {max_pairs} pairs)")
    started = time.monotonic()
    with raw.cursor() as cur:
        with cur.copy(
            "COPY pairs_candidatepair (a_id, b_id, source, audience, state, priority, crowd_votes, is_gold, created_at, updated_at) "
            "FROM STDIN"
        ) as copy:
            written = 0
            buf = io.StringIO()
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    buf.write(f"{a}\t{b}\texploration\tstylist\topen\t{rng.random():.9f}\t0\tf\tnow\tnow\n")
                    written += 1
                    if written % 50_000 == 0:
                        copy.write(buf.getvalue())
                        buf = io.StringIO()
                        progress(f"COPY pairs {written}/{n_pairs} ({written / (time.monotonic() - started):.0f}/s)")
                    if written == n_pairs:
                        break
                if written == n_pairs:
                    break
            copy.write(buf.getvalue())
    with connection.cursor() as cur:
        cur.execute("ANALYZE catalog_product")
        cur.execute("ANALYZE pairs_candidatepair")
    progress(f"loaded {written} pairs in {time.monotonic() - started:.0f}s")
    return written


def labeler(args) -> dict:
    """One stylist: next, decide, next... Returns latencies and every pair id it was handed."""
    index, requests, think_ms, start_at = args
    from django.contrib.auth import get_user_model
    from django.db import connections

    from curation.pairs import selectors, services

    user = get_user_model().objects.get(username=f"bench-stylist-{index}")
    services.stylist_counts(user=user)  # open the connection before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    next_ms, submit_ms, roundtrip_ms, handed = [], [], [], []
    rng = random.Random(index)
    cursor = connections["default"].cursor()
    for _ in range(requests):
        # The cost of one trivial round trip under the same load: what the machine adds.
        t0 = time.perf_counter()
        cursor.execute("SELECT 1")
        cursor.fetchone()
        roundtrip_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        state = services.stylist_queue_next(user=user)
        payload = {"pair": selectors.pair_payload(state.current), "prefetch": selectors.pair_payload(state.prefetch)}
        next_ms.append((time.perf_counter() - t0) * 1000)
        handed.append([p.pk for p in state.held])
        if payload["pair"] is None:
            break
        if think_ms:
            time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
        t0 = time.perf_counter()
        services.stylist_label_submit(user=user, pair_id=payload["pair"]["id"], value=rng.choice(["yes", "no"]), duration_ms=think_ms)
        submit_ms.append((time.perf_counter() - t0) * 1000)
    connections.close_all()
    return {"user": index, "next_ms": next_ms, "submit_ms": submit_ms, "roundtrip_ms": roundtrip_ms, "handed": handed}


def reservation_exec_ms(samples: int) -> list[float]:
    """Server-side execution time of the reservation pick (EXPLAIN ANALYZE, rolled back): how
    the queue's own query behaves at this size, whatever the machine adds around it."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from curation.pairs import queue

    user = get_user_model().objects.get(username="bench-stylist-0")
    qs = queue.queue_available(user=user, audience="stylist").order_by("-priority", "id")
    sql, params = qs.values("pk")[:2].query.sql_with_params()
    out = []
    with connection.cursor() as cur:
        for _ in range(samples):
            cur.execute("BEGIN")
            cur.execute('EXPLAIN (ANALYZE, FORMAT JSON) ' + sql + ' FOR UPDATE OF "pairs_candidatepair" SKIP LOCKED', params)
            plan = cur.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            out.append(plan[0]["Execution Time"] + plan[0]["Planning Time"])
            cur.execute("ROLLBACK")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=1_500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=150, help="next-pair requests per client")
    parser.add_argument("--think-ms", type=int, default=0, help="mean pause between showing a pair and deciding (0: back to back)")
    parser.add_argument("--keep", action="store_true", help="reuse the pairs of an earlier run when enough are open")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/curation_bench")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    ensure_database(os.environ["DATABASE_URL"], script="queue.py")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    from curation.accounts.services import user_create_with_role
    from curation.pairs.models import CandidatePair, PairLabel, PairSkip

    call_command("migrate", verbosity=0)
    open_pairs = 0
    if args.keep:
        # Undo an earlier run's decisions instead of reloading a million rows.
        PairLabel.objects.filter(user__username__startswith="bench-stylist-").delete()
        PairSkip.objects.filter(user__username__startswith="bench-stylist-").delete()
        CandidatePair.objects.exclude(state="open").update(state="open", is_gold=False)
        open_pairs = CandidatePair.objects.filter(state="open", audience="stylist").count()
    if open_pairs < args.pairs:
        load(args.pairs, args.products, args.seed)
    # Reservations of an earlier run would hide pairs; hand everything back.
    CandidatePair.objects.filter(reserved_by__isnull=False).update(reserved_by=None, reserved_until=None, reserved_at=None)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE pairs_candidatepair")  # autocommit: VACUUM cannot run in a transaction
    open_pairs = CandidatePair.objects.filter(state="open", audience="stylist").count()
    for i in range(args.clients):
        user_create_with_role(username=f"bench-stylist-{i}", password="bench-password-1", role="stylist")
    connections.close_all()  # forked labelers open their own connections

    start_at = time.time() + 2.0
    ctx = mp.get_context("fork")
    progress(f"{args.clients} labelers x {args.requests} next-pair requests on {open_pairs} open pairs")
    wall = time.monotonic()
    with ctx.Pool(args.clients) as pool:
        results = pool.map(labeler, [(i, args.requests, args.think_ms, start_at) for i in range(args.clients)])
    wall = time.monotonic() - wall - 2.0

    db_exec_ms = reservation_exec_ms(samples=40)
    next_ms = [v for r in results for v in r["next_ms"]]
    submit_ms = [v for r in results for v in r["submit_ms"]]
    roundtrip_ms = [v for r in results for v in r["roundtrip_ms"]]
    holders = defaultdict(set)
    for r in results:
        for held in r["handed"]:
            for pid in held:
                holders[pid].add(r["user"])
    double = sum(1 for users in holders.values() if len(users) > 1)
    print(
        json.dumps(
            {
                "bench": "queue",
                "database": connection.vendor,
                "open_pairs": open_pairs,
                "clients": args.clients,
                "requests": len(next_ms),
                "think_ms": args.think_ms,
                "p50_ms": round(statistics.median(next_ms), 2),
                "p95_ms": round(percentile(next_ms, 0.95), 2),
                "p99_ms": round(percentile(next_ms, 0.99), 2),
                "submit_p95_ms": round(percentile(submit_ms, 0.95), 2),
                "select1_p50_ms": round(statistics.median(roundtrip_ms), 2),
                "select1_p95_ms": round(percentile(roundtrip_ms, 0.95), 2),
                "throughput_per_s": round(len(next_ms) / max(wall, 1e-9), 1),
                "double_assignments": double,
                "db_exec_p50_ms": round(statistics.median(db_exec_ms), 3),
                "db_exec_p95_ms": round(percentile(db_exec_ms, 0.95), 3),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
