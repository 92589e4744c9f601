import numpy as np
import pytest
import torch

from ml.metrics import roc_auc
from ml.siamese import FUSIONS, SiameseConfig, SiameseNet, score_pairs, train_siamese


def _style_catalog(n=240, seed=0):
    """Items with a category (4) and a hidden style (3); complementary = different category, same style."""
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, 4, n)
    styles = rng.integers(0, 3, n)
    feats = np.concatenate([np.eye(4)[cats] * 2, np.eye(3)[styles] * 2, rng.normal(size=(n, 9))], axis=1).astype(np.float32)
    feats += 0.3 * rng.normal(size=feats.shape).astype(np.float32)

    def positives(m):
        out = []
        while len(out) < m:
            i, j = rng.integers(0, n, 2)
            if cats[i] != cats[j] and styles[i] == styles[j]:
                out.append((i, j))
        return np.array(out)

    def mismatched(m):
        out = []
        while len(out) < m:
            i, j = rng.integers(0, n, 2)
            if cats[i] != cats[j] and styles[i] != styles[j]:
                out.append((i, j))
        return np.array(out)

    return feats, cats, positives, mismatched


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("extras", [(), ("absdiff", "prod")])
def test_every_fusion_is_exactly_symmetric(fusion, extras):
    torch.manual_seed(0)
    model = SiameseNet(12, SiameseConfig(fusion=fusion, extras=extras, hidden=16, embed_dim=8)).eval()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 12)).astype(np.float32), rng.normal(size=(50, 12)).astype(np.float32)
    ab, ba = score_pairs(model, a, b), score_pairs(model, b, a)
    np.testing.assert_array_equal(ab, ba)
    assert ab.std() > 0  # a constant scorer would be trivially symmetric


def test_concat_without_symmetrisation_would_not_be_symmetric():
    # Guards the reason for averaging both orders: the raw concat head is order-sensitive.
    torch.manual_seed(0)
    model = SiameseNet(6, SiameseConfig(fusion="concat", extras=(), hidden=8, embed_dim=4)).eval()
    a, b = torch.randn(5, 6), torch.randn(5, 6)
    ea, eb = model.embed(a), model.embed(b)
    assert not torch.allclose(model._fused_logit(ea, eb), model._fused_logit(eb, ea))


@pytest.mark.parametrize("fusion", ["concat", "max"])
def test_training_learns_style_compatibility(fusion):
    feats, cats, positives, mismatched = _style_catalog()
    train_pos = positives(400)
    val = np.concatenate([positives(60), mismatched(60)])
    val_y = np.r_[np.ones(60), np.zeros(60)]
    events = []
    model, history = train_siamese(
        feats, train_pos, np.ones(len(train_pos)), categories=cats,
        cfg=SiameseConfig(fusion=fusion, hidden=32, embed_dim=16, epochs=8, batch_size=128, lr=3e-3),
        val_pairs=val, val_labels=val_y, progress=events.append,
    )
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert events[-1]["epochs"] == 8 and set(events[-1]) >= {"epoch", "epochs", "loss", "val_auc"}
    assert history[-1]["loss"] < history[0]["loss"]
    auc = roc_auc(val_y, score_pairs(model, feats[val[:, 0]], feats[val[:, 1]]))
    assert auc > 0.85
    assert auc == pytest.approx(max(h["val_auc"] for h in history))  # the best epoch is kept


def test_bank_of_views_and_weights_are_accepted():
    feats, cats, positives, _ = _style_catalog(n=80)
    bank = np.stack([feats, feats + 0.05, feats - 0.05], axis=1)
    pairs = positives(60)
    model, history = train_siamese(bank, pairs, np.ones(60), weights=np.full(60, 0.5), cfg=SiameseConfig(hidden=16, embed_dim=8, epochs=2))
    assert len(history) == 2 and history[0]["val_auc"] is None
    assert score_pairs(model, feats[:3], feats[3:6]).shape == (3,)


def test_bad_pairs_are_rejected_with_the_row():
    feats, _, _, _ = _style_catalog(n=20)
    with pytest.raises(ValueError, match="row 1"):
        train_siamese(feats, np.array([[0, 1], [2, 99]]), np.ones(2), cfg=SiameseConfig(epochs=1))
    with pytest.raises(ValueError, match="fusion"):
        SiameseConfig(fusion="product")
