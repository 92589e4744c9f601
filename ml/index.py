"""Cosine nearest-neighbour index over external ids (FAISS).

Vectors are L2-normalised (optionally PCA-whitened to ``pca_dim`` and normalised again), so inner
product is cosine similarity. Exact (flat) search below ``exact_below`` vectors; above it an
inverted-file index whose ``nprobe`` is tuned at build time by measuring recall@10 against exact
search on a sample (``target_recall``); from ``compress_from`` vectors the IVF lists hold 8-bit
scalar-quantised codes (4x smaller). HNSW is available as ``kind="hnsw"``; bench/index.py compares them.

Filters (``allowed_ids``) are applied inside the search, and a search that finds fewer than k allowed
results widens itself (all IVF lists, or exact search over the allowed vectors), so a filtered query
returns k results whenever k allowed vectors exist; -1 pads only the remainder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path

import faiss
import numpy as np

KINDS = ("auto", "flat", "ivf", "ivfsq", "hnsw")
_LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def with_category_posterior(vectors: np.ndarray, posterior: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """A category-aware similarity space: each row's vector (L2-normalised) beside ``weight`` times its
    category probability vector (L2-normalised), scaled to unit length, so that the cosine of two rows
    is ``(cos(vectors) + weight**2 * cos(posteriors)) / (1 + weight**2)``.

    Neighbours in it look alike *and* are predicted to be the same kind of product: "more like this"
    stays within the predicted category unless the pictures say otherwise. ``weight`` 0 is the
    vectors alone."""
    vectors, posterior = np.asarray(vectors), np.asarray(posterior)
    if posterior.ndim != 2 or len(posterior) != len(vectors):
        raise ValueError(f"posterior has shape {posterior.shape}; expected one row per vector ({len(vectors)} rows)")
    if weight < 0:
        raise ValueError(f"weight={weight}: must be >= 0")
    if weight == 0:
        return l2_normalise(vectors)
    joined = np.concatenate([l2_normalise(vectors), float(weight) * l2_normalise(posterior)], axis=1)
    return joined / np.float32(math.sqrt(1.0 + float(weight) ** 2))


def fit_pca_whitening(x: np.ndarray, dim: int, *, max_rows: int = 100_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), matrix (D, dim)) projecting onto the top ``dim`` principal axes with unit variance."""
    if dim > x.shape[1]:
        raise ValueError(f"pca_dim={dim} exceeds the vector dimension {x.shape[1]}")
    if len(x) > max_rows:
        x = x[np.random.default_rng(seed).choice(len(x), max_rows, replace=False)]
    mean = x.mean(axis=0, dtype=np.float64)
    xc = (x - mean).astype(np.float64)
    cov = xc.T @ xc / max(len(x) - 1, 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:dim]
    evals, evecs = evals[order], evecs[:, order]
    # The floor keeps near-zero-variance axes (fewer samples than dims) from being blown up into noise.
    floor = max(float(evals.mean()) * 1e-3, 1e-12)
    matrix = evecs / np.sqrt(np.maximum(evals, floor))
    return mean.astype(np.float32), matrix.astype(np.float32)


