import csv
import json

import numpy as np
import pytest

from ml import evaluate
from tests.factories import write_image

LEAVES = [("Apparel", "Topwear", "Tshirts", (200, 30, 30), "rect"), ("Apparel", "Bottomwear", "Jeans", (30, 30, 200), "rect"),
          ("Footwear", "Shoes", "Sneakers", (30, 160, 40), "ellipse"), ("Accessories", "Bags", "Handbags", (230, 200, 40), "ellipse")]


def _catalog(folder, n=40):
    rows = []
    for i in range(n):
        master, sub, article, colour, shape = LEAVES[i % 4]
        write_image(folder / "images" / f"{i}.jpg", color=colour, shape=shape, size=(40, 40))
        rows.append({"id": i, "masterCategory": master, "subCategory": sub, "articleType": article, "image": f"images/{i}.jpg"})
    with open(folder / "styles.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "styles.csv"


def _record_trained_rows(monkeypatch) -> list[set]:
    """The rows each fine-tuned network of the next evaluate.main trains on, in order."""
    trained = []
    real_finetune = evaluate.finetune_layer4

    def recording_finetune(*args, rows=None, **kwargs):
        trained.append(set(rows.tolist()))
        return real_finetune(*args, rows=rows, **kwargs)

    monkeypatch.setattr(evaluate, "finetune_layer4", recording_finetune)
    return trained


def test_evaluate_prints_one_json_line_with_the_contract_keys(tmp_path, capsys):
    styles = _catalog(tmp_path)
    result = evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--corrupt", "0.1", "--seed", "0", "--backbone", "resnet18",
        "--image-size", "32", "--epochs", "1", "--workers", "0", "--batch-size", "8", "--device", "cpu",
        "--dump", str(tmp_path / "flags.npz"), "--ensemble", "separate",
    ])
    out = capsys.readouterr()
    last = json.loads(out.out.strip().splitlines()[-1])
    for key in ("sub_category_accuracy", "article_type_accuracy", "knn_precision_at_10", "flag_precision", "flag_recall", "images", "seconds"):
        assert key in last
    assert last == json.loads(json.dumps(result))
    # The k-NN space is the features beside the ensemble's category probabilities; the features
    # alone are reported beside it.
    assert last["knn_posterior_weight"] == 1.0 and 0.0 <= last["knn_precision_at_10_features"] <= 1.0
    assert last["images"] == 40 and last["corrupted"] == 4 and last["finetune_epochs"] == [1, 1, 1] and last["final_networks"] == 3
    assert "decode + frozen layers" in out.err  # progress goes to stderr
    # resnet18 has 4 blocks in layer3+layer4: the default (9, for ResNet-50) is clamped, and said so.
    assert last["finetune_blocks"] == 4 and "fine-tuning all 4" in out.err
    assert last["flag_networks"] == 3 and last["flag_epochs"] == [6, 6, 6] and last["flag_rule"].startswith("cross-fitted")
    # --dump keeps what the flags were computed from: every product scored, the corrupted ones marked.
    dump = np.load(tmp_path / "flags.npz")
    assert dump["logits_articleType"].shape == (40, 4) and np.isfinite(dump["logits_articleType"]).all()
    assert (np.abs(dump["logits_subCategory"]).sum(1) > 0).all() and dump["corrupted"].sum() == 4
    assert (dump["given_articleType"] != dump["true_articleType"]).sum() == 4


def test_flag_networks_never_score_a_row_they_trained_on(tmp_path, monkeypatch):
    trained, scored, seeds = [], [], []
    real_finetune, real_predict = evaluate.finetune_layer4, evaluate.finetune_predict_logits

    def recording_finetune(*args, rows=None, **kwargs):
        trained.append(set(rows.tolist()))
        seeds.append(kwargs["cfg"].seed)
        return real_finetune(*args, rows=rows, **kwargs)

    def recording_predict(result, cache, *, rows=None, **kwargs):
        scored.append(set(rows.tolist()))
        return real_predict(result, cache, rows=rows, **kwargs)

    monkeypatch.setattr(evaluate, "finetune_layer4", recording_finetune)
    monkeypatch.setattr(evaluate, "finetune_predict_logits", recording_predict)
    styles = _catalog(tmp_path)
    evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
        "--blocks", "1", "--flag-networks", "3", "--workers", "0", "--batch-size", "8", "--device", "cpu", "--ensemble", "separate",
    ])
    # The flag networks come first, one per fold of the train split; the last three calls are the
    # final networks (train split, less the flagged products) and their test-split predictions.
    assert len(trained) == 6 and len(scored) == 6
    everything, test_split = set(range(40)), scored[-1]
    assert all(s == test_split for s in scored[3:]) and all(t == trained[-1] for t in trained[3:])
    assert len(set(seeds[3:])) == 3  # an ensemble of three seeds
    flag_trained, flag_scored = trained[:3], scored[:3]
    train_split = set().union(*flag_scored)
    assert not (train_split & test_split) and train_split | test_split == everything
    assert all(not (t & s) for t, s in zip(flag_trained, flag_scored))
    assert all(t | s == everything for t, s in zip(flag_trained, flag_scored))
    assert sum(map(len, flag_scored)) == len(train_split)  # each train product scored once
    assert all(test_split <= t for t in flag_trained)
    assert trained[-1] <= train_split  # the final networks never see the test split


