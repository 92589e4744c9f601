"""Fixtures for the training app: tiny catalogs with images, labels and outfits."""

from __future__ import annotations

import pytest

from tests.factories import make_product

# Four categories, two looks: the style rule of these tiny catalogs is "red goes with red".
TINY_CATEGORIES = (
    "Apparel > Topwear > Shirts",
    "Apparel > Bottomwear > Trousers",
    "Footwear > Shoes > Sneakers",
    "Accessories > Bags > Totes",
)

@pytest.fixture(autouse=True)
def _small_ml(settings):
    """Tiny, CPU-only models (tests/conftest.py's environment defaults come too late for settings)."""
    settings.ML_WEIGHTS = "none"
    settings.ML_IMAGE_SIZE = 64
    settings.ML_DEVICE = "cpu"
    settings.ML_LOADER_WORKERS = 0
    settings.ML_BATCH_SIZE = 16
    settings.ML_BF16 = False
    settings.TRAIN_CATEGORY_EPOCHS = 2
    settings.TRAIN_CATEGORY_MIN_STEPS = 20
    settings.TRAIN_SIAMESE_EPOCHS = 3
    settings.TRAIN_OUTFIT_EPOCHS = 3
    settings.MODEL_RELOAD_CHECK_SECONDS = 0
    settings.CANDIDATE_BATCH = 30  # a 24-product catalog has only 276 pairs


@pytest.fixture(autouse=True)
def _fresh_serving():
    from curation.training import serving

    serving.reset()
    yield
    serving.reset()


COLOURS = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Green": (30, 160, 60)}


@pytest.fixture
def tiny_catalog(db):
    """24 products: every category in three colours, two product models (variants) each."""
    products = []
    for c, category in enumerate(TINY_CATEGORIES):
        for colour, rgb in COLOURS.items():
            for variant in range(2):
                shade = tuple(min(255, v + 20 * variant) for v in rgb)
                products.append(
                    make_product(
                        category=category,
                        color=shade,
                        shape="rect" if c % 2 == 0 else "ellipse",
                        colour=colour,
                        product_model=f"M{c}-{colour}",
                    )
                )
    return products


@pytest.fixture
def tiny_labels(tiny_catalog, make_user):
    """Outfits (same colour across categories) and stylist labels on a tiny catalog."""
    from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel

    stylist = make_user("stylist", "stylist-labels")
    by_colour: dict[str, list] = {}
    for p in tiny_catalog:
        by_colour.setdefault(p.colour, []).append(p)
    n = 0
    for colour, items in by_colour.items():
        for variant in range(2):
            outfit = Outfit.objects.create(name=f"{colour} look {variant}", source=Outfit.Source.DEMO)
            look = [p for p in items if p.sku and items.index(p) % 2 == variant]
            for pos, product in enumerate(look):
                OutfitItem.objects.create(outfit=outfit, product=product, position=pos)
    # Negatives: different colours.
    colours = list(by_colour)
    for i, colour in enumerate(colours):
        other = by_colour[colours[(i + 1) % len(colours)]]
        for a, b in zip(by_colour[colour], other):
            lo, hi = sorted((a.id, b.id))
            pair = CandidatePair.objects.create(a_id=lo, b_id=hi, source=CandidatePair.Source.EXPLORATION,
                                                state=CandidatePair.State.DECIDED)
            PairLabel.objects.create(pair=pair, user=stylist, kind=PairLabel.Kind.STYLIST, value=PairLabel.Value.NOT_COMPLEMENTARY)
            n += 1
    return tiny_catalog
