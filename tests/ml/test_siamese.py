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


@pytest.mark.parametrize("fusion", FUSIONS)
def test_type_aware_scores_are_symmetric_and_read_the_categories(fusion):
    torch.manual_seed(0)
    model = SiameseNet(12, SiameseConfig(fusion=fusion, hidden=16, embed_dim=8, category_dim=4), n_categories=3).eval()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 12)).astype(np.float32), rng.normal(size=(40, 12)).astype(np.float32)
    ca, cb = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    np.testing.assert_array_equal(score_pairs(model, a, b, ca, cb), score_pairs(model, b, a, cb, ca))
    # The same features under other categories score differently: the categories are read.
    assert not np.allclose(score_pairs(model, a, b, ca, cb), score_pairs(model, a, b, (ca + 1) % 3, cb))
    # Unknown categories (negative, beyond the trained ones) all share the "unknown" row.
    np.testing.assert_array_equal(score_pairs(model, a, b, np.full(40, -1), cb), score_pairs(model, a, b, np.full(40, 7), cb))
    with pytest.raises(ValueError, match="categories"):
        score_pairs(model, a, b)


def test_type_aware_model_learns_a_rule_that_depends_on_the_category_pair():
    # Items of category 0 go with items of category 1 of the same style; items of category 2 go
    # with items of category 1 of a *different* style. Features alone cannot express both rules
    # in one shared head as well as a head that knows the categories.
    rng = np.random.default_rng(3)
    n = 300
    cats = rng.integers(0, 3, n)
    styles = rng.integers(0, 2, n)
    feats = np.concatenate([np.eye(2)[styles] * 2, rng.normal(size=(n, 6))], axis=1).astype(np.float32)

    def pairs(m, positive):
        out = []
        while len(out) < m:
            i, j = rng.integers(0, n, 2)
            if cats[j] != 1 or cats[i] == 1:
                continue
            good = (styles[i] == styles[j]) if cats[i] == 0 else (styles[i] != styles[j])
            if good == positive:
                out.append((i, j))
        return np.array(out)

    train = pairs(500, True)
    test = np.concatenate([pairs(150, True), pairs(150, False)])
    y = np.r_[np.ones(150), np.zeros(150)]
    aucs = {}
    for dim in (0, 8):
        cfg = SiameseConfig(hidden=32, embed_dim=16, epochs=15, batch_size=128, lr=3e-3, category_dim=dim, random_negatives=0,
                            category_negatives=2)
        model, _ = train_siamese(feats, train, np.ones(len(train)), categories=cats, cfg=cfg)
        aucs[dim] = roc_auc(y, score_pairs(model, feats[test[:, 0]], feats[test[:, 1]], cats[test[:, 0]], cats[test[:, 1]]))
    assert aucs[8] > 0.9 and aucs[8] > aucs[0] + 0.1


def test_type_aware_model_round_trips_through_its_config():
    model = SiameseNet(6, SiameseConfig(hidden=8, embed_dim=4, category_dim=3), n_categories=5).eval()
    again = SiameseNet.from_state(model.state_dict(), model.config_dict())
    f = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    c = np.array([0, 4, -1, 2])
    np.testing.assert_array_equal(score_pairs(model, f, f[::-1], c, c[::-1]), score_pairs(again, f, f[::-1], c, c[::-1]))
    assert again.n_categories == 5


def test_best_epoch_is_the_first_best_validation_auc_else_the_last_epoch():
    from ml.siamese import best_epoch

    history = [{"epoch": 1, "val_auc": 0.6}, {"epoch": 2, "val_auc": 0.7}, {"epoch": 3, "val_auc": 0.7}, {"epoch": 4, "val_auc": 0.65}]
    assert best_epoch(history) == 2
    assert best_epoch([{"epoch": 1, "val_auc": None}, {"epoch": 2, "val_auc": None}]) == 2
    assert best_epoch([]) == 0


