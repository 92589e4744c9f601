"""python manage.py finetune_backbone OUT.pt [--epochs 6] [--blocks 3] [--holdout-percent 10] ...

Fine-tunes the backbone's last blocks on the catalog's categories (and colours) and writes a
state dict for ML_WEIGHTS, with a JSON record beside it. Prints progress lines and, at the end,
what changed on held-out product models and how to switch the app to the new weights.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from curation.training.management.commands.retrain import ProgressPrinter
from curation.training.services.finetune import FinetuneError, FinetuneOptions, backbone_finetune, estimate_cache_bytes


class Command(BaseCommand):
    help = "Fine-tune the backbone on the catalog's categories and write a state dict for ML_WEIGHTS."

    def add_arguments(self, parser):
        defaults = FinetuneOptions()
        parser.add_argument("out", help="path of the .pt state dict to write (a JSON record is written beside it)")
        parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"training epochs (default {defaults.epochs})")
        parser.add_argument(
            "--blocks", type=int, default=defaults.blocks,
            help=f"trailing bottleneck blocks of layer3+layer4 to train; 3 = layer4 (default {defaults.blocks})",
        )
        parser.add_argument(
            "--holdout-percent", type=int, default=defaults.holdout_percent,
            help=f"percent of product models held out to measure the change; 0 trains on all (default {defaults.holdout_percent})",
        )
        parser.add_argument(
            "--max-products", type=int, default=defaults.max_products,
            help=f"train on a random sample of at most this many products (default {defaults.max_products})",
        )
        parser.add_argument("--time-budget-min", type=float, default=None, help="train fewer epochs when these would not fit")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as one JSON line at the end")

    def handle(self, *args, out: str, epochs: int, blocks: int, holdout_percent: int, max_products: int,
               time_budget_min: float | None, seed: int, overwrite: bool, as_json: bool, **options):
        from django.conf import settings

        opts = FinetuneOptions(
            epochs=epochs, blocks=blocks, holdout_percent=holdout_percent, max_products=max_products,
            time_budget_s=time_budget_min * 60 if time_budget_min is not None else None, seed=seed,
        )
        if max_products < 2:
            raise CommandError(f"--max-products {max_products}: at least two products are needed")
        self.stdout.write(
            f"Fine-tuning {blocks} block(s) of {settings.ML_BACKBONE} (ML_WEIGHTS={settings.ML_WEIGHTS}) at "
            f"{settings.ML_IMAGE_SIZE} px; the activation cache takes about "
            f"{estimate_cache_bytes(products=1, blocks=blocks, image_size=settings.ML_IMAGE_SIZE) / 2**10:.0f} KiB per product."
        )
        printer = ProgressPrinter(self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout)
        try:
            report = backbone_finetune(
                out_path=out, options=opts, overwrite=overwrite,
                on_progress=printer,  # (stage, done, total, detail), as the retrain's steps report
            )
        except FinetuneError as exc:
            raise CommandError(str(exc)) from None
        finally:
            printer.close()
        m = report.metrics
        self.stdout.write(
            f"Trained on {report.train_products} products in {report.classes} categories "
            f"({report.holdout_products} held out; {report.excluded_open_flags} left out for open catalog flags, "
            f"{report.excluded_small_categories} in categories with one product, {len(report.skipped)} without a readable image) "
            f"in {report.seconds:.0f} s."
        )
        if "knn_precision_at_10" in m:
            self.stdout.write(
                f"Held out: category accuracy {m['frozen_holdout_accuracy']:.3f} -> {m['holdout_accuracy']:.3f} "
                f"(the fine-tuned network's own head: {m['network_holdout_accuracy']:.3f}), "
                f"k-NN precision@10 (same category) {m['frozen_knn_precision_at_10']:.3f} -> {m['knn_precision_at_10']:.3f}."
            )
            if m["knn_precision_at_10"] < m["frozen_knn_precision_at_10"]:
                self.stdout.write(self.style.WARNING("The new weights find same-category neighbours less often than the current ones."))
        self.stdout.write(self.style.SUCCESS(f"Wrote {report.path} (sha256 {report.sha256[:16]}...)."))
        self.stdout.write(
            f"To use it: set ML_WEIGHTS={report.path} for the web and worker processes, restart them, then run "
            "`python manage.py retrain` (the catalog is embedded again under the new weights)."
        )
        if as_json:
            self.stdout.write(json.dumps(report.to_dict()))
