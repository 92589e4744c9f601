"""Similar-item search re-ranks the index's shortlist by exact cosine on the stored features, so a
PCA-whitened or approximate index still returns what exact search on the features returns."""

import numpy as np

from curation.training.serving import ActiveEmbeddings
from ml.index import VectorIndex


def _embeddings(vectors: np.ndarray, ids: np.ndarray, index: VectorIndex) -> ActiveEmbeddings:
    emb = object.__new__(ActiveEmbeddings)  # no database row or files needed for the search path
    emb._vectors = vectors
    emb._row = {int(pid): row for row, pid in enumerate(ids.tolist())}
    emb._index = index
    return emb


def _exact_top(vectors, ids, query, k):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ (query / np.linalg.norm(query))
    return [int(ids[i]) for i in np.argsort(-cosine)[:k]]


def test_whitened_index_results_match_exact_cosine_after_rerank():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 128))
    vectors = (centres[rng.integers(0, 20, 2000)] + 0.8 * rng.normal(size=(2000, 128))).astype(np.float32)
    vectors = np.abs(vectors)  # ReLU-like features, as the backbone gives
    ids = np.arange(10, 2010, dtype=np.int64)
    index = VectorIndex.build(vectors, ids, pca_dim=16, exact_below=10**9)
    emb = _embeddings(vectors, ids, index)
    agree = []
    for q in range(50):
        query = vectors[q * 7]
        got = [pid for pid, _ in emb.search_vector(query, 10)]
        agree.append(len(set(got) & set(_exact_top(vectors, ids, query, 10))) / 10)
    # Without the re-rank the whitened 16-d space agrees with raw cosine far less often.
    raw = [
        len(set(index.search(vectors[q * 7][None], 10)[1][0].tolist()) & set(_exact_top(vectors, ids, vectors[q * 7], 10))) / 10
        for q in range(50)
    ]
    assert np.mean(agree) >= 0.9
    assert np.mean(agree) > np.mean(raw) + 0.1


def test_rerank_keeps_scores_as_cosine_and_respects_allowed_ids():
    rng = np.random.default_rng(1)
    vectors = np.abs(rng.normal(size=(300, 32))).astype(np.float32)
    ids = np.arange(300, dtype=np.int64)
    emb = _embeddings(vectors, ids, VectorIndex.build(vectors, ids, pca_dim=8, exact_below=10**9))
    allowed = list(range(0, 300, 3))
    hits = emb.search_vector(vectors[5], 5, allowed_ids=allowed)
    assert len(hits) == 5 and all(pid % 3 == 0 for pid, _ in hits)
    for pid, score in hits:
        expected = float(vectors[pid] @ vectors[5] / (np.linalg.norm(vectors[pid]) * np.linalg.norm(vectors[5])))
        assert abs(score - expected) < 1e-5
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
