"""Catalog import and demo generation timings on a scratch database.

    .venv/bin/python bench/catalog_import.py --csv ../shared/data/fashion-products/styles.csv \\
        --images ../shared/data/fashion-products

Runs in a fresh temporary VAR_DIR (SQLite and MEDIA_ROOT inside it) unless DATABASE_URL is set
(then that database must be a scratch one whose name contains "bench"). Imports the CSV with the
styles.csv column names, imports it again (idempotent: nothing copied), then generates a
--demo-products demo catalog. Prints one JSON line: rows, first_import_s, rows_per_s,
reimport_s, images_copied, demo_products, demo_s. Progress lines go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a script named like the standard library's "queue": keep bench/ off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import io
import json
import os
import shutil
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STYLES_OPTIONS = [
    "--sku-column", "id", "--title-column", "productDisplayName",
    "--category-columns", "masterCategory,subCategory,articleType",
    "--colour-column", "baseColour", "--attribute-columns", "year", "--no-cold-start",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(ROOT.parent / "shared/data/fashion-products/styles.csv"))
    parser.add_argument("--images", default=None, help="default: the CSV's folder")
    parser.add_argument("--demo-products", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (database, copied images)")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="bench-catalog-")
    os.environ["VAR_DIR"] = scratch
    os.environ["MEDIA_ROOT"] = str(Path(scratch) / "media")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    url = os.environ.get("DATABASE_URL", "")
    if url and "bench" not in url.rsplit("/", 1)[-1]:
        sys.exit("DATABASE_URL must name a scratch database containing 'bench' (its catalog tables are filled)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    common = [args.csv, "--images", args.images or str(Path(args.csv).parent), "--workers", str(args.workers), *STYLES_OPTIONS]

    from curation.catalog.models import Product

    started = time.perf_counter()
    out = io.StringIO()
    call_command("import_catalog", *common, stdout=out)
    first = time.perf_counter() - started
    rows = Product.objects.count()
    copied = out.getvalue().split(" images copied")[0].rsplit(" ", 1)[-1]

    started = time.perf_counter()
    again = io.StringIO()
    call_command("import_catalog", *common, stdout=again)
    reimport = time.perf_counter() - started

    started = time.perf_counter()
    call_command("make_demo_catalog", "--products", str(args.demo_products), "--seed", "11", stdout=io.StringIO())
    demo = time.perf_counter() - started

    print(json.dumps({
        "rows": rows,
        "first_import_s": round(first, 2),
        "rows_per_s": round(rows / first, 1),
        "images_copied": int(copied),
        "reimport_s": round(reimport, 2),
        "reimport_unchanged": f"{rows} unchanged" in again.getvalue(),
        "demo_products": args.demo_products,
        "demo_s": round(demo, 2),
        "database": django.db.connection.vendor,
        "cpus": os.cpu_count(),
    }))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
