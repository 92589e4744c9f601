"""Similar-items endpoint latency and recall with 300,000 indexed products and 16 clients.

    .venv/bin/python bench/similar.py      # DATABASE_URL defaults to .../curation_bench_similar

Builds (once; reused while --n, --dim and --seed match) a bench database with --n products and an
active embedding set of synthetic --dim features (clustered, with a decaying spectrum like CNN
features) written and indexed by the training app's own code (PCA to ML_INDEX_PCA_DIM, IVF above
ML_INDEX_EXACT_BELOW, nprobe tuned at build time). Then starts a real gunicorn (gthread) on
127.0.0.1, warms it, and runs --clients keep-alive HTTP clients at once (one process each), each asking
GET /api/discover/products/<sku>/similar/?k=10 for random products --requests times (token auth,
in-stock filter: exactly what an API client gets).

Clients send back to back (closed loop) unless --think-ms gives each a random pause between
requests (open, like people browsing). Prints one JSON line: n, clients, requests, p50_ms, p95_ms,
p99_ms, rps, think_ms, server_cpu_ms_per_request (the gunicorn processes' CPU time per answer, what a
request costs whatever the queueing), recall_at_10 (the
endpoint's top 10 against exact cosine search over the raw features, same in-stock filter,
on --recall-queries products), recall_at_10_index_space (against exact search in the index's
PCA-whitened space, i.e. the approximation error of the IVF alone), index kind, nprobe, and the
server's shape. Progress goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's "queue": drop bench/ from the import path
# before anything (psycopg, http.client users) imports the real one.
_HERE = Path(__file__).resolve().parent
from bench_support import ensure_database, progress  # noqa: E402  (while bench/ is still on the path)

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/curation_bench_similar"
DEFAULT_ARTIFACTS = "/tmp/bench_similar/artifacts"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300_000, help="indexed products")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension (ResNet-50: 2048)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=150, help="requests per client (bounded run)")
    p.add_argument("--warmup", type=int, default=20, help="discarded requests per client")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (2 x 4 answered the most requests per second on 2 cores)")
    p.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"),
                   help="gunicorn worker class (sync: one request at a time per worker, no keep-alive; --threads ignored)")
    p.add_argument("--recall-queries", type=int, default=200)
    p.add_argument("--out-of-stock", type=float, default=0.05, help="share of products out of stock")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--think-ms", type=float, default=0.0,
                   help="mean think time between a client's requests (exponential); 0 = closed loop, back to back")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--rebuild", action="store_true", help="rebuild products and embeddings even if present")
    p.add_argument("--build-only", action="store_true", help="prepare the database and embedding set, then stop")
    return p.parse_args()


def synthetic_features(n: int, dim: int, seed: int):
    """Non-negative clustered features with a decaying spectrum, built in chunks (n x dim float32)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = 256
    centres = rng.normal(size=(n // 50 + 1, latent)).astype(np.float32)
    # Decaying per-axis scale, like the spectrum of CNN features.
    scale = (1.0 / np.sqrt(np.arange(1, latent + 1))).astype(np.float32)
    projection = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        which = rng.integers(0, len(centres), stop - start)
        z = (centres[which] + 0.6 * rng.normal(size=(stop - start, latent)).astype(np.float32)) * scale
        block = z @ projection + 0.02 * rng.normal(size=(stop - start, dim)).astype(np.float32)
        out[start:stop] = np.maximum(block + 0.1, 0.0)
        progress(f"synthetic features {stop:,}/{n:,}")
    return out


def build_catalog(args) -> dict:
    """Products, token user and active embedding set in the bench database (reused when they match)."""
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from curation.accounts.services import user_create_with_role
    from curation.catalog.models import Category, Product
    from curation.training import embedding_files
    from curation.training.models import EmbeddingSet
    from curation.training.services.embeddings import embedding_set_activate

    progress("migrating the bench database")
    call_command("migrate", verbosity=0)
    marker = Path(settings.ARTIFACTS_ROOT) / "bench_similar.json"
    product_params = {"n": args.n, "seed": args.seed, "out_of_stock": args.out_of_stock}
    # Each index configuration keeps its own set, so comparing configurations rebuilds nothing.
    set_params = {"dim": args.dim, "pca_dim": settings.ML_INDEX_PCA_DIM, "exact_below": settings.ML_INDEX_EXACT_BELOW}
    state = json.loads(marker.read_text()) if marker.exists() else {}
    if args.rebuild or state.get("products") != product_params or Product.objects.count() != args.n:
        rng = random.Random(args.seed)
        with transaction.atomic():
            EmbeddingSet.objects.all().delete()
            Product.objects.all().delete()
            leaves = []
            for slot in ("Topwear", "Bottomwear", "Footwear", "Accessories"):
                root, _ = Category.objects.get_or_create(path="Apparel", defaults={"name": "Apparel", "level": 0})
                mid, _ = Category.objects.get_or_create(path=f"Apparel > {slot}", defaults={"name": slot, "parent": root, "level": 1})
                for i in range(10):
                    leaf, _ = Category.objects.get_or_create(
                        path=f"Apparel > {slot} > Kind {i}", defaults={"name": f"Kind {i}", "parent": mid, "level": 2}
                    )
                    leaves.append(leaf)
            batch = []
            for i in range(args.n):
                batch.append(
                    Product(
                        sku=f"B{i:07d}", title=f"Bench product {i}", brand="Bench", category=leaves[i % len(leaves)],
                        colour="Blue", in_stock=rng.random() >= args.out_of_stock,
                    )
                )
                if len(batch) == 10_000:
                    Product.objects.bulk_create(batch)
                    batch = []
                    progress(f"products {i + 1:,}/{args.n:,}")
            Product.objects.bulk_create(batch)
        state = {"products": product_params, "sets": {}}
        marker.write_text(json.dumps(state))
    else:
        progress(f"reusing {args.n:,} products")
    set_key = json.dumps(set_params, sort_keys=True)
    active = EmbeddingSet.objects.filter(pk=state.get("sets", {}).get(set_key)).first()
    if active is None:
        ids = np.array(Product.objects.order_by("id").values_list("id", flat=True), dtype=np.int64)
        vectors = synthetic_features(args.n, args.dim, args.seed)
        progress(f"writing the embedding set and building its index ({args.n:,} x {args.dim}, {set_params})")
        started = time.perf_counter()
        folder, checksum = embedding_files.write_embedding_dir(
            Path(settings.ARTIFACTS_ROOT), product_ids=ids, vectors=vectors, shas=[""] * len(ids),
            exact_below=settings.ML_INDEX_EXACT_BELOW, pca_dim=settings.ML_INDEX_PCA_DIM,
        )
        del vectors
        progress(f"index built in {time.perf_counter() - started:.0f} s")
        active = EmbeddingSet.objects.create(
            backbone=f"synthetic:{args.dim}:seed{args.seed}", dim=args.dim, count=len(ids), vectors_path=folder,
            index_path=f"{folder}/{embedding_files.INDEX}", sha256=checksum,
        )
        state.setdefault("sets", {})[set_key] = active.pk
        marker.write_text(json.dumps(state))
    else:
        progress(f"reusing embedding set {active.pk} ({set_params})")
    embedding_set_activate(embedding_set=active)
    user = user_create_with_role(username="bench-similar", password="bench-similar-pw-123", role="crowd")
    token, _ = Token.objects.get_or_create(user=user)
    in_stock = dict(Product.objects.values_list("id", "in_stock"))
    skus = dict(Product.objects.values_list("id", "sku"))
    return {"embedding_set": active, "token": token.key, "in_stock": in_stock, "skus": skus}


def start_server(args, env: dict) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [
        str(gunicorn), "curation.wsgi:application", "--bind", f"127.0.0.1:{args.port}",
        "--worker-class", args.worker_class, "--workers", str(args.workers), "--threads", str(args.threads),
        "--timeout", "300", "--keep-alive", "30", "--log-level", "warning",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)


def get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"Authorization": f"Token {token}", "Accept": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def wait_ready(args, token: str, sku: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
            status, body = get(conn, f"/api/discover/products/{sku}/similar/?k=10", token)
            conn.close()
            if status == 200:
                return
            sys.exit(f"similar endpoint answered {status}: {body[:300]!r}")
        except OSError:
            time.sleep(0.5)
    sys.exit("gunicorn did not answer within 300 s")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (the gunicorn server)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), counted after the command name
            total += (int(fields[11]) + int(fields[12])) / tick  # fields 14, 15: utime, stime
    return total


def _client_process(args, token: str, my_paths: list[str], record: bool, barrier, results) -> None:
    """One client: walks its paths on one keep-alive connection, sends back (latencies, answers, errors)."""
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    mine, got, errors = [], {}, []
    think = random.Random(hash(my_paths[0]) if my_paths else 0)
    barrier.wait()
    for path in my_paths:
        if args.think_ms > 0:
            time.sleep(think.expovariate(1000.0 / args.think_ms))
        started = time.perf_counter()
        try:
            status, body = get(conn, path, token)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
            errors.append(f"{path}: {exc}")
            continue
        mine.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors.append(f"{path}: HTTP {status} {body[:200]!r}")
        elif record:
            got[path] = body
    conn.close()
    # Answers are parsed after the clock stopped, so parsing never delays this client's next request.
    results.put((mine, {path: [item["id"] for item in json.loads(body)["results"]] for path, body in got.items()}, errors))


def run_clients(args, token: str, paths: list[list[str]], record: bool) -> tuple[list[float], dict, list[str]]:
    """Each client is its own process (no shared interpreter lock between clients, like real API
    clients) walking its own list of paths on one keep-alive connection."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(paths)), ctx.Queue()
    clients = [ctx.Process(target=_client_process, args=(args, token, p, record, barrier, results)) for p in paths]
    for c in clients:
        c.start()
    latencies: list[float] = []
    answers: dict[str, list[int]] = {}
    errors: list[str] = []
    for done in range(1, len(clients) + 1):
        mine, got, failed = results.get()  # before join: a child exits only once its result is read
        latencies.extend(mine)
        answers.update(got)
        errors.extend(failed)
        progress(f"clients finished: {done}/{len(clients)}")
    for c in clients:
        c.join()
    return latencies, answers, errors


def exact_top10(emb, query_ids, in_stock: dict, *, space: str):
    """Exact cosine top 10 (in stock, not the product itself) for each query id."""
    import numpy as np

    from curation.training import embedding_files
    from curation.training.ml_objects import artifact_abspath

    folder = artifact_abspath(emb.vectors_path)
    files = embedding_files.read_embedding_files(folder)
    ids = files.product_ids
    if space == "index":
        index = embedding_files.load_index(folder)
        transform = index.transform
    else:
        def transform(x):
            x = np.asarray(x, dtype=np.float32)
            return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    row_of = {int(pid): row for row, pid in enumerate(ids.tolist())}
    stock_mask = np.array([in_stock.get(int(pid), False) for pid in ids])
    queries = transform(np.asarray(files.vectors[[row_of[q] for q in query_ids]]))
    best = np.full((len(query_ids), 10 + 1), -np.inf, dtype=np.float32)
    best_ids = np.full((len(query_ids), 10 + 1), -1, dtype=np.int64)
    for start in range(0, len(ids), 50_000):
        stop = min(len(ids), start + 50_000)
        block = transform(np.asarray(files.vectors[start:stop]))
        sims = queries @ block.T
        sims[:, ~stock_mask[start:stop]] = -np.inf
        cand = np.concatenate([best, sims], axis=1)
        cand_ids = np.concatenate([best_ids, np.broadcast_to(ids[start:stop], sims.shape)], axis=1)
        top = np.argpartition(-cand, 10, axis=1)[:, : 10 + 1]
        best = np.take_along_axis(cand, top, axis=1)
        best_ids = np.take_along_axis(cand_ids, top, axis=1)
        progress(f"exact search ({space} space) {stop:,}/{len(ids):,}")
    result = []
    for q, row_ids, row_scores in zip(query_ids, best_ids, best):
        order = np.argsort(-row_scores)
        result.append([int(i) for i in row_ids[order] if int(i) != q][:10])
    return result


def main() -> None:
    args = parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("ARTIFACTS_ROOT", DEFAULT_ARTIFACTS)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
    Path(os.environ["ARTIFACTS_ROOT"]).mkdir(parents=True, exist_ok=True)
    ensure_database(os.environ["DATABASE_URL"], script="similar.py")
    state = build_catalog(args)
    emb, token, in_stock, skus = state["embedding_set"], state["token"], state["in_stock"], state["skus"]
    if args.build_only:
        progress(f"embedding set {emb.pk} is ready")
        return

    env = {
        **os.environ,
        # A production-like server: no DEBUG bookkeeping, persistent database connections, and a
        # per-user throttle wide enough for one bench user to send every request.
        "DEBUG": "0", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-" + "x" * 40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "DB_CONN_MAX_AGE": "600",
        "API_THROTTLE_USER": "100000000/hour", "SERVE_MEDIA": "0",
        # One request is one small search: OpenMP threads per search only fight each other (and
        # the other requests' threads) for the cores; a web process wants one thread per search.
        "OMP_NUM_THREADS": os.environ.get("BENCH_OMP_THREADS", "1"),
    }
    rng = random.Random(args.seed + 1)
    product_ids = list(skus)
    recall_ids = rng.sample(product_ids, args.recall_queries)
    measured = [rng.choice(product_ids) for _ in range(args.clients * args.requests)]
    # The recall queries are part of the measured load, spread over the clients.
    measured[: len(recall_ids)] = recall_ids
    rng.shuffle(measured)
    path = lambda pid: f"/api/discover/products/{skus[pid]}/similar/?k=10"  # noqa: E731
    per_client = [[path(pid) for pid in measured[c :: args.clients]] for c in range(args.clients)]
    warm = [[path(rng.choice(product_ids)) for _ in range(args.warmup)] for _ in range(args.clients)]

    progress(f"starting gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{args.port}")
    server = start_server(args, env)
    try:
        wait_ready(args, token, skus[product_ids[0]], server)
        progress("warming up (every worker loads the index)")
        run_clients(args, token, warm, record=False)
        progress(f"measuring: {args.clients} clients x {args.requests} requests")
        load_before = os.getloadavg()[0]
        cpu_before = group_cpu_seconds(server.pid)
        started = time.perf_counter()
        latencies, answers, errors = run_clients(args, token, per_client, record=True)
        elapsed = time.perf_counter() - started
        server_cpu_s = group_cpu_seconds(server.pid) - cpu_before
        load_after = os.getloadavg()[0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    if errors:
        progress(f"{len(errors)} failed requests, first: {errors[0]}")

    truth_raw = exact_top10(emb, recall_ids, in_stock, space="raw")
    truth_index = exact_top10(emb, recall_ids, in_stock, space="index")
    got = [answers.get(path(pid), []) for pid in recall_ids]
    recall = lambda truth: statistics.fmean(len(set(g) & set(t)) / len(t) for g, t in zip(got, truth) if t)  # noqa: E731

    from curation.training import embedding_files
    from curation.training.ml_objects import artifact_abspath

    meta = json.loads((artifact_abspath(emb.vectors_path) / embedding_files.INDEX / "meta.json").read_text())
    qs = statistics.quantiles(latencies, n=100)
    progress("done")
    sys.stderr.write("\n")
    print(
        json.dumps(
            {
                "bench": "similar",
                "n": args.n,
                "dim": args.dim,
                "clients": args.clients,
                "requests": len(latencies),
                "errors": len(errors),
                "p50_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(qs[94], 2),
                "p99_ms": round(qs[98], 2),
                "rps": round(len(latencies) / elapsed, 1),
                "think_ms": args.think_ms,
                # The server's own CPU per request: what one answer costs, whatever the queueing.
                "server_cpu_ms_per_request": round(server_cpu_s * 1000 / max(len(latencies), 1), 2),
                "recall_at_10": round(recall(truth_raw), 4),
                "recall_at_10_index_space": round(recall(truth_index), 4),
                "index_kind": meta.get("kind"),
                "nprobe": meta.get("nprobe"),
                "pca_dim": int(os.environ.get("ML_INDEX_PCA_DIM", "256") or 0),
                "server": f"gunicorn {args.worker_class} {args.workers}x{args.threads if args.worker_class == 'gthread' else 1}",
                "omp_threads": int(env["OMP_NUM_THREADS"]),
                "cpus": os.cpu_count(),
                # The machine's 1-minute load around the measurement: other work shares these cores.
                "load_avg_1m": [round(load_before, 1), round(load_after, 1)],
            }
        )
    )


if __name__ == "__main__":
    main()
