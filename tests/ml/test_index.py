import numpy as np
import pytest

from ml.index import VectorIndex, l2_normalise, with_category_posterior


def _data(n=400, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, d))
    x = (centres[rng.integers(0, 8, n)] + 0.4 * rng.normal(size=(n, d))).astype(np.float32)
    ids = (np.arange(n) * 7 + 1000).astype(np.int64)
    return x, ids


def _exact(x, ids, q, k, allowed=None):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ xn.T
    if allowed is not None:
        sims[:, ~np.isin(ids, allowed)] = -np.inf
    top = np.argsort(-sims, axis=1)[:, :k]
    return ids[top], np.take_along_axis(sims, top, axis=1)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfsq", "hnsw"])
def test_search_returns_cosine_neighbours_with_external_ids(kind):
    x, ids = _data()
    index = VectorIndex.build(x, ids, kind=kind)
    assert len(index) == 400 and index.dim == 24
    scores, found = index.search(x[:20], 5)
    assert found.shape == (20, 5) and scores.shape == (20, 5)
    assert (found[:, 0] == ids[:20]).all()  # each vector is its own nearest neighbour
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-2 if kind == "ivfsq" else 1e-5)
    truth, _ = _exact(x, ids, x[:20], 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, truth)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_filters_still_return_k_results(kind):
    x, ids = _data()
    index = VectorIndex.build(x, ids, kind=kind)
    # A rare allowed set, far from the queries' own clusters in general: approximate search alone would miss some.
    allowed = ids[::37]
    scores, found = index.search(x[:10], 8, allowed_ids=allowed)
    assert (found >= 0).all() and np.isin(found, allowed).all()
    truth, _ = _exact(x, ids, x[:10], 8, allowed)
    assert np.array_equal(found, truth)
    # Fewer allowed than k: all of them, then -1 padding.
    scores, found = index.search(x[:3], 8, allowed_ids=allowed[:3].tolist() + [999_999])
    assert (found[:, :3] >= 0).all() and (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_exact_below_threshold_and_ivf_above():
    x, ids = _data()
    assert VectorIndex.build(x, ids, exact_below=1000).kind == "flat"
    assert VectorIndex.build(x, ids, exact_below=100).kind == "ivf"
    assert VectorIndex.build(x, ids, exact_below=100, compress_from=200).kind == "ivfsq"


def test_pca_whitening_reduces_dimension_and_keeps_neighbours():
    x, ids = _data(d=48)
    index = VectorIndex.build(x, ids, pca_dim=16)
    assert index.dim == 48 and index.index_dim == 16
    _, found = index.search(x[:10], 1)
    assert (found[:, 0] == ids[:10]).all()


def test_add_cold_start_and_replace():
    x, ids = _data()
    index = VectorIndex.build(x[:300], ids[:300], kind="ivf")
    index.add(x[300:], ids[300:])
    assert len(index) == 400
    _, found = index.search(x[350:352], 1)
    assert found[:, 0].tolist() == ids[350:352].tolist()
    # Re-adding an id replaces its vector.
    index.add(-x[:1], ids[:1])
    assert len(index) == 400
    _, found = index.search(-x[:1], 1)
    assert found[0, 0] == ids[0]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, kind, mmap):
    x, ids = _data()
    index = VectorIndex.build(x, ids, kind=kind, pca_dim=16)
    before = index.search(x[:15], 6, allowed_ids=ids[::3])
    index.save(tmp_path / "ix")
    index.save(tmp_path / "ix")  # overwriting an existing folder is atomic too
    loaded = VectorIndex.load(tmp_path / "ix", mmap=mmap)
    after = loaded.search(x[:15], 6, allowed_ids=ids[::3])
    assert loaded.kind == index.kind and len(loaded) == 400
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])


def test_bad_input_is_rejected():
    x, ids = _data(n=20)
    with pytest.raises(ValueError, match="unique"):
        VectorIndex.build(x, np.zeros(20, np.int64))
    with pytest.raises(ValueError, match="ids"):
        VectorIndex.build(x, ids[:5])
    index = VectorIndex.build(x, ids)
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones((1, 5), np.float32), 3)


def test_ivf_short_of_k_probes_more_lists_not_all_of_them(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 16)).astype(np.float32)
    ids = np.arange(4000, dtype=np.int64)
    index = VectorIndex.build(x, ids, kind="ivf", nlist=256)
    index.nprobe = 1  # one list of ~16 vectors cannot hold 40 results
    probes = []
    real = index._search_raw

    def recording(q, k, sel=None, *, nprobe=None, ef=None):
        probes.append(nprobe or index.nprobe)
        return real(q, k, sel, nprobe=nprobe, ef=ef)

    monkeypatch.setattr(index, "_search_raw", recording)
    scores, found = index.search(x[:5], 40)
    assert (found >= 0).all() and np.isfinite(scores).all()
    assert probes[0] == 1 and 1 < max(probes) < 256  # widened, but no scan of every list


def test_category_posterior_space_mixes_the_two_cosines_by_weight():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 16)).astype(np.float32)
    p = rng.dirichlet(np.ones(5), size=30).astype(np.float32)
    cos_x = l2_normalise(x) @ l2_normalise(x).T
    cos_p = l2_normalise(p) @ l2_normalise(p).T
    for weight in (0.5, 1.0, 2.0):
        space = with_category_posterior(x, p, weight)
        assert space.shape == (30, 21)
        np.testing.assert_allclose(np.linalg.norm(space, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(space @ space.T, (cos_x + weight**2 * cos_p) / (1 + weight**2), atol=1e-5)
    np.testing.assert_allclose(with_category_posterior(x, p, 0.0), l2_normalise(x), atol=1e-6)


def test_category_posterior_space_lets_the_predicted_category_break_a_visual_tie():
    # Two candidates equally close to the query in the features; only one is predicted to be of the
    # query's category, and it ranks first.
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6]], dtype=np.float32)
    p = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]], dtype=np.float32)
    space = with_category_posterior(x, p)
    sims = space[1:] @ space[0]
    assert sims[1] > sims[0]


def test_category_posterior_space_rejects_mismatched_rows_and_negative_weights():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="one row per vector"):
        with_category_posterior(x, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="weight"):
        with_category_posterior(x, np.ones((4, 2), np.float32), -1.0)
