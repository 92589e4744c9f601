import numpy as np
import pytest

from ml.category import (
    CategoryConfig,
    CategoryModel,
    fit_pool_weights,
    fit_temperature,
    make_folds,
    out_of_fold_attribute_proba,
    out_of_fold_predictions,
    out_of_fold_proba,
    train_category_model,
)

FAST = CategoryConfig(hidden=32, epochs=20, min_steps=60, folds=3, batch_size=64)


def test_learns_clustered_categories_and_attributes(clustered):
    feats, labels = clustered
    colour = labels % 2
    colour[::5] = -1  # unknown colour for some products
    model = train_category_model(feats, labels, 4, attributes={"colour": (colour, 2)}, cfg=FAST)
    proba = model.predict_proba(feats)
    assert proba.shape == (120, 4)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == labels).mean() > 0.95
    attr = model.predict_attribute_proba("colour", feats)
    assert (attr.argmax(1) == labels % 2).mean() > 0.9
    with pytest.raises(KeyError, match="colour"):
        model.predict_attribute_proba("size", feats)
    rebuilt = CategoryModel.from_state(model.state_dict(), model.config_dict())
    np.testing.assert_array_equal(rebuilt.predict_proba(feats), proba)


def test_out_of_fold_never_uses_a_rows_own_label():
    # Unique random points with random labels: a model memorises its training rows, so any
    # prediction made by a model that saw the row would recover the row's label.
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(90, 64)).astype(np.float32)
    labels = rng.integers(0, 3, 90)
    cfg = CategoryConfig(hidden=256, epochs=200, min_steps=200, folds=3, dropout=0.0, input_dropout=0.0, label_smoothing=0.0, weight_decay=0.0, lr=3e-3)
    in_sample = train_category_model(feats, labels, 3, cfg=cfg)
    assert (in_sample.predict_proba(feats).argmax(1) == labels).mean() > 0.95
    oof = out_of_fold_predictions(feats, labels, 3, cfg=cfg)
    assert (oof["proba"].argmax(1) == labels).mean() < 0.6


def test_out_of_fold_row_prediction_independent_of_its_label():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(60, 8)).astype(np.float32)
    labels = np.repeat([0, 1, 2], 20)
    folds = np.arange(60) % 3
    base = out_of_fold_predictions(feats, labels, 3, folds=folds, cfg=FAST)
    changed = labels.copy()
    changed[5] = (labels[5] + 1) % 3
    other = out_of_fold_predictions(feats, changed, 3, folds=folds, cfg=FAST)
    # Row 5's model and its temperature never saw row 5's label: its prediction is bit-identical.
    np.testing.assert_array_equal(base["proba"][5], other["proba"][5])
    # The other folds trained on row 5, so their predictions move: the comparison above is not vacuous.
    assert not np.array_equal(base["proba"][folds != folds[5]], other["proba"][folds != folds[5]])


def test_folds_are_stratified_and_respect_groups():
    labels = np.repeat([0, 1], 30)
    groups = np.repeat(np.arange(20), 3)  # duplicates of one product share a group
    folds = make_folds(labels, 5, groups=groups, seed=0)
    for g in range(20):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) == set(range(5))
    plain = make_folds(labels, 5)
    for f in range(5):
        assert (labels[plain == f] == 0).sum() == 6


def test_out_of_fold_is_calibrated_and_wrappers_agree(clustered):
    feats, labels = clustered
    proba = out_of_fold_proba(feats, labels, 4, cfg=FAST)
    assert proba.shape == (120, 4)
    assert (proba.argmax(1) == labels).mean() > 0.9
    colour = labels % 2
    colour[:10] = -1
    attr = out_of_fold_attribute_proba(feats, colour, 2, cfg=FAST)
    assert attr.shape == (120, 2) and (attr[10:].argmax(1) == colour[10:]).mean() > 0.9


def test_temperature_fits_overconfident_logits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    # True probability of the label is 0.75, but the logits claim ~0.98.
    correct = rng.random(2000) < 0.75
    pred = np.where(correct, labels, 1 - labels)
    logits = np.zeros((2000, 2))
    logits[np.arange(2000), pred] = 4.0
    t = fit_temperature(logits, labels)
    p = 1 / (1 + np.exp(-4.0 / t))
    assert abs(p - 0.75) < 0.03


def test_pool_weights_trust_the_informative_model_and_share_between_copies():
    rng = np.random.default_rng(0)
    n, c = 3000, 5
    true_logits = rng.normal(0, 2, (n, c))
    labels = np.array([rng.choice(c, p=np.exp(z) / np.exp(z).sum()) for z in true_logits])
    noise = rng.normal(0, 2, (n, c))
    # A model that knows the generating logits and one that is noise: the noise gets about nothing,
    # the informed one about its true scale.
    informed, useless = fit_pool_weights([true_logits, noise], labels)
    assert abs(informed - 1.0) < 0.1 and abs(useless) < 0.05
    # The same model twice: the pool does not double its confidence, the copies share the weight.
    first, second = fit_pool_weights([true_logits, true_logits], labels)
    assert abs(first + second - 1.0) < 0.1
    # Two half-informed models (each sees the logits at half scale plus its own noise) are worth
    # more together than either alone.
    half_a = true_logits / 2 + rng.normal(0, 1, (n, c))
    half_b = true_logits / 2 + rng.normal(0, 1, (n, c))
    w = fit_pool_weights([half_a, half_b], labels)
    assert w.min() > 0.4

    def nll(scores, weights):
        z = sum(wk * sk for wk, sk in zip(weights, scores))
        z = z - z.max(1, keepdims=True)
        return -np.mean(z[np.arange(n), labels] - np.log(np.exp(z).sum(1)))

    assert nll([half_a, half_b], w) < min(nll([half_a], fit_pool_weights([half_a], labels)), nll([half_b], fit_pool_weights([half_b], labels)))
    # Unlabelled rows (-1) are ignored; with under two labelled rows the weights are equal.
    np.testing.assert_allclose(fit_pool_weights([true_logits[:3], noise[:3]], np.array([-1, 2, -1])), [0.5, 0.5])
    with pytest.raises(ValueError, match="no scores"):
        fit_pool_weights([], labels)


def test_bad_labels_name_the_row(clustered):
    feats, labels = clustered
    bad = labels.copy()
    bad[7] = 9
    with pytest.raises(ValueError, match="row 7"):
        train_category_model(feats, bad, 4, cfg=FAST)
    with pytest.raises(ValueError, match="rows"):
        train_category_model(feats[:5], labels, 4, cfg=FAST)
