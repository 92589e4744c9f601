"""Catalog import from a retailer's CSV, with its own column names.

Two passes, so that a rejected file writes nothing: first every row is parsed and its image
validated (no writes); then, in one transaction, images are copied (content-addressed, only when
the sha256 changed) and products upserted. If anything fails in the second pass the transaction
rolls back and the image files this run wrote are deleted.

Rows are numbered as in a spreadsheet: the header is row 1, the first product row 2.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from curation.catalog.models import Category, Product
from curation.catalog.services import (
    CATEGORY_SEPARATOR,
    ImageValidationError,
    NewProduct,
    ValidatedImage,
    category_get_or_create_path,
    image_store,
    image_validate,
    product_upsert,
    products_create_bulk,
)

Progress = Callable[[str, int, int], None]

# Logical fields the importer fills and the column each reads when no mapping says otherwise.
REQUIRED_FIELDS = ("sku", "title", "category", "image")
OPTIONAL_FIELDS = ("brand", "gender", "colour", "season", "usage", "product_model", "in_stock")
MAPPING_KEYS = REQUIRED_FIELDS + OPTIONAL_FIELDS + ("attributes",)

_TRUE = {"1", "true", "yes", "y", "in stock", "in_stock"}
_FALSE = {"0", "false", "no", "n", "out of stock", "out_of_stock"}

# Colour words removed from a title to name the product model that colour variants share.
# Multi-word names first (longest match wins); shades like "light"/"dark" only go with a colour.
COLOUR_WORDS = (
    "navy blue", "sky blue", "royal blue", "off white", "grey melange", "rose gold", "lime green",
    "sea green", "olive green", "coffee brown", "mushroom brown", "fluorescent green", "turquoise blue",
    "black", "white", "grey", "gray", "red", "blue", "green", "yellow", "orange", "purple", "pink",
    "brown", "beige", "cream", "navy", "maroon", "burgundy", "olive", "khaki", "teal", "turquoise",
    "magenta", "lavender", "violet", "mauve", "peach", "coral", "rust", "mustard", "charcoal", "tan",
    "gold", "golden", "silver", "bronze", "copper", "nude", "skin", "taupe", "multi", "multicolour",
    "multicolor", "multicoloured", "metallic", "fuchsia", "indigo", "ivory", "camel", "wine",
)
_SHADE = r"(?:(?:light|dark|bright|pale|deep)\s+)?"


@dataclass
class ColumnMapping:
    sku: str = "sku"
    title: str = "title"
    category: list[str] = field(default_factory=lambda: ["category"])
    image: str = "image"
    brand: str | None = "brand"
    gender: str | None = "gender"
    colour: str | None = "colour"
    season: str | None = "season"
    usage: str | None = "usage"
    product_model: str | None = "product_model"
    in_stock: str | None = "in_stock"
    attributes: list[str] = field(default_factory=list)
    # Optional fields named explicitly (option or mapping file): their column must then exist.
    explicit: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, *, mapping_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> "ColumnMapping":
        """Defaults, then the JSON mapping file, then command-line overrides (None = not given)."""
        merged: dict[str, Any] = {}
        if mapping_file:
            path = Path(mapping_file)
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError as exc:
                raise CatalogImportError(f"mapping file not found: {path}") from exc
            except json.JSONDecodeError as exc:
                raise CatalogImportError(f"mapping file {path}: not valid JSON ({exc})") from exc
            if not isinstance(loaded, dict):
                raise CatalogImportError(f"mapping file {path}: expected a JSON object like {{\"sku\": \"id\"}}")
            unknown = set(loaded) - set(MAPPING_KEYS)
            if unknown:
                raise CatalogImportError(
                    f"mapping file {path}: unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(MAPPING_KEYS)}"
                )
            merged.update(loaded)
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        mapping = cls()
        for key, value in merged.items():
            if key in ("category", "attributes"):
                if isinstance(value, str):
                    value = [part.strip() for part in value.split(",") if part.strip()]
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise CatalogImportError(f"mapping for {key!r} must be a list of column names")
                if key == "category" and not value:
                    raise CatalogImportError("mapping for 'category' names no column")
            elif not isinstance(value, str) or not value.strip():
                raise CatalogImportError(f"mapping for {key!r} must be a column name")
            setattr(mapping, key, value)
            if key in OPTIONAL_FIELDS or key == "attributes":
                mapping.explicit.add(key)
        return mapping

    def required_columns(self) -> list[tuple[str, str]]:
        """(logical field, column) pairs that must be in the header."""
        pairs = [("sku", self.sku), ("title", self.title), ("image", self.image)]
        pairs += [("category", column) for column in self.category]
        pairs += [(name, getattr(self, name)) for name in OPTIONAL_FIELDS if name in self.explicit]
        pairs += [("attributes", column) for column in self.attributes]
        return pairs


class CatalogImportError(Exception):
    """The whole file is refused; ``errors`` holds one message per bad row when rows are to blame."""

    def __init__(self, message: str, errors: list["RowError"] | None = None):
        super().__init__(message)
        self.errors = errors or []


@dataclass
class RowError:
    row: int
    sku: str
    field: str
    message: str
    values: dict[str, str] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        sku = f" (sku {self.sku})" if self.sku else ""
        return f"row {self.row}{sku}: {self.field}: {self.message}"


@dataclass
class RowPlan:
    row: int
    sku: str
    title: str
    category_names: list[str]
    image_path: Path
    fields: dict[str, Any]
    values: dict[str, str] = field(repr=False, default_factory=dict)
    image_sha256: str = ""
    image_width: int = 0
    image_height: int = 0
    image_format: str = ""
    image_extension: str = ""


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    images_copied: int = 0
    kept_verified: int = 0
    categories_created: int = 0
    bad_rows: list[RowError] = field(default_factory=list)
    report_path: Path | None = None
    # New products and products whose image changed: what the discovery cold start should embed.
    changed_product_ids: list[int] = field(default_factory=list)
    cold_start: str = ""

    def summary(self) -> str:
        text = (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.images_copied} images copied, {self.categories_created} categories created, "
            f"{len(self.bad_rows)} bad rows skipped"
        )
        if self.kept_verified:
            text += f", {self.kept_verified} kept a reviewer-verified category or colour"
        return text


def product_model_from_title(title: str, colour: str = "") -> str:
    """Name the model that colour variants share: the title without colour words, lower-cased.

    "Reid & Taylor Men Check Purple Shirts" -> "reid & taylor men check shirts". Only whole words
    go ("Redtape" and "Tank" keep their letters); when nothing would be left the title is kept.
    """
    words = sorted({*COLOUR_WORDS, *([colour.strip().lower()] if colour.strip() else [])}, key=len, reverse=True)
    pattern = r"\b" + _SHADE + "(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    stripped = re.sub(pattern, " ", title.lower())
    stripped = re.sub(r"\s+", " ", stripped).strip(" -,/")
    result = stripped or re.sub(r"\s+", " ", title.lower()).strip()
    return result[: Product._meta.get_field("product_model").max_length]


def _max_length(name: str) -> int:
    return Product._meta.get_field(name).max_length


def _parse_row(
    row_number: int,
    raw: dict[str, str],
    mapping: ColumnMapping,
    images_dir: Path,
    derive_product_model: bool,
) -> tuple[RowPlan | None, list[RowError]]:
    values = {k: (v if v is not None else "") for k, v in raw.items() if k is not None}
    sku = (raw.get(mapping.sku) or "").strip()
    errors: list[RowError] = []

    def bad(field_name: str, message: str) -> None:
        errors.append(RowError(row_number, sku, field_name, message, values))

    if None in raw:
        bad("row", f"has more fields than the header ({len(raw) - 1 + len(raw[None])} instead of {len(raw) - 1})")
        return None, errors
    missing_fields = [k for k, v in raw.items() if v is None]
    if missing_fields:
        bad("row", f"has fewer fields than the header (missing {', '.join(missing_fields)})")
        return None, errors

    if not sku:
        bad("sku", f"column {mapping.sku!r} is empty")
    elif len(sku) > _max_length("sku"):
        bad("sku", f"longer than {_max_length('sku')} characters")
    title = raw[mapping.title].strip()
    if not title:
        bad("title", f"column {mapping.title!r} is empty")
    elif len(title) > _max_length("title"):
        bad("title", f"longer than {_max_length('title')} characters")

    if len(mapping.category) == 1 and ">" in raw[mapping.category[0]]:
        category_names = [part.strip() for part in raw[mapping.category[0]].split(">")]
        level_columns = [f"{mapping.category[0]} level {i + 1}" for i in range(len(category_names))]
    else:
        category_names = [raw[column].strip() for column in mapping.category]
        level_columns = list(mapping.category)
    for level, (name, column) in enumerate(zip(category_names, level_columns)):
        if not name:
            bad("category", f"category level {level + 1} ({column}) is empty")
        elif ">" in name:
            bad("category", f"category level {level + 1} ({column}) contains '>', which separates levels")
        elif len(name) > 100:
            bad("category", f"category level {level + 1} ({column}) is longer than 100 characters")

    fields: dict[str, Any] = {}
    for name in ("brand", "gender", "colour", "season", "usage", "product_model"):
        column = getattr(mapping, name)
        if column and column in raw:
            value = raw[column].strip()
            if len(value) > _max_length(name):
                bad(name, f"column {column!r} is longer than {_max_length(name)} characters")
            fields[name] = value
    if mapping.in_stock and mapping.in_stock in raw:
        flag = raw[mapping.in_stock].strip().lower()
        if flag == "" or flag in _TRUE:
            fields["in_stock"] = True
        elif flag in _FALSE:
            fields["in_stock"] = False
        else:
            bad("in_stock", f"column {mapping.in_stock!r} is {raw[mapping.in_stock]!r}, expected yes/no, true/false or 1/0")
    if not fields.get("product_model") and derive_product_model and title:
        fields["product_model"] = product_model_from_title(title, fields.get("colour", ""))
    fields["attributes"] = {column: raw[column].strip() for column in mapping.attributes if raw[column].strip()}

    image_value = raw[mapping.image].strip()
    image_path = Path(image_value)
    if not image_value:
        bad("image", f"column {mapping.image!r} is empty")
    elif not image_path.is_absolute():
        image_path = images_dir / image_path
    if errors:
        return None, errors
    return RowPlan(row_number, sku, title, category_names, image_path, fields, values), []


def _validate_image(plan: RowPlan) -> RowError | None:
    try:
        checked = image_validate(plan.image_path)
    except ImageValidationError as exc:
        return RowError(plan.row, plan.sku, "image", f"{plan.image_path}: {exc}", plan.values)
    plan.image_sha256 = checked.sha256
    plan.image_width, plan.image_height = checked.width, checked.height
    plan.image_format, plan.image_extension = checked.format, checked.extension
    return None


def _read_csv(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not csv_path.is_file():
        raise CatalogImportError(f"CSV file not found: {csv_path}")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            try:
                header = reader.fieldnames
                rows = list(reader)
            except csv.Error as exc:
                raise CatalogImportError(f"{csv_path}: line {reader.line_num}: not valid CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise CatalogImportError(f"{csv_path}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    if not header:
        raise CatalogImportError(f"{csv_path}: the file is empty (no header row)")
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise CatalogImportError(f"{csv_path}: column {column!r} appears twice in the header")
        seen.add(column)
    return list(header), rows


def default_report_path(csv_path: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(settings.VAR_DIR) / "import-reports" / f"{csv_path.stem}-{stamp}-bad-rows.csv"


def _write_report(path: Path, header: list[str], errors: list[RowError]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "field", "error", *header])
        for err in sorted(errors, key=lambda e: e.row):
            writer.writerow([err.row, err.field, err.message, *[err.values.get(c, "") for c in header]])


def _cold_start(product_ids: list[int]) -> str:
    """Tell discovery about new or re-imaged products, when the discovery app offers the hook.

    The import is already committed; a failing hook is reported, not fatal (the next full
    re-embed picks the products up anyway).
    """
    if not product_ids:
        return ""
    try:
        from curation.discovery import services as discovery_services
    except ImportError:
        return "discovery cold start: not available"
    hook = getattr(discovery_services, "products_cold_start", None)
    if hook is None:
        return "discovery cold start: not available"
    try:
        outcome = hook(product_ids=product_ids)
    except Exception as exc:  # noqa: BLE001 - any failure of an optional follow-up is reported
        return f"discovery cold start failed: {type(exc).__name__}: {exc}"
    return f"discovery cold start: {outcome}" if outcome is not None else f"discovery cold start: {len(product_ids)} products"


def catalog_import_csv(
    *,
    csv_path: str | Path,
    images_dir: str | Path | None = None,
    mapping: ColumnMapping | None = None,
    skip_bad_rows: bool = False,
    categories_must_exist: bool = False,
    report_path: str | Path | None = None,
    derive_product_model: bool = True,
    cold_start: bool = True,
    workers: int = 2,
    progress: Progress | None = None,
    user=None,
) -> ImportResult:
    """Import (create or update by sku) every product of a CSV file; see the module docstring.

    Raises CatalogImportError, with nothing written, when a column is missing or (without
    ``skip_bad_rows``) when any row is bad. With ``skip_bad_rows`` good rows are imported and the
    bad ones written to a report CSV (``report_path`` or var/import-reports/...).
    """
    csv_path = Path(csv_path)
    images_dir = Path(images_dir) if images_dir else csv_path.parent
    mapping = mapping or ColumnMapping()
    progress = progress or (lambda phase, done, total: None)
    header, raw_rows = _read_csv(csv_path)

    missing = [(name, column) for name, column in mapping.required_columns() if column not in header]
    if missing:
        names = ", ".join(f"{column!r} (for {name})" for name, column in missing)
        raise CatalogImportError(f"{csv_path}: missing column {names}; the file has columns: {', '.join(header)}")

    result = ImportResult(rows=len(raw_rows))
    errors: list[RowError] = []
    plans: list[RowPlan] = []
    for index, raw in enumerate(raw_rows):
        plan, row_errors = _parse_row(index + 2, raw, mapping, images_dir, derive_product_model)
        errors += row_errors
        if plan:
            plans.append(plan)

    # A sku twice in one file is ambiguous: every row carrying it is refused, not just the later one.
    rows_by_sku: dict[str, list[int]] = {}
    for raw_index, raw in enumerate(raw_rows):
        sku = (raw.get(mapping.sku) or "").strip()
        if sku:
            rows_by_sku.setdefault(sku, []).append(raw_index + 2)
    duplicated = {sku: rows for sku, rows in rows_by_sku.items() if len(rows) > 1}
    if duplicated:
        kept = []
        for plan in plans:
            if plan.sku in duplicated:
                others = ", ".join(str(r) for r in duplicated[plan.sku] if r != plan.row)
                errors.append(RowError(plan.row, plan.sku, "sku", f"duplicate sku, also on row {others}", plan.values))
            else:
                kept.append(plan)
        plans = kept

    if categories_must_exist:
        known = set(Category.objects.values_list("path", flat=True))
        kept = []
        for plan in plans:
            path = CATEGORY_SEPARATOR.join(plan.category_names)
            if path in known:
                kept.append(plan)
            else:
                errors.append(RowError(plan.row, plan.sku, "category", f"unknown category {path!r} (--categories-must-exist)", plan.values))
        plans = kept

    # Decoding every image is the slow part; PIL releases the GIL while decoding, so threads help.
    total = len(plans)
    progress("checking images", 0, total)
    good: list[RowPlan] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (plan, image_error) in enumerate(zip(plans, pool.map(_validate_image, plans)), start=1):
            if image_error:
                errors.append(image_error)
            else:
                good.append(plan)
            progress("checking images", done, total)

    errors.sort(key=lambda e: (e.row, e.field))
    if errors and not skip_bad_rows:
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise CatalogImportError(
            f"{csv_path}: {len(errors)} problem(s) in {len({e.row for e in errors})} row(s); nothing was imported "
            f"(fix them, or use --skip-bad-rows to import the good rows):\n{shown}{more}",
            errors,
        )
    result.bad_rows = errors

    written: list[str] = []
    try:
        with transaction.atomic():
            _write_rows(good, result, written, csv_path, progress, user, workers)
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise

    if errors:
        result.report_path = Path(report_path) if report_path else default_report_path(csv_path)
        _write_report(result.report_path, header, errors)
    if cold_start:
        result.cold_start = _cold_start(result.changed_product_ids)
    return result


def _copy_images(plans: list[RowPlan], existing: dict[str, Product], written: list[str], result: ImportResult, workers: int, progress: Progress) -> dict[str, str]:
    """Copy the images that are new or changed into storage; returns storage name by sha256.

    Each distinct content is copied once (content-addressed names). Files run in threads: the
    copy is I/O-bound and is the slowest part of a first import.
    """
    todo: dict[str, RowPlan] = {}
    for plan in plans:
        current = existing.get(plan.sku)
        unchanged = (
            current is not None
            and current.image_sha256 == plan.image_sha256
            and current.image
            and default_storage.exists(current.image.name)  # a file lost from MEDIA_ROOT is restored
        )
        if not unchanged:
            todo.setdefault(plan.image_sha256, plan)

    def copy(plan: RowPlan) -> tuple[str, str, bool]:
        data = plan.image_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != plan.image_sha256:
            raise CatalogImportError(f"row {plan.row}: image {plan.image_path} changed while importing; run the import again")
        name, was_written = image_store(data=data, sha256=plan.image_sha256, extension=plan.image_extension)
        return plan.image_sha256, name, was_written

    names: dict[str, str] = {}
    total = len(todo)
    progress("copying images", 0, total)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(copy, plan) for plan in todo.values()]
        failure: BaseException | None = None
        for done, future in enumerate(futures, start=1):
            try:
                sha, name, was_written = future.result()
            except BaseException as exc:  # keep collecting what others wrote, so all of it is removed
                failure = failure or exc
                continue
            names[sha] = name
            if was_written:
                written.append(name)
                result.images_copied += 1
            progress("copying images", done, total)
        if failure:
            raise failure
    return names


def _write_rows(plans: list[RowPlan], result: ImportResult, written: list[str], csv_path: Path, progress: Progress, user, workers: int) -> None:
    existing: dict[str, Product] = {}
    skus = [plan.sku for plan in plans]
    for start in range(0, len(skus), 500):
        for product in Product.objects.filter(sku__in=skus[start : start + 500]):
            existing[product.sku] = product
    copied = _copy_images(plans, existing, written, result, workers, progress)
    categories: dict[tuple[str, ...], Category] = {}
    category_count = Category.objects.count()
    reason = f"import {csv_path.name}"[:300]
    total = len(plans)
    progress("writing products", 0, total)
    new_products: list[NewProduct] = []
    for done, plan in enumerate(plans, start=1):
        key = tuple(plan.category_names)
        if key not in categories:
            categories[key] = category_get_or_create_path(names=list(key))
        current = existing.get(plan.sku)
        image_name = copied.get(plan.image_sha256) or (current.image.name if current else "")
        facts = ValidatedImage(plan.image_sha256, plan.image_width, plan.image_height, plan.image_format, 0, b"")
        if current is None:
            # New products go in batches; progress counts them when their batch is written.
            new_products.append(NewProduct(plan.sku, plan.title, categories[key], image_name, facts, plan.fields))
            if len(new_products) >= 500:
                _create_new(new_products, result, user, reason)
                progress("writing products", done, total)
            continue
        outcome = product_upsert(
            sku=plan.sku,
            title=plan.title,
            category=categories[key],
            image_name=image_name,
            image=facts,
            fields=plan.fields,
            user=user,
            reason=reason,
            existing=current,
        )
        if outcome.changed_fields:
            result.updated += 1
            if "image_sha256" in outcome.changed_fields:
                result.changed_product_ids.append(outcome.product.pk)
        else:
            result.unchanged += 1
        if outcome.category_kept_verified:
            result.kept_verified += 1
        progress("writing products", done, total)
    _create_new(new_products, result, user, reason)
    progress("writing products", total, total)
    result.categories_created = Category.objects.count() - category_count


def _create_new(new_products: list[NewProduct], result: ImportResult, user, reason: str) -> None:
    if not new_products:
        return
    created = products_create_bulk(items=list(new_products), user=user, reason=reason)
    result.created += len(created)
    result.changed_product_ids += [p.pk for p in created]
    new_products.clear()
