import numpy as np
import torch

from ml.metrics import fitb_accuracy
from ml.outfit import OutfitConfig, OutfitScorer, complete_outfit, corrupt_outfits, score_outfits, train_outfit_scorer


def _outfit_catalog(seed=0):
    """Top/bottom/shoes (categories 0/1/2) in 3 styles; an outfit is one of each category, one style."""
    rng = np.random.default_rng(seed)
    n = 150
    cats = np.arange(n) % 3
    styles = rng.integers(0, 3, n)
    feats = np.concatenate([np.eye(3)[cats] * 2, np.eye(3)[styles] * 2, rng.normal(size=(n, 6))], axis=1).astype(np.float32)

    def outfits(m):
        out = []
        for _ in range(m):
            s = rng.integers(0, 3)
            out.append([int(rng.choice(np.flatnonzero((cats == c) & (styles == s)))) for c in range(3)])
        return out

    return feats, cats, styles, outfits


def test_scores_are_permutation_invariant_and_accept_any_length():
    torch.manual_seed(0)
    model = OutfitScorer(8, OutfitConfig(hidden=16, embed_dim=8))
    feats = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
    outfits = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    permuted = [[2, 0, 1], [4, 3], [8, 6, 5, 7]]
    np.testing.assert_array_equal(score_outfits(model, feats, outfits), score_outfits(model, feats, permuted))
    assert len(set(score_outfits(model, feats, outfits).tolist())) == 3


def test_corruption_swaps_one_item_for_the_same_category():
    feats, cats, _, outfits = _outfit_catalog()
    pos = outfits(20)
    negs = corrupt_outfits(pos, cats, np.random.default_rng(0))
    assert len(negs) == 20
    for p, n in zip(pos, negs):
        diff = [k for k in range(3) if p[k] != n[k]]
        assert len(diff) == 1 and cats[p[diff[0]]] == cats[n[diff[0]]]


def test_training_beats_chance_on_fill_in_the_blank_and_completes_outfits():
    feats, cats, styles, outfits = _outfit_catalog()
    model, history = train_outfit_scorer(feats, outfits(300), cats, cfg=OutfitConfig(hidden=32, embed_dim=16, epochs=15, lr=3e-3))
    assert history[-1]["loss"] < history[0]["loss"]
    rng = np.random.default_rng(5)
    rows = []
    for o in outfits(40):
        wrong = [int(i) for i in rng.choice(np.flatnonzero((cats == 2) & (styles != styles[o[0]])), 3, replace=False)]
        rows.append(score_outfits(model, feats, [o[:2] + [c] for c in [o[2]] + wrong]))
    assert fitb_accuracy(np.array(rows)) > 0.7
    given = outfits(1)[0][:1]
    picks = complete_outfit(model, feats, given, {"bottom": np.flatnonzero(cats == 1), "shoes": np.flatnonzero(cats == 2)}, top=3)
    assert set(picks) == {"bottom", "shoes"} and all(len(v) == 3 for v in picks.values())
    assert picks["bottom"][0][1] >= picks["bottom"][1][1] >= picks["bottom"][2][1]
    assert styles[picks["bottom"][0][0]] == styles[given[0]] and styles[picks["shoes"][0][0]] == styles[given[0]]


def test_completion_by_any_scorer_is_greedy_and_never_picks_an_unscorable_candidate():
    from ml.outfit import complete_by_score

    looks_seen = []

    def score(looks):
        looks_seen.extend(looks)
        # The look's score is its last item's value; item 13 cannot be scored.
        return np.array([np.nan if look[-1] == 13 else {11: 0.2, 12: 0.9, 21: 0.5, 22: 0.1}[look[-1]] for look in looks])

    picks = complete_by_score(score, [1], {"bottom": np.array([11, 12, 13]), "shoes": np.array([21, 22]), "bag": np.array([13])}, top=3)
    assert picks == {"bottom": [(12, 0.9), (11, 0.2)], "shoes": [(21, 0.5), (22, 0.1)], "bag": []}
    # Each slot is scored with the given items and every earlier slot's best pick.
    assert [1, 12, 21] in looks_seen and [1, 11] in looks_seen
