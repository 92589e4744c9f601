"""Generate a demo catalog: product images drawn with PIL (no downloads), a category tree, curated
outfits that follow a hidden style rule, and about 3% deliberately wrong categories.

The hidden style rule (also in curation/catalog/demo.py): two products are complementary when
(1) their slots can be worn together (different slots; a dress goes with neither a top nor a
bottom), (2) they have the same formality (casual, smart, formal), (3) their colours harmonise
(one is neutral - black, white, grey, beige - or their hues are within 30 degrees or at least 150
degrees apart), and (4) at most one of them is patterned. Formality is only visible in the
pictures (sneaker/loafer/heel, backpack/tote/clutch, cap/bucket/fedora, hem lengths, pockets
versus buttons, busy versus plain patterns). Outfits (source=demo) are sampled so that every two of
their items follow the rule. DemoTruth keeps each product's true category and rule inputs.

Deterministic for a given --products and --seed.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from curation.catalog.demo import DemoCatalogError, demo_catalog_create
from curation.catalog.models import Product
from curation.catalog.progress import ProgressLine


class Command(BaseCommand):
    help = "Create a generated demo catalog (images, categories, outfits, ~3% wrong categories)."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=240, help="how many products (default 240)")
        parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same catalog")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when the catalog already has products")

    def handle(self, *args, **options):
        if options["if_empty"] and Product.objects.exists():
            self.stdout.write(f"The catalog already has {Product.objects.count()} products: nothing to do (--if-empty).")
            return
        if options["products"] < 1:
            raise CommandError("--products must be at least 1")
        started = time.monotonic()
        progress = ProgressLine(self.stderr._out)
        try:
            result = demo_catalog_create(products=options["products"], seed=options["seed"], progress=progress)
        except DemoCatalogError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            progress.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo catalog: {result.products} products in {result.categories} categories, {result.outfits} outfits, "
                f"{result.miscategorised} deliberately miscategorised (seed {options['seed']}) "
                f"in {time.monotonic() - started:.1f}s"
            )
        )