class VectorIndex:
    def __init__(self, index: faiss.Index, ids: np.ndarray, *, kind: str, dim_in: int, pca_mean=None, pca_matrix=None, nprobe: int = 0, ef_search: int = 0):
        self.index = index
        self._ids = np.asarray(ids, dtype=np.int64)
        self.kind = kind
        self.dim_in = int(dim_in)
        self.pca_mean = pca_mean
        self.pca_matrix = pca_matrix
        self.nprobe = int(nprobe)
        self.ef_search = int(ef_search)

    # -- properties ---------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension of the vectors accepted by search/add (before any PCA)."""
        return self.dim_in

    @property
    def index_dim(self) -> int:
        return int(self.index.d)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def __len__(self) -> int:
        return int(len(self._ids))

    def __contains__(self, item_id) -> bool:
        return bool(np.isin(np.int64(item_id), self._ids))

    # -- build ----------------------------------------------------------------------------------------

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        x = l2_normalise(vectors)
        if x.shape[1] != self.dim_in:
            raise ValueError(f"vectors have dimension {x.shape[1]}, the index expects {self.dim_in}")
        if self.pca_matrix is not None:
            x = l2_normalise((x - self.pca_mean) @ self.pca_matrix)
        return x

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids,
        *,
        exact_below: int = 50_000,
        pca_dim: int | None = None,
        kind: str = "auto",
        compress_from: int = 1_000_000,
        nlist: int | None = None,
        hnsw_m: int = 32,
        target_recall: float = 0.95,
        seed: int = 0,
    ) -> VectorIndex:
        vectors = l2_normalise(vectors)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n, dim_in = vectors.shape
        if len(ids) != n:
            raise ValueError(f"{n} vectors but {len(ids)} ids")
        if len(np.unique(ids)) != n:
            raise ValueError("ids must be unique")
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; choose one of {KINDS}")
        pca_mean = pca_matrix = None
        if pca_dim and pca_dim < dim_in and n > 1:
            pca_mean, pca_matrix = fit_pca_whitening(vectors, pca_dim, seed=seed)
        self = cls(faiss.IndexFlatIP(1), ids[:0], kind="flat", dim_in=dim_in, pca_mean=pca_mean, pca_matrix=pca_matrix)
        x = self.transform(vectors)
        d = x.shape[1]
        if kind == "auto":
            kind = "flat" if n < exact_below else ("ivfsq" if n >= compress_from else "ivf")
        if kind in ("ivf", "ivfsq") and n < 4 * 39:
            kind = "flat"  # too few vectors to train inverted lists
        self.kind = kind
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        elif kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = 80
            index = faiss.IndexIDMap2(hnsw)
        else:
            if nlist is None:
                # ~sqrt(n) lists, a power of two; at least 39 training points per list
                nlist = int(2 ** round(np.log2(max(np.sqrt(n), 4))))
                nlist = max(1, min(nlist, n // 39))
            quantizer = faiss.IndexFlatIP(d)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            rng = np.random.default_rng(seed)
            train = x if n <= 64 * nlist else x[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            index.train(train)
            index.own_fields = True
            quantizer.this.disown()
        self.index = index
        for start in range(0, n, 100_000):
            index.add_with_ids(x[start : start + 100_000], ids[start : start + 100_000])
        self._ids = ids.copy()
        if kind in ("ivf", "ivfsq", "hnsw"):
            self._tune(x, target_recall=target_recall, seed=seed)
        return self

    def _search_raw(self, x: np.ndarray, k: int, sel=None, *, nprobe: int | None = None, ef: int | None = None):
        if self.kind in ("ivf", "ivfsq"):
            params = faiss.SearchParametersIVF(nprobe=int(nprobe or self.nprobe or 1))
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=int(max(ef or self.ef_search or 16, k)))
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        return self.index.search(x, k, params=params)

    def _tune(self, x: np.ndarray, *, target_recall: float, seed: int, n_queries: int = 300, k: int = 10) -> None:
        """Smallest nprobe / efSearch reaching ``target_recall`` recall@k vs exact search on sampled queries."""
        rng = np.random.default_rng(seed + 1)
        q = x[rng.choice(len(x), min(n_queries, len(x)), replace=False)]
        _, exact_rows = faiss.knn(q, x, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
        # Drop each query's own vector (rank 0): it would inflate recall.
        truth = self._ids[exact_rows[:, 1:]]
        attr = "nprobe" if self.kind != "hnsw" else "ef_search"
        limit = self.index.nlist if self.kind != "hnsw" else 4096
        best = limit
        for value in _LADDER:
            value = min(value, limit)
            if self.kind == "hnsw":
                value = max(value, k + 1)
                _, found = self._search_raw(q, k + 1, ef=value)
            else:
                _, found = self._search_raw(q, k + 1, nprobe=value)
            hits = sum(len(set(f[1:].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
            if hits / truth.size >= target_recall or value >= limit:
                best = value
                break
        setattr(self, attr, int(best))

    # -- use ------------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, allowed_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q,k) cosine, ids (Q,k)); ids -1 (score -inf) only where fewer than k candidates exist."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        q = self.transform(queries)
        k = int(k)
        if k <= 0 or len(self) == 0:
            return np.full((len(q), max(k, 0)), -np.inf, np.float32), np.full((len(q), max(k, 0)), -1, np.int64)
        if allowed_ids is None:
            scores, found = self._search_raw(q, k)
            available = len(self)
            allowed = None
        else:
            allowed = np.unique(np.asarray(list(allowed_ids) if not isinstance(allowed_ids, np.ndarray) else allowed_ids, dtype=np.int64))
            allowed = allowed[np.isin(allowed, self._ids)]
            available = len(allowed)
            if available == 0:
                return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
            sel = faiss.IDSelectorBatch(allowed)
            scores, found = self._search_raw(q, k, sel)
        need = min(k, available)
        short = np.flatnonzero((found >= 0).sum(axis=1) < need)
        if len(short):
            # Approximate search missed some. Unfiltered: probe more lists, fourfold each time (a
            # query that just overflowed its lists, the hot path of asking for a long shortlist,
            # costs a few more lists, not a scan of the whole index). Filtered: all lists, which
            # is exact over the allowed vectors. Other kinds: exact over the allowed vectors.
            if self.kind in ("ivf", "ivfsq"):
                sel = faiss.IDSelectorBatch(allowed) if allowed is not None else None
                nprobe = max(int(self.nprobe or 1), 1)
                while len(short) and nprobe < self.index.nlist:
                    nprobe = self.index.nlist if allowed is not None else min(nprobe * 4, self.index.nlist)
                    s2, f2 = self._search_raw(q[short], k, sel, nprobe=nprobe)
                    scores[short], found[short] = s2, f2
                    short = short[(f2 >= 0).sum(axis=1) < need]
            else:
                s2, f2 = self._exact_subset(q[short], k, allowed if allowed is not None else self._ids)
                scores[short], found[short] = s2, f2
        scores = np.where(found >= 0, scores, -np.inf).astype(np.float32)
        return scores, found.astype(np.int64)

    def _exact_subset(self, q: np.ndarray, k: int, subset_ids: np.ndarray):
        vecs = np.stack([self.index.reconstruct(int(i)) for i in subset_ids]).astype(np.float32)
        sims = q @ vecs.T
        kk = min(k, len(subset_ids))
        top = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        scores = np.full((len(q), k), -np.inf, np.float32)
        found = np.full((len(q), k), -1, np.int64)
        scores[:, :kk] = np.take_along_axis(sims, top, axis=1)
        found[:, :kk] = subset_ids[top]
        return scores, found

    def add(self, vectors: np.ndarray, ids) -> None:
        """Add (or replace) vectors: cold start for new products without rebuilding."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        x = self.transform(vectors)
        if len(ids) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(ids)} ids")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique")
        existing = np.isin(ids, self._ids)
        if existing.any():
            if self.kind == "hnsw":
                raise ValueError(f"ids already in this HNSW index cannot be replaced (e.g. {ids[existing][:5].tolist()}); rebuild it")
            self.index.remove_ids(faiss.IDSelectorBatch(ids[existing]))
            self._ids = self._ids[~np.isin(self._ids, ids[existing])]
        self.index.add_with_ids(x, ids)
        self._ids = np.concatenate([self._ids, ids])

    # -- persistence ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write a folder (index.faiss, ids.npy, pca.npz, meta.json) atomically: temp folder, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            np.save(tmp / "ids.npy", self._ids)
            if self.pca_matrix is not None:
                np.savez(tmp / "pca.npz", mean=self.pca_mean, matrix=self.pca_matrix)
            meta = {"kind": self.kind, "dim_in": self.dim_in, "nprobe": self.nprobe, "ef_search": self.ef_search, "n": len(self)}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if path.exists():
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> VectorIndex:
        path = Path(path)
        if not (path / "index.faiss").is_file():
            raise FileNotFoundError(f"{path}: not a saved VectorIndex (index.faiss missing)")
        meta = json.loads((path / "meta.json").read_text())
        index = None
        if mmap:
            try:
                index = faiss.read_index(str(path / "index.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                index = None  # this index type cannot be memory-mapped: read it
        if index is None:
            index = faiss.read_index(str(path / "index.faiss"))
        ids = np.load(path / "ids.npy")
        pca_mean = pca_matrix = None
        if (path / "pca.npz").is_file():
            with np.load(path / "pca.npz") as z:
                pca_mean, pca_matrix = z["mean"], z["matrix"]
        return cls(index, ids, kind=meta["kind"], dim_in=meta["dim_in"], pca_mean=pca_mean, pca_matrix=pca_matrix, nprobe=meta.get("nprobe", 0), ef_search=meta.get("ef_search", 0))
