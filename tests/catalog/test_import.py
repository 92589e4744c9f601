"""import_catalog: a styles.csv-like file imports with its own column names; re-import is
idempotent; every kind of bad input is named with its row and leaves nothing half-written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from curation.catalog import importing
from curation.catalog.importing import product_model_from_title
from curation.catalog.models import Category, CategoryChange, Product
from tests.catalog.conftest import STYLES_HEADER, STYLES_OPTIONS, media_files, png_header_only, styles_rows
from tests.factories import make_image_bytes

pytestmark = pytest.mark.django_db


def run_import(csv_path: Path, *extra: str, images: Path | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_catalog", str(csv_path), "--images", str(images or csv_path.parent), *STYLES_OPTIONS,
        "--no-cold-start", *extra, stdout=out, stderr=err,
    )
    return out.getvalue(), err.getvalue()


def assert_nothing_written(settings):
    assert Product.objects.count() == 0
    assert Category.objects.count() == 0
    assert CategoryChange.objects.count() == 0
    assert media_files(settings) == []


def import_error(csv_path: Path, *extra: str) -> str:
    with pytest.raises(CommandError) as info:
        run_import(csv_path, *extra)
    return str(info.value)


# --- the good path -----------------------------------------------------------------------------


def test_styles_layout_imports_with_its_own_names(catalog_files, settings):
    out, err = run_import(catalog_files.write(styles_rows()))
    assert "3 created" in out
    shirt = Product.objects.get(sku="101")
    assert shirt.title == "Reid & Taylor Men Check Purple Shirts"
    assert shirt.category.path == "Apparel > Topwear > Shirts"
    assert shirt.category.level == 2 and shirt.category.parent.path == "Apparel > Topwear"
    assert (shirt.colour, shirt.gender, shirt.season, shirt.usage) == ("Purple", "Men", "Fall", "Formal")
    assert shirt.attributes == {"year": "2011"}
    assert (shirt.image_width, shirt.image_height) == (48, 64)
    stored = Path(settings.MEDIA_ROOT) / shirt.image.name
    assert stored.read_bytes() == (catalog_files.root / "images/101.jpg").read_bytes()
    assert shirt.image_sha256 in shirt.image.name
    # Colour variants of one model share product_model.
    assert shirt.product_model == Product.objects.get(sku="102").product_model == "reid & taylor men check shirts"
    # The first category assignment is audited too.
    change = CategoryChange.objects.get(product=shirt)
    assert change.old_category is None and change.new_category == shirt.category and "styles.csv" in change.reason
    assert "checking images" in err and "/s" in err


def test_mapping_file_and_absolute_image_paths(catalog_files, tmp_path):
    rows = styles_rows()
    elsewhere = tmp_path / "elsewhere" / "x.jpg"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(make_image_bytes())
    rows[0]["image"] = str(elsewhere)
    csv_path = catalog_files.write(rows)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({
        "sku": "id", "title": "productDisplayName", "category": ["masterCategory", "subCategory", "articleType"],
        "colour": "baseColour", "attributes": ["year", "usage"],
    }))
    out = io.StringIO()
    call_command("import_catalog", str(csv_path), "--mapping", str(mapping), "--no-cold-start", stdout=out, stderr=io.StringIO())
    assert Product.objects.count() == 3
    assert Product.objects.get(sku="102").attributes == {"year": "2012", "usage": "Formal"}


def test_single_category_column_with_separators(catalog_files):
    header = ["sku", "title", "category", "image", "in_stock", "product_model"]
    rows = [
        {"sku": "A1", "title": "Blue Tee", "category": "Apparel > Topwear > Tshirts", "image": "a1.jpg", "in_stock": "no", "product_model": "tee-1"},
        {"sku": "A2", "title": "Red Tee", "category": "Apparel > Topwear > Tshirts", "image": "a2.jpg", "in_stock": "yes", "product_model": "tee-1"},
    ]
    csv_path = catalog_files.write(rows, header=header)
    call_command("import_catalog", str(csv_path), "--no-cold-start", stdout=io.StringIO(), stderr=io.StringIO())
    a1 = Product.objects.get(sku="A1")
    assert a1.category.path == "Apparel > Topwear > Tshirts" and a1.in_stock is False and a1.product_model == "tee-1"
    assert Product.objects.get(sku="A2").in_stock is True


def test_reimport_is_idempotent_and_updates_by_sku(catalog_files, settings):
    csv_path = catalog_files.write(styles_rows())
    run_import(csv_path)
    files_before = media_files(settings)
    out, _ = run_import(csv_path)
    assert "0 created, 0 updated, 3 unchanged, 0 images copied" in out
    assert media_files(settings) == files_before
    assert CategoryChange.objects.count() == 3

    rows = styles_rows()
    rows[0]["productDisplayName"] = "Reid & Taylor Men Check Purple Shirt (new)"
    rows[1]["articleType"] = "Formal Shirts"
    (catalog_files.root / "images/103.jpg").write_bytes(make_image_bytes(color=(0, 200, 0), size=(40, 40)))
    catalog_files.write(rows, images=False)
    out, _ = run_import(csv_path)
    assert "0 created, 3 updated, 0 unchanged, 1 images copied" in out
    assert Product.objects.get(sku="101").title.endswith("(new)")
    moved = Product.objects.get(sku="102")
    assert moved.category.path == "Apparel > Topwear > Formal Shirts"
    change = moved.category_changes.first()
    assert change.old_category.path == "Apparel > Topwear > Shirts" and change.new_category == moved.category
    slipper = Product.objects.get(sku="103")
    assert (slipper.image_width, slipper.image_height) == (40, 40)
    assert (Path(settings.MEDIA_ROOT) / slipper.image.name).read_bytes() == (catalog_files.root / "images/103.jpg").read_bytes()


def test_reimport_keeps_a_reviewer_verified_category(catalog_files, make_user):
    from curation.catalog.services import category_get_or_create_path, product_category_change

    csv_path = catalog_files.write(styles_rows())
    run_import(csv_path)
    shirt = Product.objects.get(sku="101")
    fixed = category_get_or_create_path(names="Apparel > Topwear > Formal Shirts")
    product_category_change(product=shirt, new_category=fixed, user=make_user("merchandiser"), reason="review")
    out, _ = run_import(csv_path)
    assert "kept a reviewer-verified category" in out
    assert Product.objects.get(sku="101").category == fixed


def test_cold_start_hook_gets_new_product_ids(catalog_files, monkeypatch):
    from curation.discovery import services as discovery_services

    calls = []
    monkeypatch.setattr(discovery_services, "products_cold_start", lambda *, product_ids: calls.append(list(product_ids)), raising=False)
    csv_path = catalog_files.write(styles_rows())
    out = io.StringIO()
    call_command("import_catalog", str(csv_path), *STYLES_OPTIONS, stdout=out, stderr=io.StringIO())
    assert calls == [sorted(Product.objects.values_list("pk", flat=True))]
    call_command("import_catalog", str(csv_path), *STYLES_OPTIONS, stdout=io.StringIO(), stderr=io.StringIO())
    assert len(calls) == 1  # nothing new, nothing to embed


def test_product_model_from_title_removes_whole_colour_words_only():
    assert product_model_from_title("Reid & Taylor Men Check Navy Blue Shirts", "Navy Blue") == "reid & taylor men check shirts"
    assert product_model_from_title("Redtape Men Tan Tank Top", "Tan") == "redtape men tank top"
    assert product_model_from_title("Puma Women Light Blue Sneakers", "Blue") == "puma women sneakers"
    assert product_model_from_title("Black", "Black") == "black"  # nothing left: keep the title


# --- bad input: the whole file is refused, nothing written -------------------------------------


def test_missing_column(catalog_files, settings):
    header = [c for c in STYLES_HEADER if c != "articleType"]
    message = import_error(catalog_files.write(styles_rows(), header=header))
    assert "missing column 'articleType' (for category)" in message and "productDisplayName" in message
    assert_nothing_written(settings)


def test_explicit_optional_column_must_exist(catalog_files, settings):
    message = import_error(catalog_files.write(styles_rows()), "--brand-column", "brandName")
    assert "missing column 'brandName' (for brand)" in message
    assert_nothing_written(settings)


@pytest.mark.parametrize(
    "breaks, expected",
    [
        (lambda row, root: row.update(subCategory=""), "row 3 (sku 102): category: category level 2 (subCategory) is empty"),
        (lambda row, root: row.update(image="images/missing.jpg"), "row 3 (sku 102): image: "),
        (lambda row, root: (root / "images/102.jpg").write_text("not a picture"), "not an image"),
        (lambda row, root: (root / "images/102.jpg").write_bytes(make_image_bytes(size=(200, 200))[:400]), "truncated"),
        (lambda row, root: (root / "images/102.jpg").write_bytes(png_header_only(100_000, 100_000)), "decompression bomb"),
        (lambda row, root: row.update(id="101"), "row 2 (sku 101): sku: duplicate sku, also on row 3"),
        (lambda row, root: row.update(productDisplayName=""), "row 3 (sku 102): title: column 'productDisplayName' is empty"),
    ],
    ids=["empty-level", "missing-image", "non-image", "corrupt-image", "bomb", "duplicate-sku", "empty-title"],
)
def test_bad_row_rejects_the_whole_file(catalog_files, settings, breaks, expected):
    rows = styles_rows()
    catalog_files.write(rows)  # writes good images first
    breaks(rows[1], catalog_files.root)
    csv_path = catalog_files.write(rows, images=False)
    message = import_error(csv_path)
    assert expected in message
    assert "nothing was imported" in message and "row 3" in message
    assert_nothing_written(settings)


def test_missing_image_message_names_the_path(catalog_files, settings):
    rows = styles_rows()
    rows[2]["image"] = "images/gone.jpg"
    catalog_files.write(rows[:2])
    message = import_error(catalog_files.write(rows, images=False))
    assert "row 4 (sku 103): image:" in message and "gone.jpg" in message and "not found" in message
    assert_nothing_written(settings)


def test_oversized_image(catalog_files, settings):
    csv_path = catalog_files.write(styles_rows())
    (catalog_files.root / "images/103.jpg").write_bytes(make_image_bytes(size=(400, 400)))
    settings.MAX_IMAGE_BYTES = max(len((catalog_files.root / f"images/{n}.jpg").read_bytes()) for n in (101, 102))
    message = import_error(csv_path)
    assert "row 4 (sku 103): image:" in message and "too large" in message
    assert_nothing_written(settings)


def test_unknown_category_when_categories_must_exist(catalog_files, settings):
    from curation.catalog.services import category_get_or_create_path

    category_get_or_create_path(names="Apparel > Topwear > Shirts")
    message = import_error(catalog_files.write(styles_rows()), "--categories-must-exist")
    assert "row 4 (sku 103): category: unknown category 'Footwear > Flip Flops > Flip Flops'" in message
    assert Product.objects.count() == 0 and Category.objects.count() == 3
    assert media_files(settings) == []


def test_failure_while_writing_rolls_back_rows_and_copied_files(catalog_files, settings, monkeypatch):
    real_create = importing.products_create_bulk

    def create_then_fail(**kwargs):
        real_create(**kwargs)
        assert Product.objects.count() == 3 and len(media_files(settings)) == 3  # written, not yet committed
        raise RuntimeError("database went away")

    monkeypatch.setattr(importing, "products_create_bulk", create_then_fail)
    with pytest.raises(RuntimeError):
        run_import(catalog_files.write(styles_rows()))
    assert_nothing_written(settings)


def test_failed_reimport_keeps_the_previous_rows_and_files(catalog_files, settings, monkeypatch):
    csv_path = catalog_files.write(styles_rows())
    run_import(csv_path)
    before = {p.sku: (p.title, p.image.name, p.image_sha256) for p in Product.objects.all()}
    files_before = media_files(settings)
    (catalog_files.root / "images/101.jpg").write_bytes(make_image_bytes(color=(1, 2, 3), size=(30, 30)))
    rows = styles_rows()
    rows[2]["productDisplayName"] = "Changed"
    catalog_files.write(rows, images=False)

    def failing_upsert(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(importing, "product_upsert", failing_upsert)
    with pytest.raises(RuntimeError):
        run_import(csv_path)
    assert {p.sku: (p.title, p.image.name, p.image_sha256) for p in Product.objects.all()} == before
    assert media_files(settings) == files_before  # the new picture of 101 was removed again


def test_ragged_rows_and_non_utf8(catalog_files, settings):
    csv_path = catalog_files.write(styles_rows())
    text = csv_path.read_text().splitlines()
    text[2] = text[2] + ",extra"
    csv_path.write_text("\n".join(text) + "\n")
    assert "row 3 (sku 102): row: has more fields than the header" in import_error(csv_path)
    csv_path.write_bytes("id,productDisplayName\n1,Caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in import_error(csv_path)
    assert_nothing_written(settings)


# --- bad input with --skip-bad-rows: good rows in, a report of the bad ones ----------------------


def test_skip_bad_rows_imports_good_rows_and_writes_a_report(catalog_files, settings, tmp_path):
    rows = styles_rows()
    rows.append({**rows[0], "id": "104", "image": "images/104.jpg"})
    catalog_files.write(rows)
    (catalog_files.root / "images/102.jpg").write_text("garbage")
    rows[2]["masterCategory"] = ""
    csv_path = catalog_files.write(rows, images=False)
    report = tmp_path / "report.csv"
    out, _ = run_import(csv_path, "--skip-bad-rows", "--report", str(report))
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["101", "104"]
    assert "2 bad row(s), report written to" in out and str(report) in out
    with report.open() as fh:
        reported = list(csv.DictReader(fh))
    assert [(r["row"], r["field"], r["id"]) for r in reported] == [("3", "image", "102"), ("4", "category", "103")]
    assert "not an image" in reported[0]["error"]
    assert reported[1]["productDisplayName"] == "Fila Men Black Slippers"  # the row as it was, to fix and re-import
    # Only the good rows' images were copied.
    assert {f.stem for f in media_files(settings)} == set(Product.objects.values_list("image_sha256", flat=True))
    assert len(media_files(settings)) == 2


def test_skip_bad_rows_default_report_goes_to_var(catalog_files, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    rows = styles_rows()
    rows[1]["id"] = "101"
    out, _ = run_import(catalog_files.write(rows), "--skip-bad-rows")
    reports = list((tmp_path / "var" / "import-reports").glob("styles-*-bad-rows.csv"))
    assert len(reports) == 1 and str(reports[0]) in out
    assert list(Product.objects.values_list("sku", flat=True)) == ["103"]
