"""Import curated outfits from a CSV: one row per (outfit, product).

    python manage.py import_outfits outfits.csv
    python manage.py import_outfits looks.csv --outfit-column look --sku-column article --name-column look_name
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from curation.catalog.progress import ProgressLine
from curation.pairs.services import OutfitImportError, outfits_import_csv


class Command(BaseCommand):
    help = (
        "Import outfits (columns outfit_id,sku by default). Rows are numbered as in a spreadsheet "
        "(header = row 1). Any bad row rejects the whole file unless --skip-bad-rows. Re-importing "
        "an outfit id replaces its items."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv", help="the outfits CSV (UTF-8, header row)")
        parser.add_argument("--outfit-column", default="outfit_id", help="column with the outfit's id (default: outfit_id)")
        parser.add_argument("--sku-column", default="sku", help="column with the product sku (default: sku)")
        parser.add_argument("--name-column", help="optional column with the outfit's name")
        parser.add_argument("--delimiter", default=",", help="field separator (default: ,)")
        parser.add_argument("--skip-bad-rows", action="store_true", help="import the good rows and write a CSV report of the bad ones")
        parser.add_argument("--report", help="where --skip-bad-rows writes its report (default: var/import-reports/...)")
        parser.add_argument("--user", help="username recorded as the outfits' author")

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user named {options['user']!r}")
        progress = ProgressLine(self.stderr._out)
        try:
            report = outfits_import_csv(
                path=options["csv"],
                outfit_column=options["outfit_column"],
                sku_column=options["sku_column"],
                name_column=options["name_column"],
                delimiter=options["delimiter"],
                skip_bad_rows=options["skip_bad_rows"],
                report_path=options["report"],
                user=user,
                progress=progress,
            )
        except OutfitImportError as exc:
            progress.close()
            raise CommandError(f"nothing imported:\n{exc}") from exc
        progress.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {options['csv']}: {report.outfits_created} outfit(s) created, "
                f"{report.outfits_updated} updated, {report.items} item(s) from {report.rows} row(s)"
            )
        )
        if report.bad_rows:
            self.stdout.write(self.style.WARNING(f"{len(report.bad_rows)} bad row(s) skipped, report written to {report.report_path}"))
            for row, message in report.bad_rows[:20]:
                self.stdout.write(f"  row {row}: {message}")