def test_flagged_train_products_are_left_out_of_the_final_network(tmp_path, monkeypatch):
    trained = _record_trained_rows(monkeypatch)
    styles = _catalog(tmp_path)
    common = ["--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
              "--flag-epochs", "1", "--blocks", "1", "--flag-networks", "2", "--workers", "0", "--batch-size", "8", "--device", "cpu",
              "--corrupt", "0.1", "--dump", str(tmp_path / "flags.npz"), "--flag-score", "path_geomean", "--ensemble", "separate"]
    # The plain path probability below 0.3 flags many products on these barely trained networks
    # (their ratio to the top category stays near 1), yet leaves the final network some.
    result = evaluate.main(common + ["--flag-below", "0.3"])
    cleaned = np.load(tmp_path / "flags.npz")["cleaned"]
    # Both flag networks train on the test split; each also on the other network's fold of the train split.
    train_split = set(range(40)) - (trained[0] & trained[1])
    assert result["cleaned_train_rows"] == int(cleaned.sum()) > 0
    assert trained[-1] == train_split - set(np.flatnonzero(cleaned).tolist())
    assert result["cleaned_train_rows_corrupted"] == int((cleaned & np.load(tmp_path / "flags.npz")["corrupted"]).sum())
    trained.clear()
    result = evaluate.main(common + ["--flag-below", "0.3", "--no-clean-train"])
    assert result["cleaned_train_rows"] == 0 and len(trained[-1]) == len(train_split)


def test_fold_networks_score_their_own_fold_and_classify_the_test_split_together(tmp_path, monkeypatch):
    trained, scored = [], []
    real_finetune, real_predict = evaluate.finetune_layer4, evaluate.finetune_predict_logits

    def recording_finetune(*args, rows=None, **kwargs):
        trained.append(set(rows.tolist()))
        return real_finetune(*args, rows=rows, **kwargs)

    def recording_predict(result, cache, *, rows=None, **kwargs):
        scored.append((id(result), set(rows.tolist())))
        return real_predict(result, cache, rows=rows, **kwargs)

    monkeypatch.setattr(evaluate, "finetune_layer4", recording_finetune)
    monkeypatch.setattr(evaluate, "finetune_predict_logits", recording_predict)
    styles = _catalog(tmp_path)
    result = evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
        "--blocks", "1", "--flag-networks", "3", "--workers", "0", "--batch-size", "8", "--device", "cpu", "--ensemble", "folds",
        "--corrupt", "0.1",
    ])
    # Three networks in all, no separate final networks: each scores its own fold of the train
    # split, then all three classify the test split, which none of them trained on.
    assert len(trained) == 3 and result["final_networks"] == 3 and result["ensemble"] == "folds"
    assert result["flag_networks"] == 3 and result["flag_epochs"] == [1, 1, 1] and result["finetune_epochs"] == [1, 1, 1]
    fold_scores, test_scores = scored[:3], scored[3:]
    test_split = test_scores[0][1]
    assert len(test_scores) == 3 and {net for net, _ in test_scores} == {net for net, _ in fold_scores}
    assert all(rows == test_split for _, rows in test_scores)
    train_split = set().union(*(rows for _, rows in fold_scores))
    assert train_split | test_split == set(range(40)) and not (train_split & test_split)
    assert sum(len(rows) for _, rows in fold_scores) == len(train_split)  # each train product scored once
    for t, (_, s) in zip(trained, fold_scores):
        assert not (t & s) and not (t & test_split) and t | s == train_split
    assert result["cleaned_train_rows"] == 0  # nothing to clean: the flags come from the ensemble itself


