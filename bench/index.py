"""VectorIndex at catalog scale: build time, memory, single-query latency, recall@10 vs exact.

    python bench/index.py [--quick]

Clustered synthetic vectors (Gaussian blobs around 2,000 centres, like product embeddings in
categories). Each configuration prints one JSON line, the 300K 256-d IVF line (the production
setting after PCA to 256) last: n, dim, kind, build_s, bytes_per_vector (serialised index / n),
p50_ms / p99_ms (one query at a time, one thread, 1,000 queries), recall_at_10 (vs exact search,
queries drawn fresh from the same distribution), and the tuned nprobe / efSearch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from ml.index import VectorIndex, l2_normalise  # noqa: E402


def clustered(n: int, dim: int, seed: int, centres: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start : start + m] = c[rng.integers(0, centres, m)] + 0.6 * rng.normal(size=(m, dim)).astype(np.float32)
    return out


def run(n: int, dim: int, kind: str, queries: int = 1000, build_threads: int = 2) -> dict:
    x = clustered(n + queries, dim, seed=0)
    q, x = x[n:].copy(), x[:n]  # queries: fresh points around the same centres, not in the index
    ids = np.arange(n, dtype=np.int64) * 3 + 11
    faiss.omp_set_num_threads(build_threads)
    t = time.perf_counter()
    index = VectorIndex.build(x, ids, kind=kind, exact_below=0)
    build_s = time.perf_counter() - t
    size = len(faiss.serialize_index(index.index))
    _, truth_rows = faiss.knn(l2_normalise(q), l2_normalise(x), 10, metric=faiss.METRIC_INNER_PRODUCT)
    truth = ids[truth_rows]
    del x
    faiss.omp_set_num_threads(1)
    lat = np.empty(queries)
    found = np.empty((queries, 10), np.int64)
    for i in range(queries):
        t = time.perf_counter()
        _, f = index.search(q[i : i + 1], 10)
        lat[i] = (time.perf_counter() - t) * 1000
        found[i] = f[0]
    faiss.omp_set_num_threads(build_threads)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist())]))
    return {
        "n": n, "dim": dim, "kind": index.kind, "build_s": round(build_s, 1), "bytes_per_vector": round(size / n, 1),
        "index_mb": round(size / 2**20, 1), "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3), "recall_at_10": round(recall, 4),
        "nprobe": index.nprobe, "ef_search": index.ef_search, "search_threads": 1,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="30K vectors instead of 300K/1M (smoke run)")
    p.add_argument("--skip", default="", help="comma list of config names to skip: hnsw,2048,1m")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    big, huge = (30_000, 100_000) if args.quick else (300_000, 1_000_000)
    configs = []
    if "hnsw" not in skip:
        configs.append((big, 256, "hnsw"))
    if "2048" not in skip:
        configs.append((big, 2048, "ivf"))
    if "1m" not in skip:
        configs.append((huge, 256, "ivfsq"))
    configs.append((big, 256, "ivf"))
    for n, dim, kind in configs:
        sys.stderr.write(f"building {kind} over {n} x {dim}...\n")
        print(json.dumps(run(n, dim, kind)), flush=True)


if __name__ == "__main__":
    main()
