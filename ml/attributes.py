"""Categorical side attributes of catalog items (gender, usage, season, colour...) as integer codes.

A model that reads side attributes keeps the vocabulary it was trained with, so that serving maps
a product's values to the same codes. Values are compared stripped and case-folded ("Men" and
"men " are one value); a value the vocabulary lacks, or an empty one, is -1 (unknown).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

UNKNOWN = -1


def normalise_value(value) -> str:
    return "" if value is None else str(value).strip().casefold()


def attribute_vocabulary(
    values: Sequence[Sequence], names: Sequence[str], *, min_count: int = 2, max_unique_share: float = 0.5
) -> dict[str, list[str]]:
    """The vocabulary of each attribute worth learning, from the items' values (one row per item,
    one column per name): values seen on at least ``min_count`` items, most frequent first.

    An attribute is left out when fewer than two of its values qualify (nothing to tell apart), or
    when it is nearly unique per item (more distinct values than ``max_unique_share`` of the items
    that have one: an identifier, not a property a pair can share)."""
    vocab: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        counts = Counter(v for v in (normalise_value(row[k]) for row in values) if v)
        present = sum(counts.values())
        if not present or len(counts) > max_unique_share * present:
            continue
        kept = [v for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        if len(kept) >= 2:
            vocab[name] = kept
    return vocab


def encode_attributes(values: Sequence[Sequence], names: Sequence[str], vocab: dict[str, list[str]]) -> np.ndarray:
    """Codes (N, len(vocab)) in the vocabulary's attribute order; ``values`` rows follow ``names``."""
    column_of = {name: k for k, name in enumerate(names)}
    missing = [name for name in vocab if name not in column_of]
    if missing:
        raise ValueError(f"the values have no column for the attribute(s) {missing}; columns: {list(names)}")
    out = np.full((len(values), len(vocab)), UNKNOWN, dtype=np.int64)
    for j, (name, known) in enumerate(vocab.items()):
        code = {v: i for i, v in enumerate(known)}
        k = column_of[name]
        out[:, j] = [code.get(normalise_value(row[k]), UNKNOWN) for row in values]
    return out


def with_indicators(features: np.ndarray, codes: np.ndarray | None, sizes) -> np.ndarray:
    """``features`` with the side attributes' indicator columns after them (unchanged when ``codes`` is None)."""
    if codes is None:
        return features
    return np.hstack([np.asarray(features, dtype=np.float32), one_hot(codes, sizes)])


def one_hot(codes: np.ndarray, sizes) -> np.ndarray:
    """Codes (N, K) as indicator columns (N, sum(sizes)), float32; an unknown code (-1 or out of
    range) sets none of its attribute's columns. For models that read side attributes as features."""
    codes = np.asarray(codes, dtype=np.int64)
    sizes = [int(s) for s in sizes]
    if codes.ndim != 2 or codes.shape[1] != len(sizes):
        raise ValueError(f"codes must have shape (N, {len(sizes)}), got {codes.shape}")
    out = np.zeros((len(codes), sum(sizes)), dtype=np.float32)
    start = 0
    for k, size in enumerate(sizes):
        ok = (codes[:, k] >= 0) & (codes[:, k] < size)
        out[np.flatnonzero(ok), start + codes[ok, k]] = 1.0
        start += size
    return out