def test_flag_scope_train_keeps_the_flag_networks_off_the_test_split_and_dump_networks_saves_every_network(tmp_path, monkeypatch):
    trained = _record_trained_rows(monkeypatch)
    styles = _catalog(tmp_path)
    evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
        "--flag-epochs", "1", "--blocks", "1", "--flag-networks", "2", "--final-networks", "2", "--workers", "0", "--batch-size", "8",
        "--device", "cpu", "--ensemble", "separate", "--flag-scope", "train", "--dump-networks", str(tmp_path / "networks.npz"),
    ])
    dump = np.load(tmp_path / "networks.npz")
    test_split = set(dump["test_rows"].tolist())
    assert len(trained) == 4 and all(not (t & test_split) for t in trained)
    for name in ("final0", "final1", "flag0", "flag1"):
        assert dump[f"{name}_logits_category"].shape == (len(test_split), 4)
        assert dump[f"{name}_std"].shape == (40, 512) and dump[f"{name}_classifier_weight"].shape == (4, 512)


def test_the_plan_falls_back_to_fewer_blocks_then_to_fold_networks_when_the_budget_is_short():
    common = dict(n=6000, n_train=4800, flag_networks=3, flag_epochs=6, final_networks=3, epochs=10, blocks=9, embed_s=40.0, budget_s=1680.0)
    fast = evaluate.plan_ensemble("auto", row_s={9: 0.005}, **common)
    assert fast["mode"] == "separate" and fast["networks"] == 3 and fast["blocks"] == 9 and 0.5 < fast["final_share"] < 1
    # Somewhat slower (as measured on a 2-core AVX-512 machine): the separate networks on 9 blocks
    # would not fit, on two thirds of them they do; they come before fold networks on 9.
    between = evaluate.plan_ensemble("auto", row_s={9: 0.0092, 6: 0.0057, 3: 0.0034}, **common)
    assert between["mode"] == "separate" and between["blocks"] == 6 and between["fits"]
    assert between["planned_s"] == pytest.approx((3 * (6000 - 4800 / 3) * 6 + 3 * 4800 * 10) * 0.0057, abs=0.05)
    # A processor three times slower: the fold networks do both jobs, with all 9 blocks while each
    # still gets at least 8 epochs ...
    slow = evaluate.plan_ensemble("auto", row_s={9: 0.014, 6: 0.010, 3: 0.006}, **common)
    assert slow["mode"] == "folds" and slow["networks"] == 3 and slow["blocks"] == 9 and slow["final_share"] == 1.0
    assert "separate networks on 9 block(s) would need" in slow["summary"] and "on 6 block(s)" in slow["summary"]
    # ... and their planned work is a fraction of the separate networks': 3 x 2/3 of the train split
    # against 3 flag networks on most of the catalog plus 3 on the whole train split.
    separate = evaluate.plan_ensemble("separate", row_s={9: 0.014}, **common)
    assert slow["planned_s"] == pytest.approx(3 * 4800 * 2 / 3 * 10 * 0.014)
    assert slow["planned_s"] < 0.5 * separate["planned_s"]
    # Slower still: fewer blocks, the most that leave 8 epochs; and the fewest when none does.
    slower = evaluate.plan_ensemble("auto", row_s={9: 0.033, 6: 0.015, 3: 0.010}, **common)
    assert slower["mode"] == "folds" and slower["blocks"] == 6
    slowest = evaluate.plan_ensemble("auto", row_s={9: 0.2, 6: 0.15, 3: 0.1}, **common)
    assert slowest["blocks"] == 3
    # Asked for explicitly, each mode is kept whatever the speed; without flag networks there is no fold.
    assert evaluate.plan_ensemble("folds", row_s={9: 0.005}, **common)["mode"] == "folds"
    forced = evaluate.plan_ensemble("separate", row_s={9: 0.0092, 6: 0.0057, 3: 0.0034}, **common)
    assert forced["mode"] == "separate" and forced["blocks"] == 9 and not forced["fits"]
    assert evaluate.plan_ensemble("auto", row_s={9: 0.033}, **{**common, "flag_networks": 0})["mode"] == "separate"
    assert evaluate.block_choices(9) == [9, 6, 3] and evaluate.block_choices(4) == [4, 2, 1] and evaluate.block_choices(1) == [1]


