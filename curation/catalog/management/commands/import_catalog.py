"""Import a retailer's catalog CSV with its images, using the file's own column names.

Example, the Myntra sample in ../shared/data/fashion-products:

    python manage.py import_catalog styles.csv --images /path/to/fashion-products \\
        --sku-column id --title-column productDisplayName \\
        --category-columns masterCategory,subCategory,articleType \\
        --colour-column baseColour --attribute-columns year

The same mapping as a file (--mapping mapping.json):

    {"sku": "id", "title": "productDisplayName",
     "category": ["masterCategory", "subCategory", "articleType"],
     "colour": "baseColour", "attributes": ["year"]}
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from curation.catalog.importing import CatalogImportError, ColumnMapping, catalog_import_csv
from curation.catalog.progress import ProgressLine


class Command(BaseCommand):
    help = (
        "Import products from a CSV (create or update by sku). Rows are numbered as in a spreadsheet "
        "(header = row 1). Any bad row rejects the whole file unless --skip-bad-rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv", help="the catalog CSV (UTF-8, header row)")
        parser.add_argument("--images", help="folder that relative image paths start from (default: the CSV's folder)")
        parser.add_argument("--mapping", help="JSON file mapping fields to columns, e.g. {\"sku\": \"id\"}")
        columns = parser.add_argument_group("column mapping (override --mapping)")
        columns.add_argument("--sku-column", dest="sku", help="column with the unique product id (default: sku)")
        columns.add_argument("--title-column", dest="title", help="default: title")
        columns.add_argument(
            "--category-columns",
            dest="category",
            help="comma-separated columns, one per level, top first; or one column holding 'A > B > C' (default: category)",
        )
        columns.add_argument("--image-column", dest="image", help="image path, absolute or relative to --images (default: image)")
        columns.add_argument("--brand-column", dest="brand")
        columns.add_argument("--gender-column", dest="gender")
        columns.add_argument("--colour-column", dest="colour")
        columns.add_argument("--season-column", dest="season")
        columns.add_argument("--usage-column", dest="usage")
        columns.add_argument("--in-stock-column", dest="in_stock", help="yes/no, true/false, 1/0 (default: in_stock, all in stock when absent)")
        columns.add_argument(
            "--product-model-column",
            dest="product_model",
            help="column naming the model colour variants share; without it the model is the title minus colour words",
        )
        columns.add_argument("--attribute-columns", dest="attributes", help="comma-separated extra columns kept in Product.attributes")
        parser.add_argument("--no-product-model", action="store_true", help="do not derive a product model from titles")
        parser.add_argument("--skip-bad-rows", action="store_true", help="import the good rows and write a CSV report of the bad ones")
        parser.add_argument("--report", help="where --skip-bad-rows writes its report (default: var/import-reports/...)")
        parser.add_argument("--categories-must-exist", action="store_true", help="refuse rows whose category path is not already in the tree")
        parser.add_argument("--no-cold-start", action="store_true", help="do not ask discovery to embed the new products")
        parser.add_argument("--workers", type=int, default=2, help="threads decoding images while checking them (default 2)")

    def handle(self, *args, **options):
        started = time.monotonic()
        overrides = {key: options[key] for key in (
            "sku", "title", "category", "image", "brand", "gender", "colour", "season", "usage",
            "in_stock", "product_model", "attributes",
        )}
        progress = ProgressLine(self.stderr._out)
        try:
            mapping = ColumnMapping.build(mapping_file=options["mapping"], overrides=overrides)
            result = catalog_import_csv(
                csv_path=options["csv"],
                images_dir=options["images"],
                mapping=mapping,
                skip_bad_rows=options["skip_bad_rows"],
                categories_must_exist=options["categories_must_exist"],
                report_path=options["report"],
                derive_product_model=not options["no_product_model"],
                cold_start=not options["no_cold_start"],
                workers=options["workers"],
                progress=progress,
            )
        except CatalogImportError as exc:
            progress.close()
            raise CommandError(str(exc)) from exc
        progress.close()
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Imported {options['csv']}: {result.summary()} in {elapsed:.1f}s"))
        if result.report_path:
            self.stdout.write(self.style.WARNING(f"{len(result.bad_rows)} bad row(s), report written to {result.report_path}"))
            for error in result.bad_rows[:20]:
                self.stdout.write(f"  {error}")
        if result.cold_start:
            self.stdout.write(result.cold_start)
