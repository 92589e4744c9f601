"""Evaluate the ml/ pipeline on a real catalog folder (styles.csv + images).

    python -m ml.evaluate --styles PATH/styles.csv --images PATH --corrupt 0.05 --seed 0

What it does, in the order a real retraining would:
1. corrupt the articleType of ``--corrupt`` of the products at random (the new category path is
   another articleType with its own subCategory/masterCategory), as a catalog with errors;
2. split the products into train/test (stratified by the true articleType);
3. run the frozen part of the backbone once per image (cached, fp16, at ``--image-size`` px); in the
   same pass, the untouched backbone's multi-level pooled features (layer2 and layer4 averaged over
   the map, layer3 over each quarter; ``--frozen-head``), on which a category head is cross-fitted
   over the catalog (``--folds``) at once: a second, cheap model that never fine-tunes;
4. catalog-error flags, each product scored by a network that never saw its (possibly wrong) label
   (cross-fitting): the train split's ``--flag-networks`` folds each by a network fine-tuned
   (``--flag-epochs``) on every product but that fold, the test split by the final networks (step 5);
   a product is flagged when its given category path scores below ``--flag-below``: per level
   (articleType, subCategory, masterCategory) the calibrated probability of the given category
   over that of the top one, geometric mean over the levels (``--flag-score``; it beat the plain
   path probability in every saved run); precision and recall of the flags against the corrupted
   set, and the best precision at recall >= 0.8;
5. fine-tune the last ``--blocks`` bottleneck blocks of layer3+layer4 plus category heads
   (articleType, with subCategory and masterCategory as cross-learned heads) on the train split's
   labels as the catalog gives them, less the products flagged in step 4 (``--clean-train``: what
   a merchandiser would fix before retraining), within the time budget: ``--final-networks``
   networks from different seeds, an ensemble (their mean logits classify; their embeddings, each
   L2-normalised, side by side are the k-NN space, so its cosine is the mean of theirs);
6. re-embed every product from the cache with the new blocks ("new embeddings"), each network's,
   as the mean of the activation maps' and their mirror images' embeddings (``--knn-hflip``);
7. the blend (``--frozen-head``): per level, softmax(a * the fine-tuned networks' calibrated logits
   + b * the log of the frozen head's probabilities), a and b fitted on the train split, where both
   models' scores are cross-fitted, to the given labels (a stacked blend, calibrated by
   construction); it classifies the test split, scores every flag (step 4's scores are the
   fine-tuned side) and gives the k-NN space its probabilities. On the real photos, on a 2-core
   processor without fast bf16, the frozen head alone classified about as well as the fine-tuned
   networks the budget allowed there, and the blend beat both (each figure is reported beside it);
8. category accuracy per level on the test split (the blend, else the fine-tuned networks' own
   heads, against the true labels); k-NN precision@10 of the test products against the whole catalog (same true
   articleType) by exact cosine, which is what the app serves (its PCA-whitened index only
   shortlists, then re-ranks by exact cosine). The k-NN space is category-aware: the embeddings
   beside the ensemble's articleType probabilities (``--knn-posterior-weight``), so that neighbours
   look alike and are predicted to be the same kind of product; the embeddings alone are reported
   beside it (``knn_precision_at_10_features``).

Defaults (96 px, 9 blocks, 3 final networks of up to 10 epochs; 3 flag networks of up to 6
epochs) were chosen by a sweep of image size, blocks, epochs and ensemble size on this
repository's sample catalog; they fit the 30-minute budget on 2 CPU cores with fast bf16 (AMX).

The time budget (``--budget-minutes``) is planned before any training, from the measured seconds
per row and epoch (``--ensemble auto``). When the separate flag and final networks above would not
get their epochs, they first fine-tune two thirds of the blocks (layer3's last three and layer4),
which on a processor about twice as slow as the AMX one beat the fold networks below on
articleType and flags. When even that does not fit, as on a 2-core processor without fast bf16
(about 4.7 times slower), one set of networks does both jobs instead: each of the
``--flag-networks`` networks is fine-tuned on the train split less one fold, scores that fold's
flags, and joins the ensemble that classifies the test split (less than half the work); and when
even those would get fewer than ``--min-epochs`` epochs, they fine-tune fewer blocks (two thirds,
then one third), which on the real photos did better than all blocks barely trained. The JSON line
says which plan ran (``ensemble``, ``ensemble_plan``, ``finetune_blocks``, ``finetune_epochs``).

Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ml.backbone import Embedder, bf16_supported
from ml.category import (
    CategoryConfig,
    _softmax,
    category_path_scores,
    fit_pool_weights,
    fit_temperature,
    make_folds,
    out_of_fold_predictions,
    train_category_model,
)
from ml.config import BackboneConfig
from ml.finetune import (
    FinetuneConfig,
    backbone_tail,
    finetune_layer4,
    finetune_predict_logits,
    cache_advance,
    layer3_cache,
    layer4_embed,
    training_seconds_per_row,
)
from ml.index import VectorIndex, l2_normalise, with_category_posterior
from ml.metrics import accuracy, flag_precision_recall, precision_at_k, top_k_accuracy

LEVELS = ("masterCategory", "subCategory", "articleType")
REQUIRED = ("image",) + LEVELS


class ProgressLine:
    """One self-overwriting progress line on stderr: stage, done/total, rate, ETA."""

    def __init__(self, stage: str, stream=None):
        self.stage, self.stream, self.t0 = stage, stream or sys.stderr, time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = f"eta {(total - done) / rate:.0f}s" if rate > 0 else "eta ?"
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{self.stage}: {done}/{total} ({rate:.2f}/s, {eta})   {end}")
        self.stream.flush()


def say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def read_catalog(styles: Path, images: Path) -> list[dict]:
    if not styles.is_file():
        raise SystemExit(f"--styles {styles}: no such file")
    with open(styles, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{styles}: missing column(s) {missing}; found {reader.fieldnames}")
        rows, skipped = [], []
        for line, row in enumerate(reader, start=2):
            if not all((row.get(c) or "").strip() for c in REQUIRED):
                skipped.append(f"line {line}: empty {[c for c in REQUIRED if not (row.get(c) or '').strip()]}")
                continue
            path = images / row["image"].strip()
            if not path.is_file():
                skipped.append(f"line {line}: image {path} not found")
                continue
            row["path"] = str(path)
            rows.append(row)
    if skipped:
        say(f"skipped {len(skipped)} row(s): " + "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if len(rows) < 20:
        raise SystemExit(f"{styles}: only {len(rows)} usable rows; need at least 20")
    return rows


def stratified_split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean test mask; classes with a single product stay in train."""
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(members) * test_fraction))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
            test[members[:n_test]] = True
    return test