def test_a_short_budget_trains_fewer_blocks_from_the_advanced_cache(tmp_path, capsys):
    styles = _catalog(tmp_path)
    result = evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32",
        "--workers", "0", "--batch-size", "8", "--device", "cpu", "--ensemble", "folds", "--epochs", "1000", "--budget-minutes", "0.01",
        "--knn-posterior-weight", "0",
    ])
    # Weight 0: the k-NN space is the features alone.
    assert result["knn_posterior_weight"] == 0.0 and result["knn_precision_at_10"] == result["knn_precision_at_10_features"]
    # Next to no time: resnet18's 4 blocks (asked for by the default, clamped) would not get their 8
    # epochs, so fewer blocks are trained, from the cache advanced through the frozen ones.
    assert result["ensemble"] == "folds" and result["finetune_blocks"] in (1, 2) and "cache_advance" in result["stage_seconds"]
    # Each network gets about a second (the floor of a network's budget), far from 1,000 epochs even
    # on a fast processor: 10 epochs of this tiny catalog once fitted in it, and the cut went unseen.
    assert result["final_networks"] == 3 and all(1 <= e < 1000 for e in result["finetune_epochs"])
    assert "4 block(s)" in capsys.readouterr().err and "fold networks" in result["ensemble_plan"]


def test_missing_column_and_missing_images_are_reported(tmp_path, capsys):
    (tmp_path / "styles.csv").write_text("id,image,articleType\n1,a.jpg,Tshirts\n")
    with pytest.raises(SystemExit, match="masterCategory"):
        evaluate.read_catalog(tmp_path / "styles.csv", tmp_path)
    styles = _catalog(tmp_path, n=24)
    (tmp_path / "images" / "3.jpg").unlink()
    rows = evaluate.read_catalog(styles, tmp_path)
    assert len(rows) == 23 and "line 5" in capsys.readouterr().err


def test_corruption_moves_exactly_the_fraction_to_other_categories():
    rng = np.random.default_rng(0)
    article = np.repeat(np.arange(5), 40)
    given, corrupted = evaluate.corrupt_categories(article, 0.05, rng)
    assert corrupted.sum() == 10
    assert (given[corrupted] != article[corrupted]).all() and (given[~corrupted] == article[~corrupted]).all()
    test = evaluate.stratified_split(article, 0.2, rng)
    assert all((test & (article == c)).sum() == 8 for c in range(5))


def test_precision_at_recall_flags_lowest_scores_first():
    corrupted = np.array([True, False, True, False, False, True])
    scores = np.array([0.01, 0.02, 0.03, 0.5, 0.6, 0.9])
    # Recall 2/3 is first reached after 3 flags (2 hits): precision 2/3; all 3 hits need all 6 rows.
    assert evaluate.precision_at_recall(scores, corrupted, recall=0.6) == pytest.approx(2 / 3)
    assert evaluate.precision_at_recall(scores, corrupted, recall=1.0) == pytest.approx(0.5)
    assert np.isnan(evaluate.precision_at_recall(scores, np.zeros(6, bool), recall=0.8))


def test_category_tree_maps_each_fine_category_to_its_parent():
    fine = np.array([0, 0, 0, 1, 1, 3])
    coarse = np.array([1, 1, 0, 2, 2, 0])  # one product of category 0 is listed under another parent
    tree = evaluate.category_tree(fine, coarse, 4, 3)
    np.testing.assert_array_equal(tree, [[0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]])
    # A coarse level's probability is the sum of its fine categories'.
    proba = np.array([[0.2, 0.5, 0.0, 0.3]])
    np.testing.assert_allclose(proba @ tree, [[0.3, 0.2, 0.5]])


def test_category_path_scores_rank_a_broken_path_below_a_sound_one():
    from ml.category import category_path_scores

    # Two products, two levels. Product 0's given path is what the model believes; product 1's given
    # fine class is unlikely and its given parent is the model's second choice.
    fine = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1]])
    parent = np.array([[0.9, 0.1], [0.6, 0.4]])
    scores = category_path_scores([fine, parent], [np.array([0, 2]), np.array([0, 1])])
    assert np.allclose(scores["levels"][0], [0.8, 0.1]) and np.allclose(scores["levels"][1], [0.9, 0.4])
    assert np.allclose(scores["geomean"], [np.sqrt(0.8 * 0.9), np.sqrt(0.1 * 0.4)])
    assert np.allclose(scores["ratio"], [1.0, np.sqrt(0.1 / 0.7 * 0.4 / 0.6)])
    with pytest.raises(ValueError, match="one given-label array per probability level"):
        category_path_scores([fine], [])


