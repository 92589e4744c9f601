"""Tiny test data: images drawn with PIL, products with real image files."""

from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

from PIL import Image, ImageDraw

_counter = itertools.count(1)


def make_image_bytes(color=(200, 30, 30), size=(48, 64), fmt="JPEG", shape="rect") -> bytes:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    w, h = size
    if shape == "rect":
        draw.rectangle([w // 6, h // 6, w - w // 6, h - h // 6], fill=color)
    else:
        draw.ellipse([w // 6, h // 6, w - w // 6, h - h // 6], fill=color)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_image_bytes(**kwargs))
    return path


def category_path(path: str):
    """Get or create every level of "A > B > C" and return the leaf."""
    from curation.catalog.models import Category

    parent = None
    parts = [p.strip() for p in path.split(">")]
    for level, name in enumerate(parts):
        full = " > ".join(parts[: level + 1])
        parent, _ = Category.objects.get_or_create(path=full, defaults={"name": name, "parent": parent, "level": level})
    return parent


def make_product(category: str = "Apparel > Topwear > Shirts", color=(200, 30, 30), shape="rect", **fields):
    """A saved Product with a real image file under MEDIA_ROOT."""
    from django.core.files.base import ContentFile

    from curation.catalog.models import Product

    n = next(_counter)
    data = make_image_bytes(color=color, shape=shape)
    product = Product(
        sku=fields.pop("sku", f"SKU{n:05d}"),
        title=fields.pop("title", f"Test product {n}"),
        category=category_path(category),
        colour=fields.pop("colour", "Red"),
        image_sha256=hashlib.sha256(data).hexdigest(),
        image_width=48,
        image_height=64,
        **fields,
    )
    product.image.save(f"{product.sku}.jpg", ContentFile(data), save=False)
    product.save()
    return product