def test_patience_stops_training_that_many_epochs_after_the_best_validation_auc():
    from ml.siamese import best_epoch

    feats, cats, positives, mismatched = _style_catalog(n=120, seed=1)
    train_pos = positives(150)
    # Validation labels that have nothing to do with the pairs: the AUC wanders, its best comes early.
    val = np.concatenate([positives(40), mismatched(40)])
    noise = np.random.default_rng(5).integers(0, 2, 80).astype(np.float32)
    noise[:2] = [0, 1]
    cfg = SiameseConfig(hidden=16, embed_dim=8, epochs=30, batch_size=64, patience=3)
    model, history = train_siamese(feats, train_pos, np.ones(150), categories=cats, cfg=cfg, val_pairs=val, val_labels=noise)
    assert len(history) == min(30, best_epoch(history) + 3) < 30
    # The model kept is the best epoch's: its AUC on the validation pairs is that epoch's.
    kept = roc_auc(noise, score_pairs(model, feats[val[:, 0]], feats[val[:, 1]]))
    assert kept == pytest.approx(history[best_epoch(history) - 1]["val_auc"])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_attribute_aware_scores_are_symmetric_and_read_the_attributes(fusion):
    torch.manual_seed(0)
    cfg = SiameseConfig(fusion=fusion, hidden=16, embed_dim=8, attribute_dim=3)
    model = SiameseNet(12, cfg, attribute_sizes=(2, 4)).eval()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 12)).astype(np.float32), rng.normal(size=(40, 12)).astype(np.float32)
    aa, ab = np.stack([rng.integers(0, 2, 40), rng.integers(0, 4, 40)], 1), np.stack([rng.integers(0, 2, 40), rng.integers(0, 4, 40)], 1)
    np.testing.assert_array_equal(score_pairs(model, a, b, aa=aa, ab=ab), score_pairs(model, b, a, aa=ab, ab=aa))
    other = aa.copy()
    other[:, 0] = 1 - other[:, 0]
    assert not np.allclose(score_pairs(model, a, b, aa=aa, ab=ab), score_pairs(model, a, b, aa=other, ab=ab))
    # Unknown values (negative, beyond the trained ones, or no attributes at all) share the "unknown" rows.
    unknown = np.full((40, 2), -1)
    np.testing.assert_array_equal(score_pairs(model, a, b, aa=unknown, ab=ab), score_pairs(model, a, b, aa=np.full((40, 2), 9), ab=ab))
    np.testing.assert_array_equal(score_pairs(model, a, b, aa=unknown, ab=unknown), score_pairs(model, a, b))
    with pytest.raises(ValueError, match=r"shape \(40, 2\)"):
        score_pairs(model, a, b, aa=aa[:, :1], ab=ab)


def test_attribute_aware_model_learns_what_the_features_do_not_show():
    # Two items go together when they share a "gender" that the image features do not show; the
    # negatives are of the partner's own category, so only the attribute tells them apart.
    rng = np.random.default_rng(4)
    n = 400
    cats = rng.integers(0, 4, n)
    gender = rng.integers(0, 2, n)
    season = rng.integers(0, 3, n)  # noise: read, but unrelated to the rule
    feats = np.concatenate([np.eye(4)[cats], rng.normal(size=(n, 8))], axis=1).astype(np.float32)
    attributes = np.stack([gender, season], 1)

    def pairs(m, positive):
        out = []
        while len(out) < m:
            i, j = rng.integers(0, n, 2)
            if i != j and cats[i] != cats[j] and (gender[i] == gender[j]) == positive:
                out.append((i, j))
        return np.array(out)

    train, test = pairs(600, True), np.concatenate([pairs(200, True), pairs(200, False)])
    y = np.r_[np.ones(200), np.zeros(200)]
    aucs = {}
    for dim in (0, 4):
        cfg = SiameseConfig(hidden=32, embed_dim=16, epochs=15, batch_size=128, lr=3e-3, category_dim=4, attribute_dim=dim)
        model, _ = train_siamese(feats, train, np.ones(len(train)), categories=cats, attributes=attributes, cfg=cfg)
        assert model.uses_attributes == (dim > 0)
        aucs[dim] = roc_auc(y, score_pairs(model, feats[test[:, 0]], feats[test[:, 1]], cats[test[:, 0]], cats[test[:, 1]],
                                           attributes[test[:, 0]], attributes[test[:, 1]]))
    assert aucs[4] > 0.9 and aucs[0] < 0.65


def test_attribute_aware_model_round_trips_through_its_config():
    model = SiameseNet(6, SiameseConfig(hidden=8, embed_dim=4, category_dim=3, attribute_dim=2), n_categories=5,
                       attribute_sizes=(3, 7)).eval()
    again = SiameseNet.from_state(model.state_dict(), model.config_dict())
    f = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    c = np.array([0, 4, -1, 2])
    att = np.array([[0, 6], [2, -1], [1, 3], [-1, 0]])
    np.testing.assert_array_equal(score_pairs(model, f, f[::-1], c, c[::-1], att, att[::-1]),
                                  score_pairs(again, f, f[::-1], c, c[::-1], att, att[::-1]))
    assert again.attribute_sizes == (3, 7)
    # A model saved before side attributes existed has none.
    old = model.config_dict()
    del old["attribute_sizes"]
    old["cfg"] = {k: v for k, v in old["cfg"].items() if not k.startswith("attribute_")}
    plain = SiameseNet(6, SiameseConfig(hidden=8, embed_dim=4, category_dim=3), n_categories=5)
    assert not SiameseNet.from_state(plain.state_dict(), old).uses_attributes
