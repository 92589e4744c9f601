"""Siamese training throughput on cached features.

    python bench/train.py [--pairs 100000] [--items 20000] [--dim 2048] [--fusion concat] [--epochs 1]

Prints one JSON line: pairs_per_s counts every pair the optimiser sees (labeled pairs plus the
random and category-matched negatives drawn each epoch), and labeled_pairs_per_s the labeled ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ml.siamese import SiameseConfig, train_siamese  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--fusion", default="concat")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    cats = rng.integers(0, 40, args.items)
    pairs = rng.integers(0, args.items, size=(args.pairs, 2))
    labels = (rng.random(args.pairs) < 0.5).astype(np.float32)
    cfg = SiameseConfig(fusion=args.fusion, epochs=args.epochs, batch_size=args.batch_size, device=args.device)
    seen = []
    t = time.perf_counter()
    _, history = train_siamese(feats, pairs, labels, categories=cats, cfg=cfg, progress=lambda h: sys.stderr.write(f"epoch {h['epoch']}: loss {h['loss']:.4f}\n"))
    seconds = time.perf_counter() - t
    n_pos = int((labels > 0.5).sum())
    per_epoch = args.pairs + n_pos * (cfg.random_negatives + cfg.category_negatives)
    print(json.dumps({
        "pairs": args.pairs,
        "items": args.items,
        "dim": args.dim,
        "fusion": args.fusion,
        "extras": list(cfg.extras),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "device": cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"),
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 2),
        "pairs_per_s": round(per_epoch * args.epochs / seconds, 1),
        "labeled_pairs_per_s": round(args.pairs * args.epochs / seconds, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