def test_steadiest_timings_measure_every_choice_twice_and_keep_the_faster_reading():
    calls = []
    readings = {9: [0.0086, 0.0087], 6: [0.0084, 0.0058], 3: [0.0040, 0.0041]}  # 6 blocks: a burst of load, then steady

    def measure(blocks):
        calls.append(blocks)
        return readings[blocks].pop(0)

    assert evaluate.steadiest_timings(measure, [9, 6, 3]) == {9: 0.0086, 6: 0.0058, 3: 0.0040}
    assert calls == [9, 6, 3, 3, 6, 9]
    assert list(evaluate.steadiest_timings(lambda b: 1.0, [9])) == [9]


def test_lr_reaches_every_fine_tuning_run_and_the_json_line(tmp_path, monkeypatch, capsys):
    rates = []
    real_finetune = evaluate.finetune_layer4

    def recording_finetune(*args, **kwargs):
        rates.append(kwargs["cfg"].lr)
        return real_finetune(*args, **kwargs)

    monkeypatch.setattr(evaluate, "finetune_layer4", recording_finetune)
    styles = _catalog(tmp_path)
    common = ["--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
              "--flag-epochs", "1", "--blocks", "1", "--flag-networks", "2", "--workers", "0", "--batch-size", "8", "--device", "cpu",
              "--ensemble", "separate"]
    result = evaluate.main(common + ["--lr", "0.0005"])
    # Two flag networks, then three final networks: all at the rate asked for.
    assert rates == [0.0005] * 5 and result["lr"] == 0.0005
    with pytest.raises(SystemExit):
        evaluate.main(common + ["--lr", "0"])
    assert "--lr must be above 0" in capsys.readouterr().err


@pytest.mark.parametrize("weights, source", [((1.0, 0.0), "fine_tuned"), ((0.0, 1.0), "frozen_head"), (None, "off")])
def test_the_frozen_head_blend_classifies_flags_and_ranks_by_its_fitted_weights(tmp_path, monkeypatch, weights, source):
    fitted, head_rows = [], []

    def fixed_weights(scores, labels):
        fitted.append((len(scores), len(labels)))
        return np.array(weights, dtype=np.float64)

    real_train = evaluate.train_category_model

    def recording_train(features, *args, **kwargs):
        head_rows.append(len(features))
        return real_train(features, *args, **kwargs)

    monkeypatch.setattr(evaluate, "fit_pool_weights", fixed_weights)
    monkeypatch.setattr(evaluate, "train_category_model", recording_train)
    styles = _catalog(tmp_path)
    result = evaluate.main([
        "--styles", str(styles), "--images", str(tmp_path), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
        "--flag-epochs", "1", "--blocks", "1", "--flag-networks", "2", "--folds", "2", "--workers", "0", "--batch-size", "8",
        "--device", "cpu", "--ensemble", "separate", "--dump", str(tmp_path / "flags.npz"),
        *(["--no-frozen-head"] if weights is None else []),
    ])
    dump = np.load(tmp_path / "flags.npz")
    if weights is None:
        assert result["frozen_head"] is False and not fitted and not head_rows
        assert "frozen_head_weights" not in result and "blend_articleType" not in dump.files
        return
    # One pair of weights per level (articleType, subCategory, masterCategory), each fitted on the
    # train split's cross-fitted scores of both models.
    assert result["frozen_head"] is True and len(fitted) == 3 and {f for f in fitted} == {(2, fitted[0][1])}
    n_train = fitted[0][1]
    assert 0 < n_train < 40 and result["frozen_head_weights"] == {level: list(weights) for level in evaluate.LEVELS[::-1]}
    # The test split's frozen head learned from what the final networks learned from.
    assert head_rows == [n_train - result["cleaned_train_rows"]]
    # The classes, the flags and what --dump keeps all follow the blend.
    assert result["article_type_accuracy"] == result[f"article_type_accuracy_{source}"]
    if source == "fine_tuned":
        assert result["flag_precision_at_recall_0_8"] == result["flag_precision_at_recall_0_8_fine_tuned"]
        np.testing.assert_allclose(dump["blend_articleType"], dump["logits_articleType"], rtol=1e-6)
        assert result["knn_precision_at_10"] == result["knn_precision_at_10_fine_tuned_posterior"]
    else:
        assert result["sub_category_accuracy"] == result["sub_category_accuracy_frozen_head"]
        assert not np.allclose(dump["blend_articleType"], dump["logits_articleType"])
