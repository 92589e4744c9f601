"""Similar-item search re-ranks the index's shortlist by exact cosine on the stored features, so a
PCA-whitened or approximate index still returns what exact search on the features returns."""

import numpy as np

from curation.training.serving import ActiveEmbeddings
from ml.index import VectorIndex


def _embeddings(vectors: np.ndarray, ids: np.ndarray, index: VectorIndex) -> ActiveEmbeddings:
    return ActiveEmbeddings.from_arrays(ids, vectors, index)  # no database row or files needed for the search path


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


def test_rows_of_hits_are_looked_up_alike_for_dense_and_sparse_ids():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(6, 4)).astype(np.float32)
    for ids in (np.array([3, 7, 8, 9, 12, 40], dtype=np.int64), np.array([5, 10**9, 2 * 10**9, 7, 8, 9], dtype=np.int64)):
        emb = _embeddings(vectors, ids, None)
        assert (emb._row_of_id is None) == (ids.max() > 10**6)  # sparse ids fall back to the dict
        asked = np.array([ids[4], 11, ids[0], -1, 10**10, ids[5]], dtype=np.int64)
        assert emb.rows_or_missing(asked).tolist() == [4, -1, 0, -1, -1, 5]


def test_a_hit_missing_from_the_stored_vectors_skips_the_rerank_and_keeps_index_order():
    rng = np.random.default_rng(3)
    vectors = np.abs(rng.normal(size=(200, 16))).astype(np.float32)
    ids = np.arange(200, dtype=np.int64)
    index = VectorIndex.build(vectors, ids, pca_dim=4, exact_below=10**9)
    # The set knows only half the products the index holds (e.g. rows deleted since it was built).
    emb = _embeddings(vectors[:100], ids[:100], index)
    hits = emb.search_vector(vectors[150], 5)
    scores, found = index.search(vectors[150][None], 5)
    assert [pid for pid, _ in hits] == found[0].tolist()
    assert np.allclose([s for _, s in hits], scores[0])
