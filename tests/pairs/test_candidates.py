"""Candidate pairs: exploration, similar-to-observed (real embeddings), uncertain, the mix."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from curation.pairs import services
from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel

pytestmark = pytest.mark.django_db


def _groups(catalog):
    return {p.pk: p.category.path.split(" > ")[1] for p in catalog}


def _no_models(monkeypatch):
    monkeypatch.setattr(services, "_active_pair_scorer", lambda: None)
    monkeypatch.setattr(services, "_active_embeddings", lambda: None)


class FakeScorer:
    """A stand-in siamese model with known probabilities: a pair's score is (a + b) % 10 / 10."""

    version_id = None

    def score(self, pairs):
        return np.array([((a + b) % 10) / 10 for a, b in pairs], dtype=np.float32)


def test_mix_parses_and_rejects_nonsense():
    assert services.candidate_mix_parse("similar=2,exploration=2") == {"similar": 0.5, "exploration": 0.5}
    for bad in ("similar", "popular=1", "similar=x", "similar=-1", "similar=0"):
        with pytest.raises(ImproperlyConfigured, match="CANDIDATE_MIX"):
            services.candidate_mix_parse(bad)


def test_without_any_model_candidates_are_exploration_cross_category_and_new(catalog, monkeypatch, make_user):
    _no_models(monkeypatch)
    groups = _groups(catalog)
    made = services.candidates_refresh(batch=10, seed=1)
    assert set(made) == {"similar", "exploration"} and made["similar"] == 0 and made["exploration"] == 10
    pairs = list(CandidatePair.objects.all())
    assert len(pairs) == 10
    assert all(p.a_id < p.b_id and groups[p.a_id] != groups[p.b_id] and p.state == "open" and p.audience == "stylist" for p in pairs)
    # A second refresh never proposes a pair again, decided or open.
    PairLabel.objects.create(pair=pairs[0], user=make_user("stylist"), kind="stylist", value="no")
    services.candidates_refresh(batch=10, seed=2)
    keys = list(CandidatePair.objects.values_list("a_id", "b_id"))
    assert len(keys) == len(set(keys)) == 20


def test_new_candidates_go_ahead_of_older_ones_with_sources_interleaved(catalog, monkeypatch):
    _no_models(monkeypatch)
    services.candidates_refresh(batch=4, seed=1)
    old_top = max(CandidatePair.objects.values_list("priority", flat=True))
    services.candidates_refresh(batch=4, seed=2)
    newest = CandidatePair.objects.order_by("-created_at", "-id")[:4]
    assert all(p.priority > old_top for p in newest)


def test_outfit_pairs_are_never_proposed(catalog, monkeypatch):
    _no_models(monkeypatch)
    outfit = Outfit.objects.create(name="all")
    for i, p in enumerate(catalog):
        OutfitItem.objects.create(outfit=outfit, product=p, position=i)
    assert services.candidates_refresh(batch=10, seed=3)["exploration"] == 0
    assert not CandidatePair.objects.exists()


def test_uncertain_picks_pairs_scored_nearest_one_half(catalog, monkeypatch):
    monkeypatch.setattr(services, "_active_pair_scorer", lambda: FakeScorer())
    monkeypatch.setattr(services, "_active_embeddings", lambda: None)
    made = services.candidates_refresh(sources=["uncertain"], batch=3, seed=4)
    assert made == {"uncertain": 3}
    pairs = list(CandidatePair.objects.all())
    assert all(p.source == "uncertain" for p in pairs)
    # The pool covers every cross-category pair of this 8-product catalog; the 3 chosen are the
    # ones the (fake) model is least sure of.
    groups = _groups(catalog)
    ids = sorted(groups)
    cross = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if groups[a] != groups[b]]
    expected = sorted(abs(s - 0.5) for s in FakeScorer().score(cross))[:3]
    assert sorted(abs(p.model_score - 0.5) for p in pairs) == pytest.approx(expected)
    best = max(pairs, key=lambda p: p.priority)
    assert abs(best.model_score - 0.5) == pytest.approx(expected[0])


def test_uncertain_share_moves_to_other_sources_without_a_model(catalog, monkeypatch, settings):
    _no_models(monkeypatch)
    settings.CANDIDATE_MIX = "similar=0.5,uncertain=0.5"
    made = services.candidates_refresh(batch=6, seed=5)
    assert "uncertain" not in made and made["exploration"] == 6  # no positives: similar's share too


@pytest.fixture
def active_embeddings(catalog, settings, django_capture_on_commit_callbacks):
    """A real embedding set of the tiny catalog, built and activated by the training app."""
    from curation.training import serving
    from curation.training.services import embedding_set_build

    settings.ML_WEIGHTS, settings.ML_IMAGE_SIZE, settings.ML_DEVICE = "none", 64, "cpu"
    settings.ML_LOADER_WORKERS, settings.ML_BATCH_SIZE, settings.ML_BF16 = 0, 16, False
    serving.reset()
    with django_capture_on_commit_callbacks(execute=True):
        embedding_set_build()
    yield serving.active_embeddings()
    serving.reset()


def test_similar_to_observed_pairs_a_neighbour_with_the_partner(catalog, active_embeddings, monkeypatch, make_user):
    monkeypatch.setattr(services, "_active_pair_scorer", lambda: None)
    shirt, jeans = catalog[0], catalog[2]
    pair = CandidatePair.objects.create(a_id=min(shirt.pk, jeans.pk), b_id=max(shirt.pk, jeans.pk), source="manual", state="decided")
    PairLabel.objects.create(pair=pair, user=make_user("stylist"), kind="stylist", value="yes")
    made = services.candidates_refresh(sources=["similar"], batch=6, seed=6)
    assert made["similar"] > 0
    groups = _groups(catalog)
    neighbours = {
        shirt.pk: {pid for pid, _ in active_embeddings.neighbours(shirt.pk, 10)},
        jeans.pk: {pid for pid, _ in active_embeddings.neighbours(jeans.pk, 10)},
    }
    for cand in CandidatePair.objects.filter(source="similar"):
        members = {cand.a_id, cand.b_id}
        assert groups[cand.a_id] != groups[cand.b_id]
        if shirt.pk in members:  # (shirt, jeans') with jeans' a neighbour of jeans
            assert (members - {shirt.pk}).pop() in neighbours[jeans.pk]
        else:
            assert jeans.pk in members and (members - {jeans.pk}).pop() in neighbours[shirt.pk]


def test_celery_task_refreshes_candidates(catalog, monkeypatch):
    from curation.pairs import tasks

    _no_models(monkeypatch)
    result = tasks.candidates_refresh.delay(sources=["exploration"], batch=3).get()
    assert result == {"exploration": 3}
    assert CandidatePair.objects.filter(source="exploration").count() == 3