def corrupt_categories(article: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(given articleType codes, corrupted mask): ``fraction`` of rows moved to another articleType."""
    n = len(article)
    n_classes = int(article.max()) + 1
    corrupted = np.zeros(n, bool)
    corrupted[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    given = article.copy()
    shift = rng.integers(1, n_classes, corrupted.sum())
    given[corrupted] = (article[corrupted] + shift) % n_classes
    return given, corrupted


def calibrated_logits(logits: dict[str, np.ndarray], given: dict[str, np.ndarray], held: np.ndarray,
                      head_names: dict[str, str], out: dict[str, np.ndarray]) -> None:
    """Write one network's logits for its held-out rows into ``out`` (level -> (N, classes)),
    temperature-calibrated: each half of the rows by a temperature fitted on the other half."""
    halves = np.arange(len(held)) % 2 == 0
    for level, head in head_names.items():
        z, labels = logits[head], given[level][held]
        for part in (halves, ~halves):
            out[level][held[part]] = z[part] / fit_temperature(z[~part], labels[~part])


def cross_fitted_logits(embedder: Embedder, cache: torch.Tensor, given: dict[str, np.ndarray], sizes: dict[str, int],
                        folds: np.ndarray, cfg: FinetuneConfig, progress=None, *, out: dict[str, np.ndarray] | None = None,
                        budget_s: float | None = None, epochs_run: list[int] | None = None,
                        keep: list | None = None) -> dict[str, np.ndarray]:
    """Calibrated logits per level ("articleType" first in ``sizes``, then attribute levels) for the
    rows with a fold (``folds`` >= 0), each from a network fine-tuned on every row but its fold's: no
    row is scored by a network that saw its label. Rows with fold -1 are never scored here but
    train every network (the caller scores them another way, into ``out``); rows with fold -2 neither
    train nor are scored. ``budget_s`` is shared among the networks still to train; ``epochs_run``
    gets the epochs each network actually ran; ``keep``, when given, gets the networks."""
    levels = list(sizes)
    main_level = levels[0]
    if out is None:
        out = {level: np.zeros((len(cache), size), np.float32) for level, size in sizes.items()}
    n_folds = int(folds.max()) + 1
    head_names = {main_level: "__category__", **{level: level for level in levels[1:]}}
    started = time.monotonic()
    for f in range(n_folds):
        held = np.flatnonzero(folds == f)
        trained = np.flatnonzero((folds != f) & (folds >= -1))
        say(f"flag network {f + 1}/{n_folds}: trained on {len(trained)}, scores {len(held)}")
        left = None if budget_s is None else max((budget_s - (time.monotonic() - started)) / (n_folds - f), 1.0)
        net = finetune_layer4(
            embedder, cache, given[main_level], sizes[main_level], rows=trained,
            attributes={level: (given[level], sizes[level]) for level in levels[1:]},
            cfg=replace(cfg, seed=cfg.seed + f, time_budget_s=left), progress=progress,
        )
        logits = finetune_predict_logits(net, cache, blocks=cfg.blocks, rows=held, names=tuple(head_names.values()))
        calibrated_logits(logits, given, held, head_names, out)
        if epochs_run is not None:
            epochs_run.append(len(net.history))
        if keep is not None:
            keep.append(net)
        del net
    return out


def _flag_scores(per_level: dict[str, np.ndarray], given: dict[str, np.ndarray], levels: tuple[str, ...],
                 probabilities: bool = False) -> dict[str, np.ndarray]:
    """Every flag score of every row, from per-level logits (or ``probabilities``), finest level first."""
    proba = [per_level[level] if probabilities else _softmax(per_level[level]) for level in levels]
    path = category_path_scores(proba, [given[level] for level in levels])
    return {"article": path["levels"][0], "sub": path["levels"][1], "master": path["levels"][2],
            "path_geomean": path["geomean"], "path_ratio": path["ratio"]}


def category_tree(fine: np.ndarray, coarse: np.ndarray, n_fine: int, n_coarse: int) -> np.ndarray:
    """(n_fine, n_coarse) 0/1 matrix: each fine category's parent, the coarse category most of its
    products are listed under (the catalog's own tree; a fine category with no product has none)."""
    table = np.zeros((n_fine, n_coarse), np.int64)
    np.add.at(table, (fine, coarse), 1)
    tree = np.zeros((n_fine, n_coarse), np.float32)
    listed = table.sum(1) > 0
    tree[np.flatnonzero(listed), table[listed].argmax(1)] = 1.0
    return tree


def precision_at_recall(scores: np.ndarray, corrupted: np.ndarray, recall: float = 0.8) -> float:
    """Best flag precision, flagging the lowest scores first, among cut-offs that reach ``recall`` (NaN if none)."""
    hits = np.cumsum(corrupted[np.argsort(scores, kind="stable")])
    precision, reached = hits / np.arange(1, len(hits) + 1), hits / max(int(corrupted.sum()), 1) >= recall
    return float(precision[reached].max()) if reached.any() else float("nan")


def _json_safe(value):
    """Floats rounded to 4 places and NaN (e.g. precision with nothing flagged) as null: strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def block_choices(blocks: int) -> list[int]:
    """The trained-block counts a slow processor may fall back to, most first: all asked for, two
    thirds, one third (9: 9, 6, 3 = layer3's last three and layer4, layer4 alone)."""
    return sorted({blocks, max(1, 2 * blocks // 3), max(1, blocks // 3)}, reverse=True)


def steadiest_timings(measure, choices: list[int]) -> dict[int, float]:
    """``measure(choice)`` for every choice, twice, in one order then the reverse, keeping each
    choice's faster reading: a burst of other load on a shared machine slows one reading, and the
    plan must not change with it (once, on a 2-core machine, 6 blocks read 8.4 ms per row and epoch
    beside 8.6 ms for 9, against 5.8 ms in the run before, and the plan fell back to fold networks)."""
    timings: dict[int, float] = {}
    for choice in [*choices, *reversed(choices)]:
        timings[choice] = min(timings.get(choice, math.inf), measure(choice))
    return {choice: timings[choice] for choice in choices}


def plan_ensemble(mode: str, *, n: int, n_train: int, flag_networks: int, flag_epochs: int, final_networks: int, epochs: int,
                  row_s: dict[int, float], blocks: int, embed_s: float, budget_s: float, min_epochs: int = 8) -> dict:
    """How the fine-tuning is organised within the time budget, from the measured seconds per row
    and epoch for each candidate number of trained blocks (``row_s``) and per catalog embedding
    (``embed_s``).

    ``separate``: ``flag_networks`` cross-fitted networks score the train split's flags, then
    ``final_networks`` networks, trained on the train split less the flagged products, classify.
    ``folds``: ``flag_networks`` networks (at least 2), each fine-tuned on the train split less one
    fold, score their fold's flags and together are the ensemble: one set of networks for both
    jobs, less than half the work of ``separate``; they fine-tune the most blocks (of ``row_s``'s)
    that still leave each at least ``min_epochs`` epochs (or ``epochs`` if fewer), else the fewest.

    ``auto`` takes the first of these whose full epochs fit the budget (within 15%: the networks'
    own budgets trim the rest): ``separate`` with all ``blocks``, ``separate`` with two thirds of
    them, else ``folds``. The order is measured on the real-photo evaluation (6,001 photos, a
    processor on which separate networks with all 9 blocks did not fit): separate networks on 6
    blocks beat fold networks on 9 (articleType 0.791 against 0.785, flags at recall 0.8 0.916
    against 0.845, the other figures within 0.005); and with fold networks, fewer blocks trained
    for more epochs beat all of them barely trained. ``separate`` asked for explicitly trains all
    ``blocks``.
    """
    def reserve(networks: int, trained_blocks: int) -> float:
        # Embedding the catalog (flip-averaged: two views) and predicting the test split (also
        # flip-averaged) once per ensemble network, about 2.4 one-view catalog embeddings, plus the
        # heads and k-NN; ``embed_s`` was measured through all ``blocks`` for one view (on a small
        # slice, which reads high), fewer blocks cost proportionally less. Measured on the real
        # photos: 143 s after training, against an estimated 290 s reserved with a factor of 3.
        return 2.5 * embed_s * row_s[trained_blocks] / row_s[blocks] * max(networks, 1) + 60 + 0.01 * n

    def separate(trained_blocks: int) -> dict:
        flag_work = flag_networks * (n - n_train / flag_networks) * flag_epochs * row_s[trained_blocks] if flag_networks else 0.0
        final_work = final_networks * n_train * epochs * row_s[trained_blocks]
        budget = max(budget_s - reserve(final_networks, trained_blocks) - (0 if flag_networks else 0.02 * n), 1.0)
        return {
            "mode": "separate", "networks": final_networks, "blocks": trained_blocks, "training_s": budget,
            "final_share": final_work / max(final_work + flag_work, 1e-9), "planned_s": round(flag_work + final_work, 1),
            "fits": flag_work + final_work <= 1.15 * budget,
            "summary": f"{flag_networks} flag network(s) x {flag_epochs} epochs, then {final_networks} final x {epochs}, "
                       f"{trained_blocks} block(s) (planned {flag_work + final_work:.0f}s, {budget:.0f}s available)",
        }

    if mode == "separate" or (mode == "auto" and not flag_networks):
        return separate(blocks)
    rejected = []
    if mode == "auto":
        for trained_blocks in [b for b in block_choices(blocks)[:2] if b in row_s]:
            plan = separate(trained_blocks)
            if plan["fits"]:
                return plan
            rejected.append(f"separate networks on {trained_blocks} block(s) would need {plan['planned_s']:.0f}s")
    k = max(flag_networks, 2)
    folds_budget = {b: max(budget_s - reserve(k, b), 1.0) for b in row_s}
    epoch_work = {b: k * n_train * (k - 1) / k * row_s[b] for b in sorted(row_s, reverse=True)}
    chosen = next((b for b, w in epoch_work.items() if folds_budget[b] / w >= min(min_epochs, epochs)), min(epoch_work))
    folds_work = epoch_work[chosen] * epochs
    return {
        "mode": "folds", "networks": k, "blocks": chosen, "training_s": folds_budget[chosen], "final_share": 1.0,
        "planned_s": round(folds_work, 1),
        "summary": f"{k} fold networks x up to {epochs} epochs of {chosen} block(s), each on the train split less its fold, "
                   f"flags and ensemble at once (planned {folds_work:.0f}s, {folds_budget[chosen]:.0f}s available"
                   + (f"; {', '.join(rejected)}" if rejected else "") + ")",
    }


def dump_networks(path: Path, finals: list, flag_nets: list, cache: torch.Tensor, blocks: int, test_rows: np.ndarray,
                  codes: dict, given: dict, attr_levels: tuple[str, ...], per_network: list, hflip: bool) -> None:
    """Every network's flip-averaged test-split logits per head and its catalog embedding standardised
    by its head's batch norm (float16), for offline analysis of ensembles."""
    arrays = {"test_rows": test_rows, **{f"true_{k}": v for k, v in codes.items()},
              **{f"given_{k}": v for k, v in given.items()}}
    names = ("__category__",) + attr_levels
    for kind, nets in (("final", finals), ("flag", flag_nets)):
        for i, net in enumerate(nets):
            logits = finetune_predict_logits(net, cache, blocks=blocks, rows=test_rows, names=names)
            for k, v in logits.items():
                arrays[f"{kind}{i}_logits_{k.strip('_')}"] = v
            raw = per_network[i] if kind == "final" else layer4_embed(net.tail, cache, blocks=blocks, hflip=hflip)
            norm = net.heads["__norm__"]
            with torch.no_grad():
                arrays[f"{kind}{i}_std"] = norm(torch.from_numpy(raw)).float().numpy().astype(np.float16)
            arrays[f"{kind}{i}_classifier_weight"] = net.heads["__category__"].weight.detach().float().numpy()
            arrays[f"{kind}{i}_classifier_bias"] = net.heads["__category__"].bias.detach().float().numpy()
    np.savez(path, **arrays)
    say(f"saved {len(finals)} final and {len(flag_nets)} flag network(s) to {path}")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--corrupt", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="none", help="imagenet, none, or a state-dict path (ML_WEIGHTS)")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--blocks", type=int, default=9, help="trailing bottleneck blocks of layer3+layer4 to fine-tune (3 = all of layer4, 9 = both)")
    p.add_argument("--flag-networks", type=int, default=3,
                   help="cross-fitted networks that score the train split's flags (each product by one fine-tuned on every product "
                        "but its fold; the test split is scored by the final network); 0 = out-of-fold heads on the final features")
    p.add_argument("--flag-epochs", type=int, default=6,
                   help="fine-tuning epochs of each flag network (fewer if the budget says so); 0 = as many as the final network")
    p.add_argument("--flag-score", default="path_ratio", choices=("article", "sub", "master", "path_geomean", "path_ratio"),
                   help="what is thresholded: the given category's probability at one level, their geometric mean over the "
                        "whole path (articleType, subCategory, masterCategory), or the geometric mean of p(given) / p(top) per level")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs of each final network (fewer if the budget says so); 0 = frozen features and out-of-fold heads")
    p.add_argument("--final-networks", type=int, default=3,
                   help="networks fine-tuned (different seeds) on the train split: their mean logits classify, their "
                        "embeddings side by side (each L2-normalised) are the k-NN space")
    p.add_argument("--budget-minutes", type=float, default=28.0, help="whole run; fine-tuning gets what the other stages leave")
    p.add_argument("--clean-train", action=argparse.BooleanOptionalAction, default=True,
                   help="leave the train-split products the flag networks flag out of the final network's training")
    p.add_argument("--flag-below", type=float, default=0.03,
                   help="flag when the (cross-fitted) flag score of the given category is below this")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of every fine-tuning run (one-cycle schedule, AdamW)")
    p.add_argument("--shift", type=float, default=0.0, help="fine-tuning augmentation: random translation of the cached maps, as a fraction of their size")
    p.add_argument("--zoom", type=float, default=0.0, help="fine-tuning augmentation: random zoom of the cached maps, scale in [1-zoom, 1+zoom]")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast while fine-tuning, where the processor has fast bf16 (about 1.45x faster on this project's CPU)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--recalibrate-bn", action="store_true", help="re-estimate batch-norm statistics on 512 catalog images first")
    p.add_argument("--limit", type=int, default=0, help="use only this many products (quick runs)")
    p.add_argument("--dump", type=Path, help="also save the flag scores' calibrated logits, labels and masks here (.npz) for offline analysis")
    p.add_argument("--ensemble", default="auto", choices=("auto", "separate", "folds"),
                   help="separate: flag networks, then final networks trained on the cleaned train split; folds: one network per "
                        "fold of the train split does both (less than half the work); auto: separate when it fits the budget")
    p.add_argument("--min-epochs", type=int, default=8,
                   help="with fold networks (--ensemble folds, or auto on a slow processor): fine-tune fewer blocks (two thirds, "
                        "one third) when the budget would give each network fewer epochs than this")
    p.add_argument("--flag-scope", default="catalog", choices=("catalog", "train"),
                   help="what the flag networks train on besides the train split's other folds: the test split too (catalog), or not (train)")
    p.add_argument("--dump-networks", type=Path,
                   help="also save every network's test-split logits and standardised catalog embeddings here (.npz), for offline analysis of "
                        "ensembles (separate flag networks trained on the test split too, unless --flag-scope train)")
    p.add_argument("--knn-hflip", action=argparse.BooleanOptionalAction, default=True,
                   help="embed each product as the mean of its activation maps' and their mirror images' embeddings (twice the "
                        "embedding work), as the classifiers predict")
    p.add_argument("--knn-posterior-weight", type=float, default=1.0,
                   help="k-NN space: the features beside this weight times the ensemble's articleType probabilities (each "
                        "L2-normalised); 0 = the features alone, reported beside it as knn_precision_at_10_features")
    p.add_argument("--frozen-head", action=argparse.BooleanOptionalAction, default=True,
                   help="blend the fine-tuned networks with a category head on the untouched backbone's multi-level pooled features "
                        "(layer2, layer3 on a 2x2 grid, layer4; computed in the cache pass), by weights fitted on the train split's "
                        "cross-fitted predictions; flags, classes and the k-NN space's probabilities all use the blend")
    p.add_argument("--index-pca-dim", type=int, default=256,
                   help="PCA-whitening of the index whose order (before the app's exact re-rank) is reported beside exact cosine, as ML_INDEX_PCA_DIM")
    args = p.parse_args(argv)
    if args.final_networks < 1:
        p.error("--final-networks must be at least 1")
    if args.lr <= 0:
        p.error("--lr must be above 0")
    if args.knn_posterior_weight < 0:
        p.error("--knn-posterior-weight must be 0 or more")

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    stage_seconds: dict[str, float] = {}
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    rows = read_catalog(args.styles, args.images)
    if args.limit:
        rows = [rows[i] for i in np.sort(rng.choice(len(rows), min(args.limit, len(rows)), replace=False))]
    n = len(rows)
    names, codes = {}, {}
    for level in LEVELS:
        names[level], codes[level] = np.unique([r[level].strip() for r in rows], return_inverse=True)
    article = codes["articleType"]
    # Each articleType's parent levels (its most common subCategory/masterCategory), so a corrupted
    # product moves to a whole other category path.
    parent = {level: category_tree(article, codes[level], len(names["articleType"]), len(names[level])).argmax(1)
              for level in ("subCategory", "masterCategory")}
    given_article, corrupted = corrupt_categories(article, args.corrupt, rng)
    given = {"articleType": given_article}
    for level in ("subCategory", "masterCategory"):
        given[level] = np.where(corrupted, parent[level][given_article], codes[level])
    test = stratified_split(article, args.test_fraction, rng)
    train_rows = np.flatnonzero(~test)
    say(f"{n} products, {len(names['articleType'])} articleTypes, {len(names['subCategory'])} subCategories; "
        f"{int(corrupted.sum())} corrupted; train {len(train_rows)} / test {int(test.sum())}")

    cfg = BackboneConfig(name=args.backbone, weights=args.weights, image_size=args.image_size, device=args.device,
                         batch_size=args.batch_size, num_workers=args.workers, bf16=True)
    embedder = Embedder(cfg)
    if args.recalibrate_bn:
        t = time.monotonic()
        embedder.recalibrate_batchnorm([r["path"] for r in rows], seed=args.seed, progress=ProgressLine("batch-norm statistics"))
        stage_seconds["recalibrate_bn"] = time.monotonic() - t
    say(f"backbone {embedder.key} on {embedder.device}; bf16 autocast {'on' if embedder.use_bf16 else 'off (no fast bf16 on this processor)'}")

    t = time.monotonic()
    tail_blocks = len(backbone_tail(embedder.model))
    if args.blocks > tail_blocks:
        say(f"{args.backbone} has {tail_blocks} bottleneck blocks in layer3+layer4; fine-tuning all {tail_blocks}")
    blocks = min(args.blocks, tail_blocks) if args.epochs > 0 else len(embedder.model.layer4)
    use_frozen_head = bool(args.frozen_head and args.epochs > 0 and args.flag_networks > 0)
    cached = layer3_cache(embedder, [r["path"] for r in rows], blocks=blocks, progress=ProgressLine("decode + frozen layers"),
                          with_levels=use_frozen_head)
    cache, frozen_levels = cached if use_frozen_head else (cached, None)
    stage_seconds["layer3_cache"] = time.monotonic() - t

    history: list[dict] = []
    tail = backbone_tail(embedder.model)
    attr_levels = ("subCategory", "masterCategory")
    path_levels = ("articleType",) + attr_levels  # finest first
    sizes = {level: len(names[level]) for level in path_levels}
    head_cfg = CategoryConfig(seed=args.seed, hidden=256, epochs=20, folds=args.folds)
    frozen_oof: dict[str, np.ndarray] | None = None
    if use_frozen_head:
        # The frozen head's own cross-fitted probabilities (each product by a head that never saw its
        # label), on the products the flag networks learn from: they score the train split's flags
        # beside the flag networks', and fit the blend's weights. Before the plan, so that the
        # fine-tuning budget is what this leaves.
        t = time.monotonic()
        scope = np.arange(n) if args.flag_scope == "catalog" else train_rows
        oof = out_of_fold_predictions(frozen_levels[scope], given["articleType"][scope], sizes["articleType"],
                                      attributes={level: (given[level][scope], sizes[level]) for level in attr_levels},
                                      cfg=head_cfg, progress=ProgressLine(f"frozen head, out of fold ({frozen_levels.shape[1]} features)"))
        frozen_oof = {level: np.full((n, sizes[level]), 1.0 / sizes[level], np.float32) for level in path_levels}
        for level, proba_level in (("articleType", oof["proba"]), *oof["attributes"].items()):
            frozen_oof[level][scope] = proba_level
        stage_seconds["frozen_head_out_of_fold"] = time.monotonic() - t
    flag_networks = args.flag_networks if args.epochs > 0 else 0
    finals, flag_logits, flag_epochs_run, flag_nets = [], None, [], []
    result_plan: dict = {}
    cleaned = np.zeros(n, bool)
    test_rows = np.flatnonzero(test)
    progress_epoch = lambda h: say(f"  epoch {h['epoch']}/{h['epochs']}: loss {h['loss']:.3f}, train acc {h['train_accuracy']:.3f}, {h['seconds']:.0f}s")
    if args.epochs > 0:
        # Reserve time for re-embedding (measured on a slice) and the heads; the fine-tuning runs
        # share the rest.
        t = time.monotonic()
        layer4_embed(tail, cache[:64], blocks=blocks)
        embed_s = (time.monotonic() - t) * n / 64
        flag_epochs = args.flag_epochs or args.epochs
        # Seconds per row and epoch, measured for each number of blocks the plan may fall back to.
        row_s = steadiest_timings(
            lambda b: training_seconds_per_row(embedder, cache, len(names["articleType"]), FinetuneConfig(blocks=b, bf16=args.bf16),
                                               rows=train_rows, cache_blocks=blocks),
            block_choices(blocks) if args.ensemble != "separate" else [blocks],
        )
        plan = plan_ensemble(args.ensemble, n=n, n_train=len(train_rows), flag_networks=flag_networks, flag_epochs=flag_epochs,
                             final_networks=args.final_networks, epochs=args.epochs, row_s=row_s, blocks=blocks, embed_s=embed_s,
                             budget_s=args.budget_minutes * 60 - (time.monotonic() - started), min_epochs=args.min_epochs)
        say("fine-tuning, measured per row and epoch: " + ", ".join(f"{b} block(s) {v * 1000:.1f} ms" for b, v in row_s.items())
            + f"; {plan['summary']}")
        if plan["blocks"] < blocks:
            t = time.monotonic()
            cache = cache_advance(embedder.model, cache, cache_blocks=blocks, blocks=plan["blocks"])
            blocks = plan["blocks"]
            stage_seconds["cache_advance"] = time.monotonic() - t
        budget = plan["training_s"] - stage_seconds.get("cache_advance", 0.0)
        budget_end = time.monotonic() + budget
        result_plan = plan
        if plan["mode"] == "folds":
            # One set of networks does both jobs: network f is fine-tuned on the train split less
            # its fold f, scores that fold's flags (it never saw those labels), and joins the
            # ensemble that classifies the test split (which none of them saw).
            t = time.monotonic()
            flag_logits = {level: np.zeros((n, size), np.float32) for level, size in sizes.items()}
            folds = np.full(n, -2, np.int64)
            folds[train_rows] = make_folds(given["articleType"][train_rows], plan["networks"], seed=args.seed)
            cross_fitted_logits(
                embedder, cache, given, sizes, folds,
                FinetuneConfig(epochs=args.epochs, blocks=blocks, seed=args.seed + 1, lr=args.lr, shift=args.shift, zoom=args.zoom, bf16=args.bf16),
                progress=progress_epoch, out=flag_logits, budget_s=budget, epochs_run=flag_epochs_run, keep=finals,
            )
            stage_seconds["finetune"] = time.monotonic() - t
            flag_networks = plan["networks"]
        else:
            share = plan["final_share"]
            if flag_networks:
                # Catalog-error flags come first: fold f of the train split is scored by a network
                # fine-tuned on every product but that fold (cross-fitting: a network trained on a
                # product's wrong label learns it, so only one that never saw it can vouch for it).
                # The test split is scored later by the final network, which never sees it either.
                t = time.monotonic()
                flag_logits = {level: np.zeros((n, size), np.float32) for level, size in sizes.items()}
                folds = np.full(n, -1 if args.flag_scope == "catalog" else -2, np.int64)
                folds[train_rows] = (make_folds(given["articleType"][train_rows], flag_networks, seed=args.seed)
                                     if flag_networks > 1 else 0)
                cross_fitted_logits(
                    embedder, cache, given, sizes, folds,
                    FinetuneConfig(epochs=flag_epochs, blocks=blocks, seed=args.seed + 1, lr=args.lr, shift=args.shift, zoom=args.zoom, bf16=args.bf16), progress=progress_epoch,
                    # Shares are by rows x epochs; the flag networks get 15% slack over theirs (a timed
                    # batch slightly overestimates an epoch), the final networks whatever is left.
                    out=flag_logits, budget_s=min(budget * (1 - share) * 1.15, budget), epochs_run=flag_epochs_run,
                    keep=flag_nets if args.dump_networks else None,
                )
                stage_seconds["flag_networks"] = time.monotonic() - t
                if args.clean_train:
                    # What a merchandiser would do with the flags before retraining: the final network
                    # does not learn the labels the flag networks call wrong.
                    train_scores = _flag_scores(flag_logits, given, path_levels)[args.flag_score]
                    cleaned[train_rows] = train_scores[train_rows] < args.flag_below
                    say(f"left out of the final network's training: {int(cleaned.sum())} flagged products")
            final_rows = train_rows[~cleaned[train_rows]]
            attrs = {level: (given[level], len(names[level])) for level in attr_levels}
            t = time.monotonic()
            for k in range(args.final_networks):
                # Each network of the ensemble gets an equal share of what is left of the budget.
                left = max((budget_end - time.monotonic()) / (args.final_networks - k), 1.0)
                if args.final_networks > 1:
                    say(f"final network {k + 1}/{args.final_networks}: trained on {len(final_rows)}")
                finals.append(finetune_layer4(
                    embedder, cache, given["articleType"], len(names["articleType"]), rows=final_rows, attributes=attrs,
                    cfg=FinetuneConfig(epochs=args.epochs, blocks=blocks, seed=args.seed + 1000 * k, lr=args.lr, shift=args.shift, zoom=args.zoom,
                                       bf16=args.bf16, time_budget_s=left),
                    progress=progress_epoch,
                ))
            stage_seconds["finetune"] = time.monotonic() - t
        history = finals[0].history
    t = time.monotonic()
    # The ensemble's embedding: each network's embedding L2-normalised, side by side, so cosine on
    # it is the mean of the networks' cosines.
    tails = [net.tail for net in finals] or [tail]
    # Flip-averaged (each map and its mirror image, as the classifiers predict): on the real photos
    # this ranked neighbours better than one view (k-NN p@10 0.736 against 0.730, 6-block ensemble).
    per_network = [layer4_embed(tl, cache, blocks=blocks, hflip=args.knn_hflip,
                                progress=ProgressLine("layer4 embed" + (", flip-averaged" if args.knn_hflip else "")))
                   for tl in tails]
    feats = per_network[0] if len(per_network) == 1 else np.concatenate([l2_normalise(f) for f in per_network], axis=1)
    stage_seconds["embed"] = time.monotonic() - t

    # Category accuracy on the test split (trained on the catalog's labels, errors included): the
    # fine-tuned networks' own heads (flip-averaged) blended with the frozen head when there are
    # both, the networks' heads alone without it, else heads on the features.
    t = time.monotonic()
    result = {}
    blend = None
    if finals:
        # The ensemble's logits: the mean of its networks' (each flip-averaged).
        per_net = [finetune_predict_logits(net, cache, blocks=blocks, rows=test_rows, names=("__category__",) + attr_levels) for net in finals]
        own = {k: np.mean([logits[k] for logits in per_net], axis=0) for k in per_net[0]}
        proba = _softmax(own["__category__"])
        level_pred = {level: _softmax(own[level]) for level in attr_levels}
        if flag_logits is not None:
            # The test split's flag scores: the ensemble's logits, calibrated on the test split's
            # given labels (each half by the other's).
            calibrated_logits(own, given, test_rows, {"articleType": "__category__", **{level: level for level in attr_levels}}, flag_logits)
        if frozen_oof is not None and flag_logits is not None:
            # The frozen head for the test split and the k-NN space, trained on what the final
            # networks trained on; then the blend: per level, softmax(a * fine-tuned calibrated logits
            # + b * log frozen probabilities), a and b fitted on the train split, where both are
            # cross-fitted (no product scored by a model that saw its label), so the blend is
            # calibrated and a model that adds nothing gets a weight near 0.
            t_frozen = time.monotonic()
            head_rows = train_rows[~cleaned[train_rows]]
            frozen_model = train_category_model(frozen_levels[head_rows], given["articleType"][head_rows], sizes["articleType"],
                                                attributes={level: (given[level][head_rows], sizes[level]) for level in attr_levels},
                                                cfg=head_cfg)
            frozen_all = {"articleType": frozen_model.predict_proba(frozen_levels),
                          **{level: frozen_model.predict_attribute_proba(level, frozen_levels) for level in attr_levels}}
            weights = {level: fit_pool_weights([flag_logits[level][train_rows], np.log(frozen_oof[level][train_rows] + 1e-9)],
                                               given[level][train_rows]) for level in path_levels}
            blend = {}
            for level in path_levels:
                frozen_logp = np.log(frozen_oof[level] + 1e-9)
                frozen_logp[test_rows] = np.log(frozen_all[level][test_rows] + 1e-9)
                a, b = weights[level]
                blend[level] = (a * flag_logits[level] + b * frozen_logp).astype(np.float32)
            result["article_type_accuracy_fine_tuned"] = accuracy(article[test_rows], proba)
            result["article_type_accuracy_frozen_head"] = accuracy(article[test_rows], frozen_all["articleType"][test_rows])
            tree_sub = category_tree(given["articleType"], given["subCategory"], proba.shape[1], len(names["subCategory"]))
            result["sub_category_accuracy_fine_tuned"] = accuracy(codes["subCategory"][test_rows], proba @ tree_sub)
            result["sub_category_accuracy_frozen_head"] = accuracy(codes["subCategory"][test_rows], frozen_all["articleType"][test_rows] @ tree_sub)
            result["frozen_head_weights"] = {level: [round(float(w), 4) for w in weights[level]] for level in path_levels}
            result["frozen_head_features"] = int(frozen_levels.shape[1])
            proba = _softmax(blend["articleType"][test_rows])
            level_pred = {level: _softmax(blend[level][test_rows]) for level in attr_levels}
            stage_seconds["frozen_head"] = time.monotonic() - t_frozen
    else:
        # A narrow hidden layer: nearly the accuracy of a wide one on these features, a fraction of the CPU.
        attrs = {level: (given[level][train_rows], len(names[level])) for level in attr_levels}
        model = train_category_model(feats[train_rows], given["articleType"][train_rows], len(names["articleType"]), attributes=attrs, cfg=head_cfg)
        proba = model.predict_proba(feats[test_rows])
        level_pred = {level: model.predict_attribute_proba(level, feats[test_rows]) for level in attr_levels}
    result["article_type_accuracy"] = accuracy(article[test_rows], proba)
    result["article_type_top5_accuracy"] = top_k_accuracy(article[test_rows], proba, 5)
    # The coarser levels follow from the articleType along the catalog's category tree (each
    # articleType has one subCategory and one masterCategory): a coarse level's probability is the
    # sum of its articleTypes'. The heads of the coarser levels are reported beside it.
    for level, key in (("subCategory", "sub_category_accuracy"), ("masterCategory", "master_category_accuracy")):
        result[key] = accuracy(codes[level][test_rows], proba @ category_tree(given["articleType"], given[level], proba.shape[1], len(names[level])))
        result[f"{key}_head"] = accuracy(codes[level][test_rows], level_pred[level])
    stage_seconds["heads"] = time.monotonic() - t

    # k-NN precision@10: test products against the whole catalog, same true articleType.
    t = time.monotonic()
    ids = np.arange(n, dtype=np.int64)
    # Exact cosine on the embeddings is what the app answers: its index (PCA-whitened to
    # ML_INDEX_PCA_DIM) only shortlists, and the shortlist is re-ranked by exact cosine on the
    # stored features. The index order without that re-rank is reported beside it.
    def knn_precision(vectors: np.ndarray, pca_dim: int | None = None) -> float:
        _, found = VectorIndex.build(vectors, ids, pca_dim=pca_dim, seed=args.seed).search(vectors[test_rows], 11)
        neighbours = np.array([[j for j in row if j != q][:10] for row, q in zip(found.tolist(), test_rows.tolist())])
        return precision_at_k(article[test_rows], article[neighbours])

    if finals:
        # The fine-tuned embedding as its classifiers read it: each network's features standardised
        # by its head's batch norm (per dimension, as PCA-whitening does for the app's index), then
        # L2-normalised side by side. In every run so far this ranked neighbours better than the
        # raw features (reported beside it) by 0.3-0.4 points.
        parts, catalog_logits = [], []
        for net, raw in zip(finals, per_network):
            norm, head = net.heads["__norm__"], net.heads["__category__"]
            with torch.no_grad():
                standardised = norm(torch.from_numpy(raw).to(next(norm.parameters()).device)).float()
                parts.append(l2_normalise(standardised.cpu().numpy()))
                # The head is affine after the batch norm, so on the flip-averaged features it gives
                # the mean of both views' logits, as the classifiers predict.
                catalog_logits.append(head(standardised).float().cpu().numpy())
        feature_space = np.concatenate(parts, axis=1)
        posterior = _softmax(np.mean(catalog_logits, axis=0))
        if blend is not None:
            # The frozen head's probabilities join the ensemble's, at the blend's articleType weights.
            result["knn_precision_at_10_fine_tuned_posterior"] = knn_precision(
                with_category_posterior(feature_space, posterior, args.knn_posterior_weight))
            a, b = weights["articleType"]
            posterior = _softmax(a * np.mean(catalog_logits, axis=0) + b * np.log(frozen_all["articleType"] + 1e-9))
        result["knn_precision_at_10_features"] = knn_precision(feature_space)
        result["knn_precision_at_10_raw"] = knn_precision(feats)
        if len(finals) > 1:
            result["knn_precision_at_10_first_network"] = knn_precision(parts[0])
    else:
        feature_space = feats
        posterior = model.predict_proba(feats)
        result["knn_precision_at_10_features"] = knn_precision(feats)
    # Neighbours that look alike and are predicted to be the same kind of product (the ensemble's
    # articleType probabilities beside the features). On one run's networks: 0.773 against 0.748 for
    # the features alone, and within 0.002 of that for weights 0.5-1.5.
    knn_space = with_category_posterior(feature_space, posterior, args.knn_posterior_weight)
    result["knn_precision_at_10"] = knn_precision(knn_space)
    result["knn_precision_at_10_pca_index_order"] = knn_precision(knn_space, args.index_pca_dim or None)
    stage_seconds["knn"] = time.monotonic() - t
    if args.dump_networks:
        dump_networks(args.dump_networks, finals, flag_nets, cache, blocks, test_rows, codes, given, attr_levels,
                      per_network=per_network, hflip=args.knn_hflip)

    # Catalog-error flags: every product's probability of its own given category path, from models
    # that never saw its label: the flag networks' for the train split (above), the final
    # network's for the test split. Without fine-tuning, out-of-fold heads on the frozen features.
    t = time.monotonic()
    if flag_logits is not None:
        if args.dump:
            np.savez_compressed(
                args.dump, **{f"logits_{level}": z for level, z in flag_logits.items()},
                **({f"blend_{level}": z for level, z in blend.items()} if blend is not None else {}),
                **{f"given_{level}": given[level] for level in given}, **{f"true_{level}": codes[level] for level in LEVELS},
                **{f"names_{level}": names[level] for level in LEVELS}, corrupted=corrupted, test=test, cleaned=cleaned,
            )
        scores = _flag_scores(blend if blend is not None else flag_logits, given, path_levels)
        if blend is not None:
            result["flag_precision_at_recall_0_8_fine_tuned"] = precision_at_recall(
                _flag_scores(flag_logits, given, path_levels)[args.flag_score], corrupted)
    else:
        oof = out_of_fold_predictions(feats, given["articleType"], len(names["articleType"]),
                                      attributes={level: (given[level], len(names[level])) for level in attr_levels},
                                      cfg=head_cfg, progress=ProgressLine("out-of-fold models"))
        scores = _flag_scores({"articleType": oof["proba"], **oof["attributes"]}, given, path_levels, probabilities=True)
        stage_seconds["out_of_fold"] = time.monotonic() - t
    del cache
    result["flag_score_precision_at_recall_0_8"] = {name: precision_at_recall(sc, corrupted) for name, sc in scores.items()}
    p_given = scores[args.flag_score]
    flagged = p_given < args.flag_below
    result["flag_precision"], result["flag_recall"] = flag_precision_recall(flagged, corrupted)
    result["flag_precision_at_recall_0_8"] = result["flag_score_precision_at_recall_0_8"][args.flag_score]
    result["flag_curve"] = {
        str(t): [round(v, 4) for v in flag_precision_recall(p_given < t, corrupted)] for t in (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)
    }
    in_test = test & flagged
    result["flag_precision_test_split"], result["flag_recall_test_split"] = flag_precision_recall(in_test, corrupted & test)

    result.update({
        "images": n,
        "seconds": round(time.monotonic() - started, 1),
        "corrupted": int(corrupted.sum()),
        "flagged": int(flagged.sum()),
        "flag_rule": f"{'cross-fitted networks' if flag_networks else 'out-of-fold heads'}: {args.flag_score} p(given) < {args.flag_below}",
        "flag_networks": flag_networks,
        "ensemble": result_plan.get("mode", "none"),
        "ensemble_plan": result_plan.get("summary", ""),
        "flag_epochs": flag_epochs_run,  # per network, as run (the budget may cut them)
        "cleaned_train_rows": int(cleaned.sum()),
        "cleaned_train_rows_corrupted": int((cleaned & corrupted).sum()),
        "backbone": embedder.key,
        "weights": args.weights,
        "image_size": args.image_size,
        "recalibrate_bn": bool(args.recalibrate_bn),
        "final_networks": len(finals),
        "finetune_epochs": [len(net.history) for net in finals],
        "finetune_blocks": blocks if history else 0,
        "finetune_train_accuracy": history[-1]["train_accuracy"] if history else None,
        "bf16": bool(embedder.use_bf16),
        "finetune_bf16": bool(args.bf16 and bf16_supported(embedder.device)),
        "bf16_supported_cpu": bf16_supported(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "knn_hflip": bool(args.knn_hflip),
        "knn_posterior_weight": args.knn_posterior_weight,
        "lr": args.lr,
        "frozen_head": blend is not None,
        "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()},
        "seed": args.seed,
    })
    result = _json_safe(result)
    print(json.dumps(result, allow_nan=False), flush=True)
    return result


if __name__ == "__main__":
    main()
