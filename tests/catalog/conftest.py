"""Catalog test helpers: a tiny styles.csv-like file with real images, and bad-image makers."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import pytest

from tests.factories import make_image_bytes

STYLES_HEADER = ["id", "productDisplayName", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage", "image"]
STYLES_OPTIONS = [
    "--sku-column", "id",
    "--title-column", "productDisplayName",
    "--category-columns", "masterCategory,subCategory,articleType",
    "--colour-column", "baseColour",
    "--attribute-columns", "year",
]


def styles_rows() -> list[dict[str, str]]:
    return [
        {"id": "101", "productDisplayName": "Reid & Taylor Men Check Purple Shirts", "gender": "Men", "masterCategory": "Apparel",
         "subCategory": "Topwear", "articleType": "Shirts", "baseColour": "Purple", "season": "Fall", "year": "2011", "usage": "Formal",
         "image": "images/101.jpg"},
        {"id": "102", "productDisplayName": "Reid & Taylor Men Check Navy Blue Shirts", "gender": "Men", "masterCategory": "Apparel",
         "subCategory": "Topwear", "articleType": "Shirts", "baseColour": "Navy Blue", "season": "Fall", "year": "2012", "usage": "Formal",
         "image": "images/102.jpg"},
        {"id": "103", "productDisplayName": "Fila Men Black Slippers", "gender": "Men", "masterCategory": "Footwear",
         "subCategory": "Flip Flops", "articleType": "Flip Flops", "baseColour": "Black", "season": "Summer", "year": "2011", "usage": "Casual",
         "image": "images/103.jpg"},
    ]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels with almost no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


class CatalogFiles:
    """Writes a CSV and its images under one folder; rows are dicts in the styles.csv layout."""

    def __init__(self, root: Path):
        self.root = root
        self.csv_path = root / "styles.csv"

    def write(self, rows: list[dict[str, str]], header: list[str] | None = None, images: bool = True) -> Path:
        header = header or STYLES_HEADER
        colours = [(200, 30, 30), (30, 30, 160), (20, 20, 20), (30, 160, 60), (220, 200, 40)]
        if images:
            for i, row in enumerate(rows):
                path = self.root / row["image"]
                if row["image"] and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(make_image_bytes(color=colours[i % len(colours)], shape="rect" if i % 2 else "ellipse"))
        with self.csv_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return self.csv_path


@pytest.fixture
def catalog_files(tmp_path) -> CatalogFiles:
    root = tmp_path / "feed"
    root.mkdir()
    return CatalogFiles(root)


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file())
