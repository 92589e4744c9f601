"""The door to ml/ for the rest of the project (docs/contracts.md, "The door to ml/").

Views, the queue and discovery use these functions and never import ml/. Each process keeps the
active embedding set and models in memory and checks at most every MODEL_RELOAD_CHECK_SECONDS
whether another version was activated; a switch loads the new objects first and then swaps one
reference, so requests holding the old objects finish with them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from django.conf import settings

from curation.training import embedding_files
from curation.training.ml_objects import artifact_abspath, backbone_config, embedder_for
from curation.training.models import EmbeddingSet, ModelVersion

logger = logging.getLogger(__name__)


class ActiveEmbeddings:
    """The vectors and index of one embedding set (plus its cold-start additions)."""

    def __init__(self, emb: EmbeddingSet):
        folder = artifact_abspath(emb.vectors_path)
        files = embedding_files.read_embedding_files(folder)
        self.version_id = emb.pk
        self.embedding_set_id = emb.pk
        self.revision = emb.revision
        self.backbone = emb.backbone
        self.dim = emb.dim
        self._set_arrays(files.product_ids, files.vectors, embedding_files.load_index(folder))

    @classmethod
    def from_arrays(cls, product_ids: np.ndarray, vectors: np.ndarray, index) -> "ActiveEmbeddings":
        """The search path alone, without a database row or files (tests, tools)."""
        emb = object.__new__(cls)
        emb.version_id = emb.embedding_set_id = emb.revision = None
        emb._set_arrays(product_ids, vectors, index)
        return emb

    def _set_arrays(self, product_ids: np.ndarray, vectors: np.ndarray, index) -> None:
        self.product_ids = product_ids
        self._vectors = vectors
        self._index = index
        # Product id -> row, as an array when ids are dense enough (database keys usually are), so
        # a request maps its hundreds of index hits to rows in one vectorised lookup; as a dict when
        # the array would be much larger than the set.
        ids = np.asarray(product_ids, dtype=np.int64)
        self._row_of_id: np.ndarray | None = None
        self._row: dict[int, int] | None = None
        if len(ids) and ids.min() >= 0 and ids.max() < max(4 * len(ids), 1_000_000):
            self._row_of_id = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            self._row_of_id[ids] = np.arange(len(ids))
        else:
            self._row = {int(pid): row for row, pid in enumerate(ids.tolist())}

    def __len__(self) -> int:
        return len(self.product_ids)

    def has(self, product_id: int) -> bool:
        pid = int(product_id)
        if self._row_of_id is None:
            return pid in self._row
        return 0 <= pid < len(self._row_of_id) and bool(self._row_of_id[pid] >= 0)

    def rows(self, product_ids: Sequence[int]) -> np.ndarray:
        """Row numbers of products (KeyError naming the first unknown id)."""
        ids = np.asarray(list(product_ids), dtype=np.int64)
        rows = self.rows_or_missing(ids)
        if (rows < 0).any():
            raise KeyError(f"product {int(ids[rows < 0][0])} is not in embedding set {self.version_id}")
        return rows

    def rows_or_missing(self, product_ids: np.ndarray) -> np.ndarray:
        """Row numbers of products, -1 for a product not in the set (vectorised)."""
        ids = np.asarray(product_ids, dtype=np.int64)
        if self._row_of_id is None:
            return np.array([self._row.get(int(p), -1) for p in ids.tolist()], dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self._row_of_id))
        return np.where(inside, self._row_of_id[np.where(inside, ids, 0)], -1)

    def vectors(self, product_ids: Sequence[int]) -> np.ndarray:
        """(len(product_ids), dim) float32 backbone features; KeyError for a product not embedded."""
        rows = self.rows(product_ids)
        return np.asarray(self._vectors[rows], dtype=np.float32)

    def all_vectors(self) -> np.ndarray:
        return self._vectors

    # An approximate or PCA-whitened index only shortlists this many times k; the shortlist is
    # re-ranked by exact cosine on the stored features, so results match exact search on them.
    RERANK_FACTOR = 10

    def search_vector(self, vec, k: int, allowed_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """Nearest products to a feature vector by cosine similarity, best first."""
        if self._index is None or k <= 0:
            return []
        query = np.asarray(vec, dtype=np.float32).reshape(1, -1)
        allowed = None if allowed_ids is None else np.fromiter((int(i) for i in allowed_ids), dtype=np.int64)
        if allowed is not None and len(allowed) == 0:
            return []
        exact = self._index.kind == "flat" and self._index.pca_matrix is None
        fetch = k if exact else k * self.RERANK_FACTOR
        scores, ids = self._index.search(query, fetch, allowed_ids=allowed)
        found = ids[0] >= 0
        hit_ids, hit_scores = ids[0][found], scores[0][found]
        rows = self.rows_or_missing(hit_ids)
        if exact or not len(hit_ids) or (rows < 0).any():
            return [(int(i), float(s)) for i, s in zip(hit_ids[:k].tolist(), hit_scores[:k].tolist())]
        candidates = np.asarray(self._vectors[rows], dtype=np.float32)
        # einsum: squared norms without a candidates-sized temporary (this runs on every request).
        norms = np.sqrt(np.einsum("ij,ij->i", candidates, candidates)) * max(float(np.linalg.norm(query)), 1e-12)
        cosine = (candidates @ query[0]) / np.maximum(norms, 1e-12)
        order = np.argsort(-cosine, kind="stable")[:k]
        return list(zip(hit_ids[order].tolist(), cosine[order].astype(np.float64).tolist()))

    def neighbours(self, product_id: int, k: int, allowed_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """The k most similar other products (the product itself is left out)."""
        if not self.has(product_id):
            return []
        allowed = None
        if allowed_ids is not None:
            allowed = [int(i) for i in allowed_ids if int(i) != int(product_id)]
        hits = self.search_vector(self.vectors([product_id])[0], k + 1, allowed_ids=allowed)
        return [(pid, score) for pid, score in hits if pid != int(product_id)][:k]


class _ModelScorer:
    """Shared loading for models that score products through their own feature space."""

    kind: str = ""

    def __init__(self, version: ModelVersion, embeddings: ActiveEmbeddings | None, *, holdout: bool = False):
        """``holdout``: load the version's held-out model (trained without the held-out slices) when
        it has one, as runs compare versions on those slices; the served model otherwise."""
        from curation.training import ml_objects

        self.version_id = version.pk
        artifact = (version.config or {}).get("holdout_artifact") if holdout else None
        path, sha = (artifact["path"], artifact["sha256"]) if artifact else (version.artifact_path, version.artifact_sha256)
        self.model, self.meta = ml_objects.load_model(kind=version.kind, relative_path=path, expected_sha256=sha)
        # A type-aware model reads each product's category as the code it was trained with.
        self.category_code = {int(c): code for code, c in enumerate((version.config or {}).get("category_ids") or [])}
        # A model that reads side attributes reads each product's current values through the
        # vocabulary it was trained with (a pair model as codes, the outfit scorer as indicators).
        self.attribute_vocab = {str(name): list(known) for name, known in (version.config or {}).get("side_attributes") or []}
        # A model only makes sense on the features it was trained on: use the active set when it
        # is of the same backbone (it has the newest products), else the model's own set.
        if embeddings is not None and (version.embedding_set is None or embeddings.backbone == version.embedding_set.backbone):
            self.embeddings = embeddings
        elif version.embedding_set is not None:
            self.embeddings = ActiveEmbeddings(version.embedding_set)
        else:
            self.embeddings = embeddings

    def _known(self, product_ids: Iterable[int]) -> bool:
        return self.embeddings is not None and all(self.embeddings.has(p) for p in product_ids)

    def _product_codes(self, product_ids: Sequence[int]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The products' category codes for a type-aware model (-1: a category it never saw) and their
        side-attribute codes for a model that reads them (-1: unknown), each None when the model
        does not read it; one read of the catalog for both."""
        from curation.training.selectors import product_categories_and_attributes
        from ml.attributes import encode_attributes

        uses_categories = bool(getattr(self.model, "uses_categories", False))
        uses_attributes = bool(self.attribute_vocab) and bool(getattr(self.model, "uses_attributes", True))
        if not uses_categories and not uses_attributes:
            return None, None
        names = list(self.attribute_vocab) if uses_attributes else []
        category_ids, values = product_categories_and_attributes(product_ids, names)
        categories = np.array([self.category_code.get(c, -1) for c in category_ids], dtype=np.int64) if uses_categories else None
        return categories, encode_attributes(values, names, self.attribute_vocab) if uses_attributes else None


