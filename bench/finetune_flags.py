"""Why catalog flags must not read fine-tuned features: measured on a real catalog folder.

    python bench/finetune_flags.py --styles PATH/styles.csv --images PATH [--image-size 128] [--epochs 6] [--blocks 3]

``finetune_backbone`` trains on the catalog's categories as they are, wrong ones included. This
script corrupts ``--corrupt`` of the articleTypes (as ``ml.evaluate`` does), fine-tunes the
backbone on the corrupted labels the way the command does (every product, a colour head beside the
category head), and then runs the app's out-of-fold category model on two feature sets: the base
weights' (what the pipeline's flags read after a switch) and the fine-tuned ones. A wrong label is
found when its p(given) is among the lowest; the figure is the best flag precision at recall 0.8.
Also reported: how many of the wrong labels the fine-tuned network itself learned to predict.

Prints progress on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's queue module: drop this folder from the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--corrupt", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import numpy as np

    from ml.backbone import Embedder
    from ml.category import CategoryConfig, out_of_fold_predictions
    from ml.config import BackboneConfig
    from ml.evaluate import ProgressLine, corrupt_categories, precision_at_recall, read_catalog, say
    from ml.finetune import FinetuneConfig, finetune_layer4, finetune_predict_logits, layer3_cache, layer4_embed

    started = time.monotonic()
    rows = read_catalog(args.styles, args.images)
    names, article = np.unique([r["articleType"] for r in rows], return_inverse=True)
    colours, colour = np.unique([r.get("baseColour") or "" for r in rows], return_inverse=True)
    rng = np.random.default_rng(args.seed)
    given, corrupted = corrupt_categories(article, args.corrupt, rng)
    say(f"{len(rows)} images, {len(names)} articleTypes, {int(corrupted.sum())} corrupted")

    embedder = Embedder(BackboneConfig(weights="none", image_size=args.image_size, device="cpu", num_workers=1))
    cache, base = layer3_cache(embedder, [r["path"] for r in rows], blocks=args.blocks, with_features=True,
                               progress=ProgressLine("decode + frozen layers"))
    line = ProgressLine("fine-tune")
    result = finetune_layer4(
        embedder, cache, given, len(names), attributes={"colour": (colour.astype(np.int64), len(colours))},
        cfg=FinetuneConfig(epochs=args.epochs, blocks=args.blocks, bf16=True, seed=args.seed),
        progress=lambda h: line(h["epoch"], h["epochs"]),
    )
    tuned = layer4_embed(result.tail, cache, blocks=args.blocks)
    own = finetune_predict_logits(result, cache, blocks=args.blocks, rows=np.flatnonzero(corrupted))["__category__"].argmax(1)

    out = {}
    for name, features in (("base", base), ("finetuned", tuned)):
        oof = out_of_fold_predictions(features, given, len(names), cfg=CategoryConfig(seed=args.seed), progress=ProgressLine(f"out-of-fold on {name}"))
        proba = oof["proba"]
        p_given = proba[np.arange(len(given)), given]
        ratio = p_given / proba.max(1)
        out[name] = {
            "oof_accuracy_given": round(float((proba.argmax(1) == given).mean()), 4),
            "oof_accuracy_true": round(float((proba.argmax(1) == article).mean()), 4),
            "flag_precision_at_recall_0_8": round(precision_at_recall(p_given, corrupted), 4),
            "flag_precision_at_recall_0_8_ratio": round(precision_at_recall(ratio, corrupted), 4),
            "wrong_labels_predicted_as_given": round(float((proba.argmax(1)[corrupted] == given[corrupted]).mean()), 4),
        }
    print(json.dumps({
        "bench": "finetune_flags",
        "images": len(rows),
        "corrupted": int(corrupted.sum()),
        "image_size": args.image_size,
        "blocks": args.blocks,
        "epochs": args.epochs,
        "finetune_train_accuracy": round(float(result.history[-1]["train_accuracy"]), 4),
        "finetuned_network_learned_wrong_labels": round(float((own == given[corrupted]).mean()), 4),
        **out,
        "seconds": round(time.monotonic() - started, 1),
        "seed": args.seed,
    }))


if __name__ == "__main__":
    main()
