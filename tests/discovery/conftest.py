"""Discovery fixtures: a tiny catalog over three outfit slots, its active embedding set (real
backbone, random weights, 64 px), and stand-in pair/outfit scorers for the parts that need a
trained siamese or outfit model (their scores are a fixed function of the embeddings, so a test
can compute the expected order itself)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.factories import make_product


@pytest.fixture(autouse=True)
def _fresh_serving(settings):
    """Every test sees the embedding set of its own database and artifact folder."""
    from django.core.cache import cache

    from curation.training import serving

    settings.MODEL_RELOAD_CHECK_SECONDS = 0
    # tests/conftest.py sets these as environment defaults, but pytest-django has read the
    # settings by then; the small, offline backbone is set here so these tests never download.
    settings.ML_WEIGHTS = "none"
    settings.ML_IMAGE_SIZE = 64
    settings.ML_DEVICE = "cpu"
    settings.ML_LOADER_WORKERS = 0
    settings.ML_BATCH_SIZE = 16
    serving.reset()
    cache.clear()  # throttling counters
    yield
    serving.reset()


@pytest.fixture
def catalog(db):
    """Products named by role in the tests. ``shirt_twin`` has exactly ``shirt``'s image."""
    p = {}
    p["shirt"] = make_product("Apparel > Topwear > Shirts", color=(200, 30, 30), sku="SHIRT-RED")
    p["shirt_twin"] = make_product("Apparel > Topwear > Shirts", color=(200, 30, 30), sku="SHIRT-RED-2")
    p["shirt_blue"] = make_product("Apparel > Topwear > Shirts", color=(30, 30, 200), shape="ellipse", sku="SHIRT-BLUE")
    p["tee_sold_out"] = make_product("Apparel > Topwear > Tshirts", color=(200, 40, 40), sku="TEE-RED-OOS", in_stock=False)
    p["shirt_sold_out"] = make_product("Apparel > Topwear > Shirts", color=(190, 30, 30), sku="SHIRT-OOS", in_stock=False)
    p["jeans"] = make_product("Apparel > Bottomwear > Jeans", color=(20, 20, 120), sku="JEANS-1")
    p["chinos"] = make_product("Apparel > Bottomwear > Trousers", color=(180, 160, 120), shape="ellipse", sku="CHINO-1")
    p["skirt"] = make_product("Apparel > Bottomwear > Skirts", color=(10, 120, 10), sku="SKIRT-1")
    p["sneaker"] = make_product("Footwear > Shoes > Sneakers", color=(240, 240, 240), shape="ellipse", sku="SNEAK-1")
    p["boot"] = make_product("Footwear > Shoes > Boots", color=(60, 30, 10), sku="BOOT-1")
    p["boot_sold_out"] = make_product("Footwear > Shoes > Boots", color=(70, 30, 10), sku="BOOT-OOS", in_stock=False)
    return p


# Backbone features by image sha256, kept for the whole session: the factories draw the same
# images in every test, and running ResNet-50 again for each test would dominate the run time.
_SESSION_FEATURES: dict[str, np.ndarray] = {}


@pytest.fixture
def active_set(catalog, monkeypatch):
    """The real embedding-set build and activation; features of images already embedded earlier
    in the session are handed to it as its feature cache (the cache it keeps across sets)."""
    from curation.training import embedding_files
    from curation.training.ml_objects import artifact_abspath
    from curation.training.services import embeddings

    monkeypatch.setattr(embeddings, "cached_features", lambda *, backbone_key: dict(_SESSION_FEATURES))
    emb = embeddings.embedding_set_build(activate=True)
    files = embedding_files.read_embedding_files(artifact_abspath(emb.vectors_path))
    for sha, vector in zip(files.shas, files.vectors):
        _SESSION_FEATURES.setdefault(sha, np.array(vector))
    return emb


class FakePairScorer:
    """score(a, b) = cosine distance / 2 of the backbone features: opposites go together."""

    version_id = 901

    def score(self, pairs):
        from curation.training import serving

        emb = serving.active_embeddings()
        out = []
        for a, b in pairs:
            va, vb = emb.vectors([a, b])
            cos = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
            out.append((1.0 - cos) / 2.0)
        return np.array(out, dtype=np.float32)


class FakeOutfitScorer:
    """An outfit's score is the mean pair score; complete() keeps the best-scored candidate."""

    version_id = 902

    def __init__(self):
        self.pair = FakePairScorer()
        self.calls = []

    def score(self, outfits):
        scores = []
        for outfit in outfits:
            pairs = [(a, b) for i, a in enumerate(outfit) for b in outfit[i + 1 :]]
            scores.append(float(np.mean(self.pair.score(pairs))))
        return np.array(scores, dtype=np.float32)

    def complete(self, given, candidates_by_slot, top=1):
        self.calls.append((list(given), {k: list(v) for k, v in candidates_by_slot.items()}))
        result = {}
        for slot, candidates in candidates_by_slot.items():
            scored = [(c, float(self.score([list(given) + [c]])[0])) for c in candidates]
            result[slot] = sorted(scored, key=lambda item: -item[1])[:top]
        return result


@pytest.fixture
def fake_scorers(monkeypatch):
    from curation.training import serving

    pair, outfit = FakePairScorer(), FakeOutfitScorer()
    monkeypatch.setattr(serving, "active_pair_scorer", lambda: pair)
    monkeypatch.setattr(serving, "active_outfit_scorer", lambda: outfit)
    return pair, outfit


@pytest.fixture
def no_role_client(db):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user = get_user_model().objects.create_user("no-role", password="pw-test-12345")
    c = APIClient()
    c.force_authenticate(user)
    return c
