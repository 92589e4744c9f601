"""Catalog verbs: categories, products, audited category/attribute changes, image validation.

Every write to catalog rows goes through a function here (the import and the demo generator
included), so the audit trail and the image rules hold whoever the caller is.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from curation.catalog.models import AttributeChange, Category, CategoryChange, Product

CATEGORY_SEPARATOR = " > "

# Formats a browser shows and the ML loaders read; anything else PIL might open (PSD, ICO, EPS...)
# is refused so that a product image always renders in the pages.
ALLOWED_IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}

# Product fields an import or a caller may set with product_upsert (besides sku, title, category).
# product_upsert's default for ``existing``: fetch the product by sku.
LOOKUP = object()

PRODUCT_PLAIN_FIELDS = ("brand", "gender", "colour", "season", "usage", "product_model", "attributes", "in_stock")


# --- Images -----------------------------------------------------------------------------------


class ImageValidationError(ValueError):
    """The file is not an acceptable product image; the message says why, in words."""


@dataclass(frozen=True)
class ValidatedImage:
    """An image that passed image_validate: real, decodable, within the size and pixel limits."""

    sha256: str
    width: int
    height: int
    format: str  # PIL's name: JPEG, PNG, WEBP, GIF, BMP
    size_bytes: int
    data: bytes = field(repr=False, compare=False)

    @property
    def extension(self) -> str:
        return ALLOWED_IMAGE_FORMATS[self.format]

    def open(self) -> Image.Image:
        """A fresh PIL image of the validated bytes (already known to decode)."""
        return Image.open(io.BytesIO(self.data))


def _read_limited(fileobj_or_path: str | os.PathLike | IO[bytes], limit: int) -> bytes:
    if isinstance(fileobj_or_path, (str, os.PathLike)):
        path = Path(fileobj_or_path)
        if not path.exists():
            raise ImageValidationError(f"image file not found: {path}")
        if not path.is_file():
            raise ImageValidationError(f"image path is not a file: {path}")
        size = path.stat().st_size
        if size > limit:
            raise ImageValidationError(f"image is too large: {size:,} bytes, the limit is {limit:,} (MAX_IMAGE_BYTES)")
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    else:
        if hasattr(fileobj_or_path, "seek"):
            try:
                fileobj_or_path.seek(0)
            except (OSError, ValueError):
                pass  # a stream that cannot seek is read from where it is
        data = fileobj_or_path.read(limit + 1)
    if len(data) > limit:
        raise ImageValidationError(f"image is too large: more than {limit:,} bytes (MAX_IMAGE_BYTES)")
    if not data:
        raise ImageValidationError("image file is empty")
    return data


def image_validate(fileobj_or_path: str | os.PathLike | IO[bytes]) -> ValidatedImage:
    """Check that a file (path or binary file object) is a real, complete, reasonably sized image.

    Refuses, with ImageValidationError: a missing or empty file; more than MAX_IMAGE_BYTES; content
    PIL cannot identify (a text file named .jpg); a format outside ALLOWED_IMAGE_FORMATS; more
    pixels than MAX_IMAGE_PIXELS, judged from the header *before* decoding, and PIL's own
    decompression-bomb warning/error; a corrupt or truncated file (verify() and a full load()).
    Returns the bytes with their sha256 and pixel size, so callers store exactly what was checked.
    """
    max_bytes = settings.MAX_IMAGE_BYTES
    max_pixels = settings.MAX_IMAGE_PIXELS
    data = _read_limited(fileobj_or_path, max_bytes)
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; a warning is a refusal here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if fmt not in ALLOWED_IMAGE_FORMATS:
                    raise ImageValidationError(
                        f"unsupported image format {fmt}; allowed: {', '.join(sorted(ALLOWED_IMAGE_FORMATS))}"
                    )
                if width <= 0 or height <= 0:
                    raise ImageValidationError(f"image has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageValidationError(
                        f"image has too many pixels ({width}x{height} = {width * height:,}, limit "
                        f"{max_pixels:,} MAX_IMAGE_PIXELS): refused as a possible decompression bomb"
                    )
                probe.verify()
            # verify() leaves the image unusable; decoding every pixel catches truncated data.
            with Image.open(io.BytesIO(data)) as full:
                full.load()
        except ImageValidationError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageValidationError(f"refused as a decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageValidationError("not an image (the content is not a format PIL recognises)") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # PIL reports truncated or corrupt data as OSError, SyntaxError or ValueError.
            raise ImageValidationError(f"corrupt or truncated image: {exc}") from exc
    return ValidatedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=fmt,
        size_bytes=len(data),
        data=data,
    )


def image_storage_name(*, sha256: str, extension: str) -> str:
    """Content-addressed name under MEDIA_ROOT: identical images share one file and a re-import
    of an unchanged image has nothing to copy."""
    return f"products/{sha256[:2]}/{sha256}.{extension}"


def image_store(*, data: bytes, sha256: str, extension: str) -> tuple[str, bool]:
    """Write image bytes to the default storage unless that content is already there.

    Returns (storage name, written) so a caller that rolls back can delete what it wrote.
    """
    name = image_storage_name(sha256=sha256, extension=extension)
    if default_storage.exists(name):
        return name, False
    saved = default_storage.save(name, ContentFile(data))
    return saved, True


# --- Categories -------------------------------------------------------------------------------


def category_path_parts(path: str) -> list[str]:
    """Split "Apparel > Topwear > Shirts" into its names, refusing empty levels."""
    parts = [part.strip() for part in path.split(">")]
    if not parts or any(not part for part in parts):
        raise ValueError(f"category path {path!r} has an empty level")
    return parts


def category_get_or_create_path(*, names: list[str] | tuple[str, ...] | str) -> Category:
    """Return the leaf of a category path, creating missing levels (idempotent).

    ``names`` is a list of level names or a "A > B > C" string.
    """
    parts = category_path_parts(names) if isinstance(names, str) else [str(n).strip() for n in names]
    if not parts or any(not part for part in parts):
        raise ValueError(f"category path {parts!r} has an empty level")
    for part in parts:
        if ">" in part:
            raise ValueError(f"category name {part!r} contains '>', which separates levels")
        if len(part) > Category._meta.get_field("name").max_length:
            raise ValueError(f"category name {part[:40]!r}... is longer than 100 characters")
    parent: Category | None = None
    with transaction.atomic():
        for level, name in enumerate(parts):
            path = CATEGORY_SEPARATOR.join(parts[: level + 1])
            node = Category.objects.filter(path=path).first()
            if node is None:
                node = Category.objects.create(name=name, parent=parent, level=level, path=path)
            parent = node
    assert parent is not None
    return parent


def category_create(*, name: str, parent: Category | None) -> Category:
    """Create one category under ``parent`` with its path and level computed (used by the admin)."""
    names = (category_path_parts(parent.path) if parent else []) + [name]
    return category_get_or_create_path(names=names)


# --- Products ---------------------------------------------------------------------------------


@dataclass
class UpsertResult:
    product: Product
    created: bool
    changed_fields: list[str]
    category_changed: bool
    category_kept_verified: bool = False


def product_upsert(
    *,
    sku: str,
    title: str,
    category: Category,
    image_name: str | None = None,
    image: ValidatedImage | None = None,
    fields: dict[str, Any] | None = None,
    user=None,
    reason: str = "import",
    existing: Product | None | object = LOOKUP,
    keep_verified: bool = True,
) -> UpsertResult:
    """Create or update a product by sku; every category assignment is an audited CategoryChange.

    ``image_name`` is a storage name already written (image_store); ``image`` its validated facts.
    A category or colour a person verified (review) is kept unless ``keep_verified`` is False, so
    re-importing the retailer's feed does not undo merchandisers' fixes. ``existing`` lets bulk
    callers pass the row they already fetched (None: known to be new); by default it is looked up.
    """
    fields = dict(fields or {})
    unknown = set(fields) - set(PRODUCT_PLAIN_FIELDS)
    if unknown:
        raise ValueError(f"unknown product fields: {', '.join(sorted(unknown))}")
    # No savepoint per product: a bulk caller's outer transaction is the unit that rolls back.
    with transaction.atomic(savepoint=False):
        product = Product.objects.filter(sku=sku).first() if existing is LOOKUP else existing
        if product is None:
            product = Product(sku=sku, title=title, category=category, **fields)
            if image is not None:
                product.image.name = image_name
                product.image_sha256 = image.sha256
                product.image_width = image.width
                product.image_height = image.height
            product.save()
            CategoryChange.objects.create(
                product=product, old_category=None, new_category=category, changed_by=user, reason=reason
            )
            return UpsertResult(product, True, ["created"], True)

        changed: list[str] = []
        kept_verified = False
        if keep_verified and product.colour_verified_at and "colour" in fields and fields["colour"] != product.colour:
            fields.pop("colour")
            kept_verified = True
        desired = {"title": title, **fields}
        for name, value in desired.items():
            if getattr(product, name) != value:
                setattr(product, name, value)
                changed.append(name)
        if image is not None and (product.image_sha256 != image.sha256 or (image_name and product.image.name != image_name)):
            product.image.name = image_name
            product.image_sha256 = image.sha256
            product.image_width = image.width
            product.image_height = image.height
            changed += ["image", "image_sha256", "image_width", "image_height"]
        category_changed = False
        old_category_id = product.category_id
        if category.pk != old_category_id:
            if keep_verified and product.category_verified_at:
                kept_verified = True
            else:
                product.category = category
                changed.append("category")
                category_changed = True
        if changed:
            product.save(update_fields=changed + ["updated_at"])
        if category_changed:
            CategoryChange.objects.create(
                product=product, old_category_id=old_category_id, new_category=category, changed_by=user, reason=reason
            )
        return UpsertResult(product, False, changed, category_changed, kept_verified)


@dataclass
class NewProduct:
    """One product for products_create_bulk: what product_upsert takes for a product not yet stored."""

    sku: str
    title: str
    category: Category
    image_name: str
    image: ValidatedImage
    fields: dict[str, Any]


def products_create_bulk(*, items: list[NewProduct], user=None, reason: str = "import", batch_size: int = 500) -> list[Product]:
    """Insert many new products and their first CategoryChange rows in batches (a first import of a
    large catalog); same rows as product_upsert would write, a few queries per batch instead of two
    per product. The caller guarantees the skus are new (an existing sku violates the unique
    constraint and the transaction rolls back)."""
    created: list[Product] = []
    with transaction.atomic():
        for start in range(0, len(items), batch_size):
            batch = []
            for item in items[start : start + batch_size]:
                unknown = set(item.fields) - set(PRODUCT_PLAIN_FIELDS)
                if unknown:
                    raise ValueError(f"unknown product fields: {', '.join(sorted(unknown))}")
                product = Product(sku=item.sku, title=item.title, category=item.category, **item.fields)
                product.image.name = item.image_name
                product.image_sha256 = item.image.sha256
                product.image_width, product.image_height = item.image.width, item.image.height
                batch.append(product)
            Product.objects.bulk_create(batch)
            CategoryChange.objects.bulk_create(
                CategoryChange(product=p, old_category=None, new_category=p.category, changed_by=user, reason=reason)
                for p in batch
            )
            created += batch
    return created


def product_category_change(*, product: Product, new_category: Category, user, reason: str, flag=None) -> CategoryChange | None:
    """Move a product to another category, writing the audit row in the same transaction.

    A person's decision (``user`` given) also marks the category as verified, which training
    weighs up and re-imports respect. When the product already has ``new_category`` nothing is
    audited and None is returned (the verification mark is still set for a person's decision).
    ``product`` is updated in place.
    """
    with transaction.atomic():
        locked = Product.objects.select_for_update().get(pk=product.pk)
        now = timezone.now()
        if locked.category_id == new_category.pk:
            if user is not None:
                Product.objects.filter(pk=locked.pk).update(category_verified_at=now, updated_at=now)
                product.category_verified_at = now
            return None
        change = CategoryChange.objects.create(
            product=locked,
            old_category_id=locked.category_id,
            new_category=new_category,
            changed_by=user,
            reason=reason[:300],
            flag=flag,
        )
        updates: dict[str, Any] = {"category": new_category, "updated_at": now}
        if user is not None:
            updates["category_verified_at"] = now
        Product.objects.filter(pk=locked.pk).update(**updates)
    product.category = new_category
    if user is not None:
        product.category_verified_at = now
    return change


# Attributes a reviewer may correct, with the Product field holding each and its verified mark.
_CORRECTABLE_ATTRIBUTES = {"colour": ("colour", "colour_verified_at")}


def product_attribute_change(
    *, product: Product, attribute: str, new_value: str, user, reason: str, flag=None
) -> AttributeChange | None:
    """Change a reviewable attribute (colour) with an AttributeChange audit row, in one transaction.

    Same conventions as product_category_change: None when the value is unchanged.
    """
    if attribute not in _CORRECTABLE_ATTRIBUTES:
        raise ValueError(f"attribute {attribute!r} cannot be changed here; allowed: {', '.join(_CORRECTABLE_ATTRIBUTES)}")
    field_name, verified_field = _CORRECTABLE_ATTRIBUTES[attribute]
    max_length = Product._meta.get_field(field_name).max_length
    if not new_value or len(new_value) > max_length:
        raise ValueError(f"{attribute} must be 1 to {max_length} characters")
    with transaction.atomic():
        locked = Product.objects.select_for_update().get(pk=product.pk)
        now = timezone.now()
        old_value = getattr(locked, field_name)
        updates: dict[str, Any] = {"updated_at": now}
        if user is not None:
            updates[verified_field] = now
        if old_value == new_value:
            if user is not None:
                Product.objects.filter(pk=locked.pk).update(**updates)
                setattr(product, verified_field, now)
            return None
        change = AttributeChange.objects.create(
            product=locked,
            attribute=attribute,
            old_value=old_value,
            new_value=new_value,
            changed_by=user,
            reason=reason[:300],
            flag=flag,
        )
        updates[field_name] = new_value
        Product.objects.filter(pk=locked.pk).update(**updates)
    setattr(product, field_name, new_value)
    if user is not None:
        setattr(product, verified_field, now)
    return change
