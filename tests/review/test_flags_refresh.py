"""flags_refresh: which products are flagged, with what, and how flags of older runs are handled."""

from __future__ import annotations

import numpy as np
import pytest

from curation.catalog.models import Category
from curation.review.models import CatalogFlag
from curation.review.services import ReviewError, flag_decide, flags_refresh
from tests.factories import category_path
from tests.review.conftest import CLASSES, JEANS, SHIRTS, SHOES, one_hot_proba

pytestmark = pytest.mark.django_db


def test_flags_strong_disagreements_only(raise_flags, catalog):
    # Path ratios: p0 shirts -> jeans at 0.8: 0.25 (flagged at <= 0.4); p1 shirts -> shoes at 0.55:
    # 0.52 (not); p3 agrees.
    result = raise_flags({0: (1, 0.8), 1: (2, 0.55), 3: (1, 0.99)})
    assert result.created == 1
    flag = CatalogFlag.objects.get()
    assert flag.product_id == catalog[0].id
    assert (flag.kind, flag.state, flag.catalog_value, flag.predicted_value) == ("category", "open", SHIRTS, JEANS)
    assert flag.confidence == pytest.approx(0.8)
    assert flag.path_ratio == pytest.approx(0.25)  # (0.125 leaf x 0.125 Topwear/Bottomwear x 1 Apparel) ** (1/3)


def test_flag_stores_top3_and_model_version(raise_flags, catalog, model_version):
    proba = np.array([[0.05, 0.8, 0.1, 0.05]])
    category_path("Accessories > Bags > Handbags")
    values = CLASSES + ["Accessories > Bags > Handbags"]
    flags_refresh(model_version=model_version, kind="category", product_ids=[catalog[0].id], proba=proba, class_values=values)
    flag = CatalogFlag.objects.get()
    assert flag.model_version == model_version
    assert flag.top_predictions == [
        {"value": JEANS, "probability": 0.8}, {"value": SHOES, "probability": 0.1}, {"value": SHIRTS, "probability": 0.05},
    ]


def test_class_values_may_be_category_ids(catalog, model_version):
    ids = [Category.objects.get(path=p).id for p in CLASSES]
    flags_refresh(model_version=model_version, kind="category", product_ids=[catalog[5].id],
                  proba=one_hot_proba([(0, 0.9)]), class_values=ids)
    assert CatalogFlag.objects.get().predicted_value == SHIRTS


def test_new_run_supersedes_open_flags(raise_flags, catalog, model_version):
    from curation.training.models import ModelVersion

    raise_flags({0: (1, 0.8), 3: (0, 0.9)})
    newer = ModelVersion.objects.create(kind="category", status="ready")
    result = raise_flags({0: (2, 0.7)}, version=newer)  # p0 now predicted shoes; p3 no longer flagged
    assert result.superseded == 2 and result.created == 1
    open_flags = CatalogFlag.objects.filter(state="open")
    assert [(f.product_id, f.predicted_value, f.model_version_id) for f in open_flags] == [(catalog[0].id, SHOES, newer.id)]
    assert CatalogFlag.objects.filter(state="superseded").count() == 2


def test_kept_value_not_flagged_again_unless_far_more_confident(raise_flags, catalog, make_user):
    raise_flags({0: (1, 0.8)})
    flag_decide(flag_id=CatalogFlag.objects.get().id, user=make_user("merchandiser"), action="keep")

    again = raise_flags({0: (1, 0.9)})  # path ratio 0.15: flagged if new, not over a person's decision
    assert again.created == 0 and again.skipped_confirmed == 1
    assert not CatalogFlag.objects.filter(state="open").exists()

    much_surer = raise_flags({0: (1, 0.995)})  # path ratio 0.018
    assert much_surer.created == 1
    assert CatalogFlag.objects.get(state="open").confidence == pytest.approx(0.995)


def test_fixed_value_counts_as_confirmed_too(raise_flags, catalog, make_user):
    raise_flags({0: (1, 0.8)})
    flag_decide(flag_id=CatalogFlag.objects.get().id, user=make_user("merchandiser"), action="accept")  # now jeans
    catalog[0].refresh_from_db()
    result = raise_flags({0: (0, 0.8)})  # the next model says shirts again, but a person said jeans
    assert result.skipped_confirmed == 1 and result.created == 0


