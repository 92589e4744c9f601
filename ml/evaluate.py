"""Evaluate the ml/ pipeline on a real catalog folder (styles.csv + images).

    python -m ml.evaluate --styles PATH/styles.csv --images PATH --corrupt 0.05 --seed 0

What it does, in the order a real retraining would:
1. corrupt the articleType of ``--corrupt`` of the products at random (the new category path is
   another articleType with its own subCategory/masterCategory), as a catalog with errors;
2. split the products into train/test (stratified by the true articleType);
3. run the backbone up to layer3 once per image (cached, fp16, at ``--image-size`` px);
4. fine-tune layer4 plus category heads (articleType, with subCategory and masterCategory as
   cross-learned heads) on the train split's labels as the catalog gives them (errors included),
   within the time budget;
5. re-embed every product from the cache with the new layer4 ("new embeddings");
6. category accuracy per level on the test split (against the true labels); k-NN precision@10
   of the test products against the whole catalog (same true articleType);
7. out-of-fold category model over all products with the catalog's labels; flag a product when
   its calibrated out-of-fold probability of its own label is below ``--flag-below``; precision and
   recall of the flags against the corrupted set.

Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ml.backbone import Embedder, bf16_supported
from ml.category import CategoryConfig, out_of_fold_predictions, train_category_model
from ml.config import BackboneConfig
from ml.finetune import FinetuneConfig, finetune_layer4, layer3_cache, layer4_embed
from ml.index import VectorIndex
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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--corrupt", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="none", help="imagenet, none, or a state-dict path (ML_WEIGHTS)")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--blocks", type=int, default=1, help="trailing bottleneck blocks of layer4 to fine-tune (3 = all)")
    p.add_argument("--epochs", type=int, default=8, help="layer4 fine-tuning epochs (fewer if the budget says so); 0 = frozen")
    p.add_argument("--budget-minutes", type=float, default=26.0, help="whole run; fine-tuning gets what the other stages leave")
    p.add_argument("--flag-below", type=float, default=0.05, help="flag when the out-of-fold probability of the given label is below this")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--recalibrate-bn", action="store_true", help="re-estimate batch-norm statistics on 512 catalog images first")
    p.add_argument("--limit", type=int, default=0, help="use only this many products (quick runs)")
    args = p.parse_args(argv)

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
    parent = {}
    for level in ("subCategory", "masterCategory"):
        table = np.zeros((len(names["articleType"]), len(names[level])), np.int64)
        np.add.at(table, (article, codes[level]), 1)
        parent[level] = table.argmax(1)
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
    blocks = args.blocks if args.epochs > 0 else 3
    cache = layer3_cache(embedder, [r["path"] for r in rows], blocks=blocks, progress=ProgressLine("decode + frozen layers"))
    stage_seconds["layer3_cache"] = time.monotonic() - t

    history = []
    if args.epochs > 0:
        # Reserve time for re-embedding (measured on a slice), the heads and the out-of-fold models.
        t = time.monotonic()
        layer4_embed(embedder.model.layer4, cache[:64], blocks=blocks)
        embed_s = (time.monotonic() - t) * n / 64
        reserve = 2.5 * embed_s + 120 + 0.02 * n
        budget = args.budget_minutes * 60 - (time.monotonic() - started) - reserve
        say(f"fine-tuning layer4: up to {args.epochs} epochs within {max(budget, 0):.0f}s")
        attrs = {level: (given[level], len(names[level])) for level in ("subCategory", "masterCategory")}
        t = time.monotonic()
        layer4, _state, history = finetune_layer4(
            embedder, cache, given["articleType"], len(names["articleType"]), rows=train_rows, attributes=attrs,
            cfg=FinetuneConfig(epochs=args.epochs, blocks=blocks, seed=args.seed, time_budget_s=max(budget, 1.0)),
            progress=lambda h: say(f"  epoch {h['epoch']}/{h['epochs']}: loss {h['loss']:.3f}, train acc {h['train_accuracy']:.3f}, {h['seconds']:.0f}s"),
        )
        stage_seconds["finetune"] = time.monotonic() - t
    else:
        layer4 = embedder.model.layer4
    t = time.monotonic()
    feats = layer4_embed(layer4, cache, blocks=blocks, progress=ProgressLine("layer4 embed"))
    stage_seconds["embed"] = time.monotonic() - t
    del cache

    # Category accuracy on the test split (heads trained on the catalog's labels, errors included).
    t = time.monotonic()
    # A narrow hidden layer: nearly the accuracy of a wide one on these features, a fraction of the CPU.
    head_cfg = CategoryConfig(seed=args.seed, hidden=256, epochs=20, folds=args.folds)
    attrs = {level: (given[level][train_rows], len(names[level])) for level in ("subCategory", "masterCategory")}
    model = train_category_model(feats[train_rows], given["articleType"][train_rows], len(names["articleType"]), attributes=attrs, cfg=head_cfg)
    test_rows = np.flatnonzero(test)
    result = {}
    proba = model.predict_proba(feats[test_rows])
    result["article_type_accuracy"] = accuracy(article[test_rows], proba)
    result["article_type_top5_accuracy"] = top_k_accuracy(article[test_rows], proba, 5)
    for level, key in (("subCategory", "sub_category_accuracy"), ("masterCategory", "master_category_accuracy")):
        result[key] = accuracy(codes[level][test_rows], model.predict_attribute_proba(level, feats[test_rows]))
    stage_seconds["heads"] = time.monotonic() - t

    # k-NN precision@10: test products against the whole catalog, same true articleType.
    t = time.monotonic()
    ids = np.arange(n, dtype=np.int64)
    index = VectorIndex.build(feats, ids)
    _, found = index.search(feats[test_rows], 11)
    neighbours = np.array([[j for j in row if j != q][:10] for row, q in zip(found.tolist(), test_rows.tolist())])
    result["knn_precision_at_10"] = precision_at_k(article[test_rows], article[neighbours])
    stage_seconds["knn"] = time.monotonic() - t

    # Catalog-error flags from out-of-fold probabilities of the given articleType.
    t = time.monotonic()
    oof = out_of_fold_predictions(feats, given["articleType"], len(names["articleType"]),
                                  cfg=head_cfg, progress=ProgressLine("out-of-fold models"))
    p_given = oof["proba"][np.arange(n), given["articleType"]]
    flagged = p_given < args.flag_below
    result["flag_precision"], result["flag_recall"] = flag_precision_recall(flagged, corrupted)
    order = np.argsort(p_given, kind="stable")
    hits = np.cumsum(corrupted[order])
    prec_curve, rec_curve = hits / np.arange(1, n + 1), hits / max(corrupted.sum(), 1)
    reach = rec_curve >= 0.8
    result["flag_precision_at_recall_0_8"] = float(prec_curve[reach].max()) if reach.any() else float("nan")
    result["flag_curve"] = {
        str(t): [round(v, 4) for v in flag_precision_recall(p_given < t, corrupted)] for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
    }
    in_test = test & flagged
    result["flag_precision_test_split"], result["flag_recall_test_split"] = flag_precision_recall(in_test, corrupted & test)
    stage_seconds["out_of_fold"] = time.monotonic() - t

    result.update({
        "images": n,
        "seconds": round(time.monotonic() - started, 1),
        "corrupted": int(corrupted.sum()),
        "flagged": int(flagged.sum()),
        "flag_rule": f"oof p(given articleType) < {args.flag_below}",
        "backbone": embedder.key,
        "weights": args.weights,
        "image_size": args.image_size,
        "recalibrate_bn": bool(args.recalibrate_bn),
        "finetune_epochs": len(history),
        "finetune_blocks": blocks if history else 0,
        "finetune_train_accuracy": history[-1]["train_accuracy"] if history else None,
        "bf16": bool(embedder.use_bf16),
        "bf16_supported_cpu": bf16_supported(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()},
        "seed": args.seed,
    })
    for k, v in list(result.items()):
        if isinstance(v, float):
            result[k] = round(v, 4)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
