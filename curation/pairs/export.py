"""Labels and outfits as CSV or JSON Lines, streamed in chunks (for the command and the API)."""

from __future__ import annotations

import csv
import io
import json
from typing import Iterator

from curation.pairs import selectors

KINDS = {
    "labels": (selectors.LABEL_EXPORT_FIELDS, selectors.labels_export_rows),
    "outfits": (selectors.OUTFIT_EXPORT_FIELDS, selectors.outfits_export_rows),
}
FORMATS = ("csv", "jsonl")


def export_chunks(*, kind: str, fmt: str, rows_per_chunk: int = 500, stats: dict | None = None) -> Iterator[str]:
    """Text chunks of the export: a CSV header then rows, or one JSON object per line.

    ``stats["rows"]`` (when given) holds the number of rows written so far.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    fields, rows = KINDS[kind]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    n = 0
    for row in rows():
        if writer is not None:
            if "reasons" in row:
                row = dict(row, reasons=";".join(row["reasons"] or []))
            writer.writerow(row)
        else:
            buf.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
        if stats is not None:
            stats["rows"] = n
        if n % rows_per_chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue()