def test_colour_flags_are_a_separate_kind(catalog, model_version, raise_flags):
    raise_flags({0: (1, 0.8)})
    colours = ["Red", "Blue", "Black", "White"]
    proba = np.full((len(catalog), 4), 0.02)
    for i, p in enumerate(catalog):
        proba[i, colours.index(p.colour)] = 0.94
    proba[1] = [0.9, 0.04, 0.03, 0.03]  # p1 is Blue in the catalog, predicted Red
    flags_refresh(model_version=model_version, kind="colour", product_ids=[p.id for p in catalog], proba=proba, class_values=colours)
    assert CatalogFlag.objects.filter(state="open").count() == 2  # one category flag, one colour flag
    colour_flag = CatalogFlag.objects.get(kind="colour")
    assert (colour_flag.product_id, colour_flag.catalog_value, colour_flag.predicted_value) == (catalog[1].id, "Blue", "Red")


def test_colours_have_their_own_thresholds(catalog, model_version, settings):
    settings.FLAG_MAX_PATH_RATIO, settings.FLAG_COLOUR_MAX_PATH_RATIO = 0.1, 0.01
    settings.FLAG_REFLAG_MAX_PATH_RATIO, settings.FLAG_COLOUR_REFLAG_MAX_PATH_RATIO = 0.01, 0.001
    colours = ["Red", "Blue", "Black", "White"]
    proba = np.full((len(catalog), 4), 1e-3)
    for i, p in enumerate(catalog):
        proba[i, colours.index(p.colour)] = 0.99
    proba[1] = [0.95, 0.0475, 0.001, 0.0015]  # Blue in the catalog at ratio 0.05: a category would be flagged
    proba[3] = [0.99, 0.00495, 0.003, 0.00205]  # Blue at ratio 0.005: flagged
    flags_refresh(model_version=model_version, kind="colour", product_ids=[p.id for p in catalog], proba=proba, class_values=colours)
    assert list(CatalogFlag.objects.filter(kind="colour").values_list("product_id", flat=True)) == [catalog[3].id]

    # The same disagreement on categories is flagged at the category threshold.
    proba = np.full((len(catalog), 3), 0.005)
    for i, p in enumerate(catalog):
        proba[i, CLASSES.index(p.category.path)] = 0.99
    proba[1] = [0.0095, 0.9855, 0.005]  # a shirt predicted jeans: ratios 1, 0.01, 0.01 by level, 0.046 in all
    flags_refresh(model_version=model_version, kind="category", product_ids=[p.id for p in catalog], proba=proba, class_values=CLASSES)
    assert list(CatalogFlag.objects.filter(kind="category").values_list("product_id", flat=True)) == [catalog[1].id]


