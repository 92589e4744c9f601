"""The on-disk layout of an embedding set (no database here).

    <ARTIFACTS_ROOT>/embeddings/<name>/
        vectors.npy        (N, D) float32 backbone features, row i for product_ids[i]
        product_ids.npy    (N,) int64
        image_sha256.json  [sha256 of row i's image]  (the feature cache key, with the backbone)
        index/             ml.index.VectorIndex.save()
        additions.npz      cold-start products appended later (ids, vectors, shas)

A set is written to a temporary sibling folder and renamed into place, so a reader never sees
half a set and a crash leaves at most an orphan temp folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.index import VectorIndex

VECTORS = "vectors.npy"
IDS = "product_ids.npy"
SHAS = "image_sha256.json"
INDEX = "index"
ADDITIONS = "additions.npz"


@dataclass
class EmbeddingFiles:
    product_ids: np.ndarray
    vectors: np.ndarray
    shas: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def index_options(count: int, *, exact_below: int, pca_dim: int) -> dict:
    # PCA needs many more rows than components to be worth anything; tiny catalogs stay exact.
    use_pca = pca_dim and count >= 4 * pca_dim
    return {"exact_below": exact_below, "pca_dim": pca_dim if use_pca else None}


def write_embedding_dir(
    root: Path, *, product_ids: np.ndarray, vectors: np.ndarray, shas: list[str], exact_below: int, pca_dim: int
) -> tuple[str, str]:
    """Write a complete set under root/embeddings/; returns (relative folder, sha256 of vectors)."""
    if len(product_ids) != len(vectors) or len(shas) != len(vectors):
        raise ValueError(f"embedding set rows disagree: {len(product_ids)} ids, {len(vectors)} vectors, {len(shas)} shas")
    name = f"embeddings/{uuid.uuid4().hex}"
    final = root / name
    tmp = root / "embeddings" / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(product_ids, dtype=np.int64)
        np.save(tmp / VECTORS, vectors)
        np.save(tmp / IDS, ids)
        (tmp / SHAS).write_text(json.dumps(list(shas)))
        if len(ids):
            index = VectorIndex.build(vectors, ids, **index_options(len(ids), exact_below=exact_below, pca_dim=pca_dim))
            index.save(tmp / INDEX)
        checksum = sha256_of(tmp / VECTORS)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name, checksum


def read_embedding_files(folder: Path, *, mmap: bool = True) -> EmbeddingFiles:
    """Base rows plus cold-start additions (an addition for a known id replaces nothing: ids are new)."""
    ids = np.load(folder / IDS)
    vectors = np.load(folder / VECTORS, mmap_mode="r" if mmap else None)
    shas = json.loads((folder / SHAS).read_text())
    additions = folder / ADDITIONS
    if additions.exists():
        with np.load(additions) as extra:
            ids = np.concatenate([ids, extra["ids"]])
            vectors = np.concatenate([np.asarray(vectors), extra["vectors"]])
            shas = shas + [str(s) for s in extra["shas"]]
    return EmbeddingFiles(product_ids=ids, vectors=vectors, shas=shas)


def load_index(folder: Path) -> VectorIndex | None:
    if not (folder / INDEX).exists():
        return None
    index = VectorIndex.load(folder / INDEX, mmap=True)
    additions = folder / ADDITIONS
    if additions.exists():
        with np.load(additions) as extra:
            if len(extra["ids"]):
                index.add(extra["vectors"], extra["ids"])
    return index


def append_additions(folder: Path, *, product_ids: np.ndarray, vectors: np.ndarray, shas: list[str]) -> None:
    """Append cold-start rows; rewritten through a temp file so readers see old or new, never half."""
    additions = folder / ADDITIONS
    if additions.exists():
        with np.load(additions) as extra:
            ids = np.concatenate([extra["ids"], np.asarray(product_ids, dtype=np.int64)])
            vecs = np.concatenate([extra["vectors"], np.asarray(vectors, dtype=np.float32)])
            all_shas = np.concatenate([extra["shas"], np.asarray(shas, dtype="U64")])
    else:
        ids = np.asarray(product_ids, dtype=np.int64)
        vecs = np.asarray(vectors, dtype=np.float32)
        all_shas = np.asarray(shas, dtype="U64")
    tmp = folder / f".additions-{uuid.uuid4().hex}.npz"
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=ids, vectors=vecs, shas=all_shas)
    os.replace(tmp, additions)
