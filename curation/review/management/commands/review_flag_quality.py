"""Print the precision and recall of the category flags on the demo catalog, as one JSON line.

    python manage.py review_flag_quality [--model-version ID]

The demo catalog (make_demo_catalog) records which products it miscategorised on purpose; after a
category-model run has raised flags, this says how many of them the flags found (recall) and how
many flags were right (precision), which is how FLAG_MAX_PATH_RATIO is chosen.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from curation.review.selectors import flag_quality_against_demo_truth


class Command(BaseCommand):
    help = "Flag precision and recall against the demo catalog's known wrong categories (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, default=None, help="flags of this ModelVersion id (default: the open flags)")

    def handle(self, *args, model_version=None, **options):
        try:
            quality = flag_quality_against_demo_truth(model_version=model_version)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(quality))