def test_blank_colour_is_not_compared(catalog, model_version):
    catalog[0].colour = ""
    catalog[0].save()
    result = flags_refresh(model_version=model_version, kind="colour", product_ids=[catalog[0].id],
                           proba=np.array([[0.99, 0.01]]), class_values=["Red", "Blue"])
    assert result.compared == 0 and not CatalogFlag.objects.exists()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"proba": np.ones((2, 3)) / 3}, "proba has 2 rows but product_ids has 1"),
        ({"proba": np.ones((1, 2)) / 2}, "proba has 2 columns but class_values has 3"),
        ({"proba": np.ones(3) / 3}, "proba must be 2-d"),
        ({"proba": np.array([[np.nan, 0.5, 0.5]])}, "proba row 0"),
        ({"class_values": [SHIRTS, JEANS, "Nope > Nothing"]}, "class_values[2]: no category with path 'Nope > Nothing'"),
        ({"class_values": [SHIRTS, JEANS, 999999]}, "class_values[2]: no category with id 999999"),
        ({"kind": "size"}, "kind='size'"),
        ({"product_ids": [999999]}, "product_ids not in the catalog: [999999]"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message_and_nothing_written(catalog, model_version, kwargs, message, raise_flags):
    raise_flags({0: (1, 0.8)})
    before = list(CatalogFlag.objects.values_list("id", "state"))
    args = {"model_version": model_version, "kind": "category", "product_ids": [catalog[0].id],
            "proba": one_hot_proba([(1, 0.9)]), "class_values": CLASSES} | kwargs
    with pytest.raises(ReviewError) as err:
        flags_refresh(**args)
    assert message in str(err.value)
    assert list(CatalogFlag.objects.values_list("id", "state")) == before


def test_queue_puts_the_most_doubted_catalog_value_first(raise_flags, catalog):
    from curation.review.selectors import flags_queryset

    # p0 shirts -> jeans at 0.9 (a sibling in Apparel: ratio 0.15); p5 shoes -> shirts at 0.85: less
    # confident, but it breaks every level of the path (ratio about 0.09), so it comes first.
    raise_flags({0: (1, 0.9), 5: (0, 0.85)})
    flags = list(flags_queryset())
    assert [f.product_id for f in flags] == [catalog[5].id, catalog[0].id]
    assert flags[0].confidence < flags[1].confidence and flags[0].path_ratio < flags[1].path_ratio


def test_path_ratio_counts_every_level_of_the_category_path():
    from curation.review.services import _path_ratios

    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    ratios = _path_ratios(proba, CLASSES, [SHIRTS, SHIRTS, SHIRTS], hierarchical=True)
    leaf = 0.1 / 0.8
    assert ratios[0] == pytest.approx(leaf ** (2 / 3))  # jeans: Apparel still right
    assert ratios[1] == pytest.approx((leaf * leaf * (0.2 / 0.8)) ** (1 / 3))  # shoes: Apparel 0.2 against Footwear 0.8
    assert ratios[2] == pytest.approx(1.0)
    # Colours have one level; a value the model has no class for is as doubtful as it gets.
    colours = _path_ratios(np.array([[0.6, 0.4], [0.6, 0.4]]), ["Red", "Blue"], ["Blue", "Green"], hierarchical=False)
    assert colours[0] == pytest.approx(0.4 / 0.6) and colours[1] == pytest.approx(1e-6 / 0.6)


def test_a_catalog_read_in_chunks_flags_supersedes_and_respects_decisions_the_same(raise_flags, catalog, model_version, make_user,
                                                                                  monkeypatch):
    """Catalog-sized id lists go to the database in chunks (SQLite takes at most 250,000 parameters
    per statement); two ids per chunk here, so every step below spans three chunks."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.catalog import selectors
    from curation.training.models import ModelVersion

    monkeypatch.setattr(selectors, "IN_QUERY_CHUNK", 2)
    first = raise_flags({0: (1, 0.8), 3: (0, 0.9), 5: (1, 0.9)})
    assert first.created == 3 and first.compared == 6
    flag_decide(flag_id=CatalogFlag.objects.get(product=catalog[5]).id, user=make_user("merchandiser"), action="keep")
    newer = ModelVersion.objects.create(kind="category", status="ready")
    with CaptureQueriesContext(connection) as queries:
        again = raise_flags({0: (2, 0.7), 5: (1, 0.9)}, version=newer)
    statements = [q["sql"] for q in queries.captured_queries]
    assert sum(sql.startswith("UPDATE") and "review_catalogflag" in sql for sql in statements) == 3  # one per chunk
    # p0 and p3 (first and second chunk) superseded; p5's kept value (third chunk) not flagged again.
    assert again.superseded == 2 and again.created == 1 and again.skipped_confirmed == 1
    assert [(f.product_id, f.predicted_value) for f in CatalogFlag.objects.filter(state="open")] == [(catalog[0].id, SHOES)]


def test_id_chunks_are_distinct_ascending_and_bounded(monkeypatch):
    from curation.catalog import selectors

    monkeypatch.setattr(selectors, "IN_QUERY_CHUNK", 3)
    assert list(selectors.id_chunks([9, 2, 7, 2, np.int64(5), 1, 8, 3])) == [[1, 2, 3], [5, 7, 8], [9]]
    assert list(selectors.id_chunks([])) == []
