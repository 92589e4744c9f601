"""training_pairs(): stylist labels, outfit pairs and crowd aggregates as weighted training rows."""

from __future__ import annotations

import pytest

from curation.crowd.models import AggregatedLabel
from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel
from curation.pairs.selectors import outfit_pairs, positive_pairs, training_pairs

pytestmark = pytest.mark.django_db


def _pair(p, q, **kw):
    a, b = sorted((p.pk, q.pk))
    return CandidatePair.objects.create(a_id=a, b_id=b, source="exploration", **kw)


def test_sources_weights_and_precedence(catalog, make_user):
    s1, s2 = make_user("stylist", "s1"), make_user("stylist", "s2")
    p = catalog
    stylist_no = _pair(p[0], p[2], state="decided")
    PairLabel.objects.create(pair=stylist_no, user=s1, kind="stylist", value="no")
    # Two stylists disagree, a third breaks the tie: majority wins.
    split = _pair(p[0], p[4], state="decided")
    PairLabel.objects.create(pair=split, user=s1, kind="stylist", value="yes")
    PairLabel.objects.create(pair=split, user=s2, kind="stylist", value="no")
    PairLabel.objects.create(pair=split, user=make_user("stylist", "s3"), kind="stylist", value="yes")
    # Outfit (p0, p2, p6): p0-p2 is overruled by the stylist's "no".
    outfit = Outfit.objects.create(name="look")
    for i, prod in enumerate((p[0], p[2], p[6])):
        OutfitItem.objects.create(outfit=outfit, product=prod, position=i)
    crowd_yes = _pair(p[1], p[3], audience="crowd")
    AggregatedLabel.objects.create(pair=crowd_yes, value="yes", confidence=0.8, method="dawid_skene", votes=3)
    escalated = _pair(p[1], p[5], audience="crowd")
    AggregatedLabel.objects.create(pair=escalated, value="no", confidence=0.5, method="dawid_skene", votes=3, escalated=True)
    escalated_then_decided = _pair(p[1], p[7], audience="stylist", state="decided")
    AggregatedLabel.objects.create(pair=escalated_then_decided, value="no", confidence=0.55, method="dawid_skene", votes=3, escalated=True)
    PairLabel.objects.create(pair=escalated_then_decided, user=s1, kind="stylist", value="yes")
    # Crowd votes themselves are not training rows; only their aggregate is.
    PairLabel.objects.create(pair=crowd_yes, user=make_user("crowd", "c1"), kind="crowd", value="no")

    rows = {(a, b): (v, w, src) for a, b, v, w, src in training_pairs()}
    key = lambda x, y: tuple(sorted((x.pk, y.pk)))  # noqa: E731
    assert rows[key(p[0], p[2])] == (0, 1.0, "stylist")
    assert rows[key(p[0], p[4])] == (1, 1.0, "stylist")
    assert rows[key(p[0], p[6])] == (1, 1.0, "outfit")
    assert rows[key(p[2], p[6])] == (1, 1.0, "outfit")
    assert rows[key(p[1], p[3])] == (1, 0.8, "crowd")
    assert key(p[1], p[5]) not in rows
    assert rows[key(p[1], p[7])] == (1, 1.0, "stylist")
    assert len(rows) == 6
    assert all(a < b for a, b in rows)
    assert set(positive_pairs()) == {k for k, (v, _, _) in rows.items() if v == 1}


def test_outfit_pairs_are_every_pair_inside_each_outfit(catalog):
    outfit = Outfit.objects.create(name="four")
    for i, prod in enumerate(catalog[:4]):
        OutfitItem.objects.create(outfit=outfit, product=prod, position=i)
    assert len(outfit_pairs()) == 6
