"""The strict pair protocol, run through the commands a user runs, on a real catalog folder.

    python bench/outfit_protocol.py --styles PATH/styles.csv --images PATH [--outfits 900] [--seed 0]

A catalog folder of the ``styles.csv`` format (``../shared/data/fashion-products``) has real
product photos but no outfits, so this script makes outfits by a stated rule from the catalog's own
attributes, the way a stylist would at the coarsest level:

* slots: a top (Topwear) with a bottom (Bottomwear) or a dress; shoes (Shoes, Flip Flops,
  Sandal); one or two accessories of different kinds (Watches, Bags, Belts, Eyewear, Wallets,
  Headwear, Ties, Mufflers, Scarves, Cufflinks);
* every two items of an outfit: the same usage (Casual, Formal, Sports, Ethnic); the same gender
  or one of them Unisex; not a Summer item with a Winter one; colours that go together (one of
  them neutral: black, white, grey, navy, beige, brown...; or the same colour);
* an item is used in at most ``--max-uses`` outfits.

Then it runs the protocol the retraining loop is judged by:

1. items are split by product model (the importer derives it from the title, so colour variants
   share it): ``--test-percent`` of the models are test items;
2. outfits are made among train items only and imported (``import_catalog`` with the folder's
   column names, ``import_outfits``); test outfits are made among test items and never imported;
3. ``retrain --sync`` (its steps' seconds are reported);
4. every pair inside a test outfit is a positive; its negative replaces the partner with another
   test item of the partner's own articleType; fill-in-the-blank: one item of each test outfit
   blanked, the answer among four candidates of its articleType, each candidate scored by its mean
   pair score with the outfit's other items. Every score comes from ``score_pairs`` (a CSV in,
   a CSV out, as a batch user would run it); plain cosine similarity of the active embeddings is
   reported beside it.

With ``--finetune``, ``finetune_backbone`` (its defaults, plus ``--finetune-args``) runs between the
imports and the retrain, and the retrain embeds with its weights, as an operator would switch
``ML_WEIGHTS``; its held-out figures are reported under ``finetune``.

Prints one JSON line. ``--dump PATH.npz`` also saves the arrays (features, categories, splits,
outfits, the evaluation pairs) for experiments on the pair model without re-embedding.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's queue module: drop this folder from the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

SLOT_OF_SUB = {
    "Topwear": "top", "Bottomwear": "bottom", "Dress": "dress",
    "Shoes": "shoes", "Flip Flops": "shoes", "Sandal": "shoes",
    **{sub: "accessory" for sub in ("Watches", "Bags", "Belts", "Eyewear", "Wallets", "Headwear", "Ties", "Mufflers", "Scarves", "Cufflinks")},
}
USAGES = {"Casual", "Formal", "Sports", "Ethnic"}
GENDERS = {"Men", "Women", "Unisex"}
NEUTRALS = {"Black", "White", "Grey", "Navy Blue", "Beige", "Brown", "Silver", "Charcoal", "Off White", "Cream", "Khaki",
            "Tan", "Steel", "Grey Melange", "Taupe", "Skin", "Nude", "Coffee Brown", "Mushroom Brown"}


def goes_with(a: dict, b: dict) -> bool:
    """The outfit rule for two catalog rows (see the module docstring)."""
    if a["usage"] != b["usage"]:
        return False
    if a["gender"] != b["gender"] and "Unisex" not in (a["gender"], b["gender"]):
        return False
    if {a["season"], b["season"]} == {"Summer", "Winter"}:
        return False
    return a["baseColour"] in NEUTRALS or b["baseColour"] in NEUTRALS or a["baseColour"] == b["baseColour"]


def make_outfits(rows: list[dict], target: int, rng: random.Random, max_uses: int) -> list[list[int]]:
    """Outfits (lists of row indexes) that follow the rule; least-used candidates first."""
    by_slot: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_slot.setdefault(r["slot"], []).append(i)
    uses: Counter = Counter()
    outfits, seen = [], set()
    anchors = by_slot.get("top", []) + by_slot.get("dress", [])

    def pick(slot: str, chosen: list[int], exclude_sub: set[str] = frozenset()) -> int | None:
        cands = [c for c in by_slot.get(slot, []) if uses[c] < max_uses and rows[c]["subCategory"] not in exclude_sub
                 and all(goes_with(rows[c], rows[o]) for o in chosen)]
        if not cands:
            return None
        least = min(uses[c] for c in cands)
        return rng.choice([c for c in cands if uses[c] == least])

    for _ in range(target * 30):
        if len(outfits) >= target or not anchors:
            break
        anchor = rng.choice(anchors)
        if uses[anchor] >= max_uses:
            continue
        chosen = [anchor]
        if rows[anchor]["slot"] == "top":
            bottom = pick("bottom", chosen)
            if bottom is None:
                continue
            chosen.append(bottom)
        shoes = pick("shoes", chosen)
        if shoes is None:
            continue
        chosen.append(shoes)
        for _ in range(rng.choice((1, 1, 2))):
            extra = pick("accessory", chosen, {rows[c]["subCategory"] for c in chosen})
            if extra is not None:
                chosen.append(extra)
        key = tuple(sorted(chosen))
        if key in seen:
            continue
        seen.add(key)
        uses.update(chosen)
        outfits.append(chosen)
    return outfits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--outfits", type=int, default=900, help="train outfits to make (test outfits: in proportion to the test items)")
    p.add_argument("--max-uses", type=int, default=3)
    p.add_argument("--test-percent", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="only this many catalog rows (quick runs)")
    p.add_argument("--weights", default=None, help="default: ML_WEIGHTS (imagenet, none or a state-dict path)")
    p.add_argument("--database-url", default=None, help="default: a throwaway SQLite file")
    p.add_argument("--dump", type=Path, help="also save the arrays for pair-model experiments (.npz)")
    p.add_argument("--finetune", action="store_true",
                   help="run finetune_backbone (its defaults) before the retrain and retrain on its weights, as an operator would")
    p.add_argument("--finetune-args", default="", help="extra finetune_backbone options, e.g. '--epochs 4 --time-budget-min 20'")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-outfit-protocol-"))
    os.environ["VAR_DIR"] = str(work)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'db.sqlite3'}"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    if args.weights:
        os.environ["ML_WEIGHTS"] = args.weights
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command

    from curation.catalog.models import Product
    from curation.training import serving
    from curation.training.models import ModelVersion, PipelineRun
    from ml.metrics import fitb_accuracy, roc_auc

    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    call_command("migrate", verbosity=0)
    styles = args.styles
    if args.limit:
        with open(args.styles, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            kept = list(reader)[: args.limit]
        styles = work / "styles.csv"
        with open(styles, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(kept)
    t0 = time.monotonic()
    call_command(
        "import_catalog", str(styles), "--images", str(args.images), "--sku-column", "id", "--title-column", "productDisplayName",
        "--category-columns", "masterCategory,subCategory,articleType", "--colour-column", "baseColour",
        "--gender-column", "gender", "--season-column", "season", "--usage-column", "usage", "--attribute-columns", "year",
        "--no-cold-start", stdout=io.StringIO(),
    )
    import_s = time.monotonic() - t0
    with open(args.styles, newline="", encoding="utf-8") as fh:
        styles_rows = {r["id"]: r for r in csv.DictReader(fh)}
    products = {sku: (pid, model) for sku, pid, model in Product.objects.values_list("sku", "id", "product_model")}
    rows = []
    for sku, (pid, model) in products.items():
        r = dict(styles_rows[sku])
        r["slot"] = SLOT_OF_SUB.get(r["subCategory"])
        if r["slot"] is None or r["usage"] not in USAGES or r["gender"] not in GENDERS:
            continue
        bucket = int(hashlib.sha1(f"protocol:{args.seed}:{model}".encode()).hexdigest()[:8], 16) % 100
        r["test"] = bucket < args.test_percent
        r["product_id"] = pid
        rows.append(r)
    rows.sort(key=lambda r: int(r["product_id"]))
    rng = random.Random(args.seed)
    train_idx = [i for i, r in enumerate(rows) if not r["test"]]
    test_idx = [i for i, r in enumerate(rows) if r["test"]]
    sub = lambda idx: [rows[i] for i in idx]  # noqa: E731
    train_outfits = [[train_idx[i] for i in o] for o in make_outfits(sub(train_idx), args.outfits, rng, args.max_uses)]
    n_test = max(1, round(args.outfits * len(test_idx) / max(len(train_idx), 1)))
    test_outfits = [[test_idx[i] for i in o] for o in make_outfits(sub(test_idx), n_test, rng, args.max_uses)]
    say(f"{len(products)} products imported in {import_s:.0f}s; {len(rows)} in outfit slots; "
        f"{len(train_outfits)} train outfits, {len(test_outfits)} test outfits")

    outfits_csv = work / "outfits.csv"
    with open(outfits_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["outfit_id", "sku"])
        for n, outfit in enumerate(train_outfits, start=1):
            writer.writerows([f"look-{n}", rows[i]["id"]] for i in outfit)
    call_command("import_outfits", str(outfits_csv), stdout=io.StringIO())

    finetune = None
    if args.finetune:
        # The catalog's categories only (no outfit is read): what an operator runs before a retrain.
        t0 = time.monotonic()
        weights = work / "finetuned-backbone.pt"
        call_command("finetune_backbone", str(weights), *args.finetune_args.split(), stdout=sys.stderr, stderr=sys.stderr)
        finetune = json.loads(Path(f"{weights}.json").read_text())  # the record it writes beside the weights
        finetune = {k: finetune[k] for k in ("metrics", "products", "holdout_products", "classes", "seconds")} | {
            "epochs": len(finetune["history"]), "wall_s": round(time.monotonic() - t0, 1)}
        say(f"finetune_backbone: {finetune}")
        settings.ML_WEIGHTS = str(weights)

    t0 = time.monotonic()
    call_command("retrain", "--sync", stdout=sys.stderr, stderr=sys.stderr)  # its progress lines
    retrain_s = time.monotonic() - t0
    run = PipelineRun.objects.order_by("-pk").first()
    say(f"retrain --sync: {run.status} in {retrain_s:.0f}s")

    # The evaluation pairs: each test-outfit pair and its category-matched negative; FITB-4.
    erng = np.random.default_rng(args.seed)
    test_by_type: dict[str, list[int]] = {}
    for i in test_idx:
        test_by_type.setdefault(rows[i]["articleType"], []).append(i)
    eval_pairs, eval_labels = [], []
    for outfit in test_outfits:
        for x in range(len(outfit)):
            for y in range(x + 1, len(outfit)):
                a, b = (outfit[x], outfit[y]) if erng.random() < 0.5 else (outfit[y], outfit[x])
                others = [c for c in test_by_type[rows[b]["articleType"]] if c not in outfit]
                if not others:
                    continue
                eval_pairs += [(a, b), (a, int(erng.choice(others)))]
                eval_labels += [1, 0]
    questions = []
    for outfit in test_outfits:
        answer = outfit[int(erng.integers(0, len(outfit)))]
        others = [c for c in test_by_type[rows[answer]["articleType"]] if c not in outfit]
        if len(others) < 3:
            continue
        questions.append(([i for i in outfit if i != answer], [answer] + [int(c) for c in erng.choice(others, 3, replace=False)]))
    fitb_pairs = [(g, c) for given, cands in questions for c in cands for g in given]
    pairs_csv, scores_csv = work / "pairs.csv", work / "scores.csv"
    with open(pairs_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku_a", "sku_b"])
        writer.writerows([rows[a]["id"], rows[b]["id"]] for a, b in eval_pairs + fitb_pairs)
    t0 = time.monotonic()
    call_command("score_pairs", str(pairs_csv), str(scores_csv), stdout=io.StringIO(), stderr=io.StringIO())
    score_s = time.monotonic() - t0
    with open(scores_csv, newline="", encoding="utf-8") as fh:
        scores = np.array([float(r["score"] or "nan") for r in csv.DictReader(fh)])

    embeddings = serving.active_embeddings()
    vectors = embeddings.vectors([int(r["product_id"]) for r in rows])
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = lambda pairs: np.einsum("ij,ij->i", unit[[a for a, _ in pairs]], unit[[b for _, b in pairs]])  # noqa: E731

    def fitb(pair_scores: np.ndarray) -> float:
        table, at = [], 0
        for given, cands in questions:
            n = len(given) * len(cands)
            table.append(pair_scores[at : at + n].reshape(len(cands), len(given)).mean(1))
            at += n
        return fitb_accuracy(np.array(table)) if table else float("nan")

    labels = np.array(eval_labels, dtype=np.float32)
    pair_scores, fitb_scores = scores[: len(eval_pairs)], scores[len(eval_pairs) :]
    versions = {v.kind: v for v in ModelVersion.objects.filter(run=run)}
    result = {
        "bench": "outfit_protocol",
        "products": len(products),
        "outfit_slot_products": len(rows),
        "train_outfits": len(train_outfits),
        "test_outfits": len(test_outfits),
        "eval_pairs": len(eval_pairs),
        "fitb_questions": len(questions),
        "pair_auc": round(float(roc_auc(labels, pair_scores)), 4),
        "fitb4": round(float(fitb(fitb_scores)), 4),
        "cosine_pair_auc": round(float(roc_auc(labels, cosine(eval_pairs))), 4),
        "cosine_fitb4": round(float(fitb(cosine(fitb_pairs))), 4),
        "unscored_pairs": int(np.isnan(scores).sum()),
        "retrain_status": run.status,
        "retrain_s": round(retrain_s, 1),
        "import_s": round(import_s, 1),
        "score_pairs_s": round(score_s, 1),
        "step_s": {name: step.get("seconds") for name, step in run.steps.items()},
        "pipeline_siamese": {k: versions["siamese"].metrics.get(k) for k in ("pair_auc", "baseline_auc", "cosine_auc", "val_auc")} if "siamese" in versions else None,
        "pipeline_outfit_fitb": versions["outfit"].metrics.get("fitb") if "outfit" in versions else None,
        "pipeline_outfit_fitb_pair_model": versions["outfit"].metrics.get("fitb_pair_model") if "outfit" in versions else None,
        "pipeline_looks_scored_by": versions["outfit"].metrics.get("looks_scored_by") if "outfit" in versions else None,
        "pipeline_side_attributes": versions["siamese"].metrics.get("side_attributes") if "siamese" in versions else None,
        "backbone": serving.active_embeddings().backbone if args.finetune else f"{settings.ML_BACKBONE}:{settings.ML_WEIGHTS}:{settings.ML_IMAGE_SIZE}",
        "finetune": finetune,
        "seed": args.seed,
    }
    if args.dump:
        np.savez_compressed(
            args.dump, features=vectors, sku=np.array([r["id"] for r in rows]), article=np.array([r["articleType"] for r in rows]), test=np.array([r["test"] for r in rows]),
            product_model=np.array([products[r["id"]][1] for r in rows]),
            train_outfits=np.array([o + [-1] * (6 - len(o)) for o in train_outfits], dtype=np.int64),
            test_outfits=np.array([o + [-1] * (6 - len(o)) for o in test_outfits], dtype=np.int64),
            eval_pairs=np.array(eval_pairs, dtype=np.int64), eval_labels=labels,
            fitb_given=np.array([g + [-1] * (6 - len(g)) for g, _ in questions], dtype=np.int64),
            fitb_candidates=np.array([c for _, c in questions], dtype=np.int64), app_scores=scores,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