class PairScorer(_ModelScorer):
    """The active siamese model: probability that two products go together."""

    def score(self, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
        """One probability per pair, symmetric in (a, b); NaN where a product has no embedding."""
        from ml.siamese import score_pairs

        out = np.full(len(pairs), np.nan, dtype=np.float32)
        known = [i for i, (a, b) in enumerate(pairs) if self._known((a, b))]
        if known:
            # Each unordered pair is scored once and both orders read that score: a BLAS kernel
            # may compute the same row differently in its last bit at another position of the
            # batch, so (a, b) and (b, a) scored apart could differ.
            unordered = [(min(pairs[i]), max(pairs[i])) for i in known]
            row_of = {pair: row for row, pair in enumerate(dict.fromkeys(unordered))}
            a_ids, b_ids = [a for a, _ in row_of], [b for _, b in row_of]
            codes, attributes = self._product_codes(a_ids + b_ids)
            ca, cb = (codes[: len(a_ids)], codes[len(a_ids) :]) if codes is not None else (None, None)
            aa, ab = (attributes[: len(a_ids)], attributes[len(a_ids) :]) if attributes is not None else (None, None)
            scores = score_pairs(self.model, self.embeddings.vectors(a_ids), self.embeddings.vectors(b_ids), ca, cb, aa, ab)
            out[known] = scores[[row_of[pair] for pair in unordered]]
        return out


class OutfitScorer(_ModelScorer):
    """The active outfit model: how well a set of products goes together, and completing a look.

    A version whose held-out questions the pair model answered better (``looks_scored_by`` =
    "pair_model" in its config) scores a look of two or more products as the mean of the active
    pair model over its pairs, and completes looks by that score; ``pair_mean=False`` keeps the
    outfit model's own scores (the pipeline compares outfit models with it)."""

    def __init__(self, version: ModelVersion, embeddings: ActiveEmbeddings | None, *, holdout: bool = False, pair_mean: bool = True):
        super().__init__(version, embeddings, holdout=holdout)
        self.looks_scored_by = (version.config or {}).get("looks_scored_by") or "outfit_model"
        self.pair_mean = pair_mean

    def _pair_scorer(self):
        """The active pair model when this version hands looks to it, else None."""
        if not self.pair_mean or self.looks_scored_by != "pair_model":
            return None
        return active_pair_scorer()

    def _pair_means(self, pair_scorer, outfits: Sequence[Sequence[int]]) -> np.ndarray:
        """Each look's mean pair score over its distinct products (NaN with fewer than two, or an unscored pair)."""
        from itertools import combinations

        looks = [sorted({int(p) for p in outfit}) for outfit in outfits]
        pairs = sorted({pair for look in looks for pair in combinations(look, 2)})
        score_of = dict(zip(pairs, pair_scorer.score(pairs).tolist())) if pairs else {}
        out = np.full(len(looks), np.nan, dtype=np.float32)
        for n, look in enumerate(looks):
            if len(look) >= 2:
                out[n] = np.mean([score_of[pair] for pair in combinations(look, 2)])
        return out

    def _features(self, product_ids: list[int]) -> np.ndarray:
        """The products' image features, with their side attributes as indicator columns when the model read them."""
        from ml.attributes import with_indicators

        sizes = [len(known) for known in self.attribute_vocab.values()]
        return with_indicators(self.embeddings.vectors(product_ids), self._product_codes(product_ids)[1], sizes)

    def score(self, outfits: Sequence[Sequence[int]]) -> np.ndarray:
        """One score per outfit; NaN for an outfit with a product that has no embedding."""
        pair_scorer = self._pair_scorer()
        if pair_scorer is not None:
            out = self._pair_means(pair_scorer, outfits)
            single = [i for i, outfit in enumerate(outfits) if len(set(outfit)) < 2]
            if single:
                out[single] = self._own_scores([outfits[i] for i in single])
            return out
        return self._own_scores(outfits)

    def _own_scores(self, outfits: Sequence[Sequence[int]]) -> np.ndarray:
        from ml.outfit import score_outfits

        out = np.full(len(outfits), np.nan, dtype=np.float32)
        known = [i for i, outfit in enumerate(outfits) if outfit and self._known(outfit)]
        if not known:
            return out
        ids = sorted({int(p) for i in known for p in outfits[i]})
        feats = self._features(ids)
        local = {pid: row for row, pid in enumerate(ids)}
        out[known] = score_outfits(self.model, feats, [[local[int(p)] for p in outfits[i]] for i in known])
        return out

    def complete(
        self, given: Sequence[int], candidates_by_slot: dict[str, Sequence[int]], top: int = 1
    ) -> dict[str, list[tuple[int, float]]]:
        """Best candidates per slot to go with ``given``; products without embeddings are ignored."""
        from ml.outfit import complete_outfit

        if self.embeddings is None:
            return {slot: [] for slot in candidates_by_slot}
        given = [int(p) for p in given if self.embeddings.has(p)]
        slots = {slot: [int(p) for p in cands if self.embeddings.has(p)] for slot, cands in candidates_by_slot.items()}
        if given and self._pair_scorer() is not None:
            from ml.outfit import complete_by_score

            return complete_by_score(self.score, given, slots, top=top)
        ids = sorted(set(given) | {p for cands in slots.values() for p in cands})
        if not ids or not given:
            return {slot: [] for slot in candidates_by_slot}
        feats = self._features(ids)
        local = {pid: row for row, pid in enumerate(ids)}
        result = complete_outfit(
            self.model,
            feats,
            [local[p] for p in given],
            {slot: np.array([local[p] for p in cands], dtype=np.int64) for slot, cands in slots.items()},
            top=top,
        )
        return {slot: [(ids[int(row)], float(score)) for row, score in result.get(slot, [])] for slot in candidates_by_slot}


class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.checked_at = 0.0
        self.signature: tuple | None = None
        self.embeddings: ActiveEmbeddings | None = None
        self.scorers: dict[str, object] = {}


_state = _State()


def _active_signature() -> tuple:
    emb = EmbeddingSet.objects.filter(is_active=True).values_list("id", "revision").first()
    versions = tuple(
        sorted(
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("kind", "id")
        )
    )
    return (emb, versions)


def _refresh() -> None:
    """Reload when the active versions changed (checked at most every MODEL_RELOAD_CHECK_SECONDS)."""
    now = time.monotonic()
    with _state.lock:
        if _state.signature is not None and now - _state.checked_at < settings.MODEL_RELOAD_CHECK_SECONDS:
            return
        signature = _active_signature()
        _state.checked_at = now
        if signature == _state.signature:
            return
        emb_row = EmbeddingSet.objects.filter(is_active=True).first()
        embeddings = ActiveEmbeddings(emb_row) if emb_row else None
        _state.embeddings = embeddings
        _state.scorers = {}
        _state.signature = signature
        if embeddings is not None:
            logger.info("serving embedding set %s (revision %s)", embeddings.version_id, embeddings.revision)


def _scorer(kind: str, cls):
    _refresh()
    with _state.lock:
        if kind in _state.scorers:
            return _state.scorers[kind]
        version = (
            ModelVersion.objects.select_related("embedding_set").filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
        )
        scorer = None
        if version is not None and version.artifact_path:
            try:
                scorer = cls(version, _state.embeddings)
            except Exception:
                # Serving must not fail a page because an artifact is unreadable: log loudly and
                # serve without the model (pages fall back to similarity).
                logger.exception("cannot load active %s version %s", kind, version.pk)
                scorer = None
        _state.scorers[kind] = scorer
        return scorer


def reset() -> None:
    """Forget everything loaded; the next call reloads (after an activation in this process)."""
    with _state.lock:
        _state.signature = None
        _state.embeddings = None
        _state.scorers = {}
        _state.checked_at = 0.0


def active_embeddings() -> ActiveEmbeddings | None:
    _refresh()
    return _state.embeddings


def active_pair_scorer() -> PairScorer | None:
    return _scorer(ModelVersion.Kind.SIAMESE, PairScorer)


def active_outfit_scorer() -> OutfitScorer | None:
    return _scorer(ModelVersion.Kind.OUTFIT, OutfitScorer)


def embed_images(paths_or_pil: Sequence) -> np.ndarray:
    """Backbone features of new images (search by photo) in the active set's feature space.

    Accepts file paths or PIL images (not mixed). Returns (N, dim) float32.
    """
    items = list(paths_or_pil)
    embeddings = active_embeddings()
    cfg = backbone_config()
    if embeddings is not None and embeddings.backbone != cfg.key():
        logger.warning(
            "active embedding set backbone %s differs from settings %s: photo search compares across spaces",
            embeddings.backbone,
            cfg.key(),
        )
    embedder = embedder_for(cfg)
    if not items:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if isinstance(items[0], (str, Path)):
        return embedder.embed_paths([str(p) for p in items])
    return embedder.embed_pil(items)


def embed_products_now(product_ids: Iterable[int]) -> int:
    """Cold start: embed products not in the active set and add them to it (every process sees
    them after its next version check). Returns how many were added."""
    from curation.training.services.embeddings import embedding_set_add_products

    return embedding_set_add_products(product_ids=list(product_ids))
