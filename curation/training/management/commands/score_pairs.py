"""python manage.py score_pairs IN.csv OUT.csv

Scores pairs of skus with the active siamese model. IN has columns sku_a,sku_b (other columns are
ignored); OUT repeats sku_a,sku_b and adds score and model_version. A row whose sku is unknown or
has no embedding gets an empty score and is reported by row number on stderr, never guessed.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from curation.catalog.models import Product
from curation.training import serving

CHUNK = 20_000


class Command(BaseCommand):
    help = "Score sku pairs (IN.csv with sku_a,sku_b) with the active siamese model into OUT.csv."

    def add_arguments(self, parser):
        parser.add_argument("input", type=Path)
        parser.add_argument("output", type=Path)

    def handle(self, *args, input: Path, output: Path, **options):
        if not input.is_file():
            raise CommandError(f"{input}: no such file")
        scorer = serving.active_pair_scorer()
        if scorer is None:
            raise CommandError("no active siamese model: run `python manage.py retrain --sync` first")
        with open(input, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("sku_a", "sku_b") if c not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"{input}: missing column(s) {', '.join(missing)} (found: {', '.join(reader.fieldnames or []) or 'none'})")
            rows = [(n, (r["sku_a"] or "").strip(), (r["sku_b"] or "").strip()) for n, r in enumerate(reader, start=2)]
        skus = {s for _, a, b in rows for s in (a, b)}
        ids: dict[str, int] = {}
        sku_list = list(skus)
        for start in range(0, len(sku_list), 5000):
            ids.update(Product.objects.filter(sku__in=sku_list[start : start + 5000]).values_list("sku", "id"))
        problems: list[str] = []
        scorable: list[int] = []
        pairs: list[tuple[int, int]] = []
        for i, (line, a, b) in enumerate(rows):
            unknown = [f"{col} {sku!r}" for col, sku in (("sku_a", a), ("sku_b", b)) if sku not in ids]
            if unknown:
                problems.append(f"row {line}: unknown {' and '.join(unknown)}")
                continue
            pairs.append((ids[a], ids[b]))
            scorable.append(i)
        scores = np.full(len(rows), np.nan)
        for start in range(0, len(pairs), CHUNK):
            chunk = scorer.score(pairs[start : start + CHUNK])
            scores[scorable[start : start + CHUNK]] = chunk
        for i in scorable:
            if np.isnan(scores[i]):
                line, a, b = rows[i]
                problems.append(f"row {line}: {a} or {b} has no embedding (no readable image when the index was built)")
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["sku_a", "sku_b", "score", "model_version"])
                for i, (_line, a, b) in enumerate(rows):
                    value = "" if np.isnan(scores[i]) else f"{scores[i]:.6f}"
                    writer.writerow([a, b, value, scorer.version_id])
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for problem in sorted(problems, key=lambda p: int(p.split()[1].rstrip(":"))):
            self.stderr.write(problem)
        scored = len(rows) - len(problems)
        self.stdout.write(f"Scored {scored} of {len(rows)} pairs with siamese v{scorer.version_id} into {output}.")
