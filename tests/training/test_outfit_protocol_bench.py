"""bench/outfit_protocol.py's outfit rule: what the bench measures is only as good as its outfits."""

import importlib.util
import itertools
import random
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("outfit_protocol", Path(__file__).resolve().parents[2] / "bench" / "outfit_protocol.py")


@pytest.fixture(scope="module")
def protocol():
    module = importlib.util.module_from_spec(SPEC)
    SPEC.loader.exec_module(module)
    return module


def _row(slot, sub, usage="Casual", gender="Men", season="Fall", colour="Black"):
    return {"slot": slot, "subCategory": sub, "usage": usage, "gender": gender, "season": season, "baseColour": colour}


def test_rule_needs_usage_gender_season_and_colours_to_agree(protocol):
    shirt = _row("top", "Topwear", colour="Red")
    assert protocol.goes_with(shirt, _row("bottom", "Bottomwear", colour="Navy Blue"))
    assert protocol.goes_with(shirt, _row("bottom", "Bottomwear", colour="Red"))
    assert not protocol.goes_with(shirt, _row("bottom", "Bottomwear", colour="Green"))  # two loud colours
    assert not protocol.goes_with(shirt, _row("bottom", "Bottomwear", usage="Formal"))
    assert not protocol.goes_with(shirt, _row("bottom", "Bottomwear", gender="Women"))
    assert protocol.goes_with(shirt, _row("shoes", "Shoes", gender="Unisex"))
    assert not protocol.goes_with(_row("top", "Topwear", season="Summer"), _row("shoes", "Shoes", season="Winter"))


def test_outfits_follow_the_rule_and_use_each_item_at_most_max_uses(protocol):
    rng = random.Random(0)
    rows = []
    for i in range(300):
        slot, sub = rng.choice([("top", "Topwear"), ("bottom", "Bottomwear"), ("shoes", "Shoes"), ("accessory", "Watches"),
                                ("accessory", "Bags"), ("dress", "Dress")])
        rows.append(_row(slot, sub, usage=rng.choice(["Casual", "Formal"]), gender=rng.choice(["Men", "Women", "Unisex"]),
                         season=rng.choice(["Summer", "Winter", "Fall"]), colour=rng.choice(["Black", "Red", "Green", "White"])))
    outfits = protocol.make_outfits(rows, 60, random.Random(1), max_uses=2)
    assert 30 <= len(outfits) <= 60
    uses = {}
    for outfit in outfits:
        slots = [rows[i]["slot"] for i in outfit]
        assert "shoes" in slots and ("dress" in slots or {"top", "bottom"} <= set(slots))
        assert all(protocol.goes_with(rows[a], rows[b]) for a, b in itertools.combinations(outfit, 2))
        accessories = [rows[i]["subCategory"] for i in outfit if rows[i]["slot"] == "accessory"]
        assert len(accessories) == len(set(accessories))
        for i in outfit:
            uses[i] = uses.get(i, 0) + 1
    assert max(uses.values()) <= 2
