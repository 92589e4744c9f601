"""The whole retraining pipeline on a generated demo catalog, in a throwaway database.

    python bench/retrain.py [--products 240] [--labels 300] [--seed 7] [--image-size 224] [--weights imagenet]

Makes the demo catalog (its outfits follow a hidden style rule), adds --labels stylist labels of
random slot-compatible pairs judged by that rule, runs `retrain --sync`'s pipeline and prints one
JSON line: seconds per step and the held-out figures (items split by product model; each positive
against a category-matched negative): siamese pair AUC vs the category-only co-occurrence baseline
and plain cosine, FITB-4 of the outfit and pair models, out-of-fold category accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's queue module: drop this folder from the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--products", type=int, default=240)
    p.add_argument("--labels", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--image-size", type=int, default=None, help="default: ML_IMAGE_SIZE")
    p.add_argument("--weights", default=None, help="default: ML_WEIGHTS (imagenet, none or a state-dict path)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    os.environ["VAR_DIR"] = str(work)
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    if args.image_size:
        os.environ["ML_IMAGE_SIZE"] = str(args.image_size)
    if args.weights:
        os.environ["ML_WEIGHTS"] = args.weights
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from curation.catalog.demo import demo_facts_for, style_complementary
    from curation.catalog.models import DemoTruth
    from curation.pairs.models import CandidatePair, PairLabel
    from curation.training.models import ModelVersion, PipelineRun
    from curation.training.services import pipeline_run_execute, pipeline_run_request

    call_command("migrate", verbosity=0)
    t0 = time.monotonic()
    call_command("make_demo_catalog", products=args.products, seed=args.seed, stdout=open(os.devnull, "w"))
    catalog_s = time.monotonic() - t0

    facts = {}
    for truth in DemoTruth.objects.select_related("true_category"):
        f = demo_facts_for(true_category_path=truth.true_category.path, formality=truth.formality, hue=truth.hue, pattern=truth.pattern)
        if f:
            facts[truth.product_id] = f
    stylist = get_user_model().objects.create_user("bench-stylist")
    rng = random.Random(args.seed)
    ids = sorted(facts)
    made: set[tuple[int, int]] = set()
    tries = 0
    while len(made) < args.labels and tries < args.labels * 50:
        tries += 1
        a, b = sorted(rng.sample(ids, 2))
        if (a, b) in made or facts[a].slot == facts[b].slot:
            continue
        made.add((a, b))
        pair = CandidatePair.objects.create(a_id=a, b_id=b, source="exploration", state="decided")
        value = "yes" if style_complementary(facts[a], facts[b]) else "no"
        PairLabel.objects.create(pair=pair, user=stylist, kind="stylist", value=value)

    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    t0 = time.monotonic()
    run = pipeline_run_execute(run_id=run.pk)
    total_s = time.monotonic() - t0
    metrics = {v.kind: v.metrics for v in ModelVersion.objects.filter(run=run)}
    pick = lambda kind, keys: {k: metrics.get(kind, {}).get(k) for k in keys}  # noqa: E731
    print(json.dumps({
        "bench": "retrain",
        "products": args.products,
        "stylist_labels": len(made),
        "positive_labels": PairLabel.objects.filter(value="yes").count(),
        "backbone": f"{settings.ML_BACKBONE}:{settings.ML_WEIGHTS}:{settings.ML_IMAGE_SIZE}",
        "status": run.status,
        "catalog_s": round(catalog_s, 1),
        "retrain_s": round(total_s, 1),
        "step_s": {name: step.get("seconds") for name, step in run.steps.items()},
        "siamese": pick("siamese", ["pair_auc", "baseline_auc", "cosine_auc", "label_auc", "val_auc", "test_positives", "eval_pairs"]),
        "outfit": pick("outfit", ["fitb", "fitb_pair_model", "fitb_questions"]),
        "category": pick("category", ["oof_accuracy", "oof_top3_accuracy", "classes"]),
        "torch_threads": __import__("torch").get_num_threads(),
    }))


if __name__ == "__main__":
    main()
