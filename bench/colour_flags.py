"""Colour flags on a real catalog folder: how many, and how many right, at each path-ratio threshold.

    python bench/colour_flags.py --styles PATH/styles.csv --images PATH [--image-size 224] [--corrupt 0.05] [--seed 0]

Embeds every photo with the frozen backbone (random-init weights unless ``--weights``), moves
``--corrupt`` of the products to another baseColour at random, runs the app's out-of-fold category
model with its colour head (as the pipeline's train_category step does), and applies the review
rule: flag when the top colour differs from the catalog's and p(catalog colour) / p(top colour) is
at most the threshold. Prints, per threshold, the flags raised, their precision and their recall,
and the colour pairs most often flagged on products whose colour was not corrupted; progress on
stderr, one JSON line on stdout. This is how FLAG_COLOUR_MAX_PATH_RATIO was chosen.
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

THRESHOLDS = (0.1, 0.03, 0.01, 0.003)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--weights", default="none")
    p.add_argument("--corrupt", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import numpy as np

    from ml.backbone import Embedder
    from ml.category import CategoryConfig, out_of_fold_predictions
    from ml.config import BackboneConfig
    from ml.evaluate import ProgressLine, corrupt_categories, precision_at_recall, read_catalog

    started = time.monotonic()
    rows = read_catalog(args.styles, args.images)
    _, category = np.unique([r["articleType"] for r in rows], return_inverse=True)
    names, colour = np.unique([r.get("baseColour") or "" for r in rows], return_inverse=True)
    n = len(rows)
    given, corrupted = corrupt_categories(colour, args.corrupt, np.random.default_rng(args.seed))  # any codes: colours here

    embedder = Embedder(BackboneConfig(weights=args.weights, image_size=args.image_size, device="cpu", num_workers=1))
    features = embedder.embed_paths([r["path"] for r in rows], progress=ProgressLine("embed"))
    oof = out_of_fold_predictions(features, category, int(category.max()) + 1, attributes={"colour": (given, len(names))},
                                  cfg=CategoryConfig(seed=args.seed), progress=ProgressLine("out-of-fold"))
    proba = oof["attributes"]["colour"]
    ratio = proba[np.arange(n), given] / proba.max(1)
    differs = proba.argmax(1) != given
    result = {
        "bench": "colour_flags",
        "products": n,
        "colours": len(names),
        "corrupted": int(corrupted.sum()),
        "colour_oof_accuracy_true": round(float((proba.argmax(1) == colour).mean()), 4),
        "precision_at_recall_0_8": round(precision_at_recall(ratio, corrupted), 4),
    }
    for t in THRESHOLDS:
        flagged = differs & (ratio <= t)
        result[f"max_ratio_{t}"] = {
            "flags": int(flagged.sum()),
            "precision": round(float(corrupted[flagged].mean()), 4) if flagged.any() else None,
            "recall": round(float(flagged[corrupted].mean()), 4),
        }
    clean = np.flatnonzero(differs & (ratio <= THRESHOLDS[0]) & ~corrupted)
    pairs: dict[str, int] = {}
    for i in clean:
        key = f"{names[given[i]]} -> {names[proba[i].argmax()]}"
        pairs[key] = pairs.get(key, 0) + 1
    result["uncorrupted_flags_by_colour_pair"] = dict(sorted(pairs.items(), key=lambda kv: -kv[1])[:10])
    result["backbone"] = embedder.key
    result["seconds"] = round(time.monotonic() - started, 1)
    result["seed"] = args.seed
    print(json.dumps(result))


if __name__ == "__main__":
    main()
