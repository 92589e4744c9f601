"""Export every pair label (who, when, what) and every outfit as CSV or JSON Lines.

    python manage.py export_labels --output labels.csv
    python manage.py export_labels --kind outfits --format jsonl --output outfits.jsonl
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.pairs import export


class Command(BaseCommand):
    help = "Export pair labels or outfits (CSV or JSON Lines) to a file or stdout."

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=list(export.KINDS), default="labels", help="labels (default) or outfits")
        parser.add_argument("--format", dest="fmt", choices=list(export.FORMATS), help="csv or jsonl (default: from --output's suffix, else csv)")
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")

    def handle(self, *args, **options):
        out_path = Path(options["output"]) if options["output"] else None
        fmt = options["fmt"] or (out_path.suffix.lstrip(".").lower() if out_path and out_path.suffix.lower() in (".csv", ".jsonl") else "csv")
        if out_path is not None and not out_path.parent.exists():
            raise CommandError(f"--output: folder {out_path.parent} does not exist")
        # Written to a temporary name and renamed, so a failed export never leaves half a file.
        tmp = out_path.with_name(out_path.name + ".part") if out_path else None
        fh = tmp.open("w", encoding="utf-8", newline="") if tmp else self.stdout._out
        stats = {"rows": 0}
        try:
            for chunk in export.export_chunks(kind=options["kind"], fmt=fmt, stats=stats):
                fh.write(chunk)
        except BaseException:
            if tmp:
                fh.close()
                tmp.unlink(missing_ok=True)
            raise
        if tmp:
            fh.close()
            tmp.replace(out_path)
            self.stderr.write(f"Wrote {stats['rows']} {options['kind']} row(s) to {out_path} ({fmt})")
