"""The generated demo catalog: product images drawn with PIL, a hidden style rule, curated outfits,
and a few deliberately wrong categories.

THE HIDDEN STYLE RULE. Every demo product has a slot (top, bottom, dress, outerwear, shoes, bag,
accessory), a formality (0 casual, 1 smart, 2 formal), a colour (a hue on the colour wheel, or a
neutral: black, white, grey, beige) and a pattern (solid, stripes, checks, dots). Two products
are complementary exactly when all four hold:

1. their slots can be worn together: different slots, and a dress is not combined with a top or a
   bottom;
2. they have the same formality;
3. their colours harmonise: at least one is neutral, or their hues are within 30 degrees
   (analogous) or at least 150 degrees apart (complementary);
4. at most one of them is patterned (two patterns clash).

The rule is visible in the pictures, never in the catalog fields: formality shows in silhouette
details (sneaker / loafer / heel, backpack / tote / clutch, cap / bucket hat / fedora, skirt and
dress length, pockets versus buttons and creases) and in the pattern mix (formal items are mostly
solid or pin-striped, casual ones dotted or checked). Curated outfits (pairs.Outfit, source=demo)
are sampled so that every two of their items satisfy the rule; stylist labels are left to the app.

About 3% of products are given a wrong category; DemoTruth keeps the true one, so tests and the
demo evaluation can check that the catalog-error review finds them.

Everything is a function of (products, seed): the same arguments give the same SKUs, attributes
and image bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image, ImageDraw, ImageFilter

from curation.catalog.models import DemoTruth, Product
from curation.catalog.services import NewProduct, ValidatedImage, category_get_or_create_path, image_store, products_create_bulk
from curation.pairs.models import Outfit, OutfitItem

IMAGE_SIZE = (192, 256)
MISCATEGORISED_SHARE = 0.03
FORMALITY_NAMES = ("casual", "smart", "formal")
PATTERNS = ("solid", "stripes", "checks", "dots")
NEUTRAL_HUE = -1.0  # DemoTruth.hue of black, white, grey and beige


@dataclass(frozen=True)
class Kind:
    key: str
    path: str
    slot: str
    noun: str
    weight: int


KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind("tops", "Apparel > Topwear > Tops", "top", "Top", 14),
        Kind("shirts", "Apparel > Topwear > Shirts", "top", "Shirt", 12),
        Kind("trousers", "Apparel > Bottomwear > Trousers", "bottom", "Trousers", 13),
        Kind("skirts", "Apparel > Bottomwear > Skirts", "bottom", "Skirt", 8),
        Kind("dresses", "Apparel > Dresses > Dresses", "dress", "Dress", 10),
        Kind("outerwear", "Apparel > Outerwear > Jackets", "outerwear", "Jacket", 8),
        Kind("shoes", "Footwear > Shoes > Shoes", "shoes", "Shoes", 16),
        Kind("bags", "Accessories > Bags > Handbags", "bag", "Bag", 10),
        Kind("accessories", "Accessories > Headwear > Hats", "accessory", "Hat", 7),
    )
}
SLOT_BY_PATH = {k.path: k.slot for k in KINDS.values()}

# The wrong category a miscategorised product gets: a plausible data-entry slip, but a different
# silhouette, so an image model can notice it.
CONFUSION = {
    "tops": "dresses", "shirts": "outerwear", "trousers": "skirts", "skirts": "trousers",
    "dresses": "skirts", "outerwear": "shirts", "shoes": "bags", "bags": "shoes", "accessories": "bags",
}

# name, hue in degrees (None = neutral), saturation, value
PALETTE = (
    ("Red", 0, 0.80, 0.85), ("Orange", 28, 0.85, 0.95), ("Mustard", 45, 0.80, 0.85), ("Yellow", 56, 0.75, 0.98),
    ("Olive", 75, 0.60, 0.55), ("Green", 130, 0.65, 0.65), ("Teal", 175, 0.75, 0.60), ("Sky Blue", 200, 0.55, 0.95),
    ("Blue", 220, 0.75, 0.80), ("Navy Blue", 228, 0.75, 0.40), ("Purple", 275, 0.60, 0.65), ("Pink", 330, 0.45, 0.95),
    ("Burgundy", 345, 0.75, 0.45),
    ("Black", None, 0.0, 0.12), ("White", None, 0.0, 0.97), ("Grey", None, 0.0, 0.60), ("Beige", None, 0.22, 0.90),
)
NEUTRAL_SHARE = 0.3
PATTERN_WEIGHTS = {  # by formality: formal items are mostly plain, casual ones busier
    0: {"solid": 35, "stripes": 15, "checks": 20, "dots": 30},
    1: {"solid": 45, "stripes": 35, "checks": 20, "dots": 0},
    2: {"solid": 70, "stripes": 30, "checks": 0, "dots": 0},
}
BRANDS = ("Northwind", "Atelier Nine", "Lumen", "Cobalt & Co", "Fjord", "Maison Vert", "Kestrel", "Oakline")
SEASONS = ("Spring", "Summer", "Fall", "Winter")
PATTERN_WORDS = {"solid": "", "stripes": "Striped", "checks": "Checked", "dots": "Polka Dot"}


# --- The rule -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StyleFacts:
    slot: str
    formality: int
    hue: float  # NEUTRAL_HUE for neutrals
    pattern: str


def slots_compatible(a: str, b: str) -> bool:
    if a == b:
        return False
    return not ({a, b} & {"dress"} and {a, b} & {"top", "bottom"})


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def colours_harmonise(a: float, b: float) -> bool:
    if a < 0 or b < 0:
        return True
    d = hue_distance(a, b)
    return d <= 30.0 or d >= 150.0


def style_complementary(a: StyleFacts, b: StyleFacts) -> bool:
    """The hidden rule (module docstring): slots, formality, colour harmony, one pattern at most."""
    return (
        slots_compatible(a.slot, b.slot)
        and a.formality == b.formality
        and colours_harmonise(a.hue, b.hue)
        and not (a.pattern != "solid" and b.pattern != "solid")
    )


# --- The plan (pure: no database, no files) ------------------------------------------------------


@dataclass
class DemoItem:
    index: int
    sku: str
    title: str
    brand: str
    gender: str
    season: str
    kind: str
    catalog_kind: str  # differs from kind when miscategorised
    formality: int
    pattern: str
    colour: str
    hue: float
    rgb: tuple[int, int, int]
    product_model: str
    in_stock: bool
    shape: dict = field(default_factory=dict)

    @property
    def facts(self) -> StyleFacts:
        return StyleFacts(KINDS[self.kind].slot, self.formality, self.hue, self.pattern)

    @property
    def miscategorised(self) -> bool:
        return self.kind != self.catalog_kind


@dataclass
class DemoPlan:
    seed: int
    items: list[DemoItem]
    outfits: list[list[int]]  # item indexes, in wearing order


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360.0, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def demo_plan(*, products: int, seed: int) -> DemoPlan:
    """Decide every demo product and outfit for (products, seed), without touching anything."""
    if products < 1:
        raise ValueError("--products must be at least 1")
    rng = random.Random(seed)
    kinds = list(KINDS.values())
    items: list[DemoItem] = []
    model_index = 0
    while len(items) < products:
        model_index += 1
        kind = rng.choices(kinds, weights=[k.weight for k in kinds])[0]
        formality = rng.randrange(3)
        weights = PATTERN_WEIGHTS[formality]
        pattern = rng.choices(list(weights), weights=list(weights.values()))[0]
        shape = {
            "scale": rng.uniform(0.80, 1.0),
            "dx": rng.uniform(-12, 12),
            "dy": rng.uniform(-10, 10),
            "widen": rng.uniform(0.9, 1.1),
            "stripe_vertical": rng.random() < 0.5,
            "period": rng.randint(10, 18) if formality < 2 else rng.randint(6, 9),
            "detail": rng.random(),
        }
        brand = rng.choice(BRANDS)
        gender = "Women" if kind.key in ("dresses", "skirts") else rng.choice(("Women", "Men", "Unisex"))
        season = rng.choice(SEASONS)
        variants = min(rng.choice((1, 1, 2, 2, 3)), products - len(items))
        used_colours: set[str] = set()
        for _ in range(variants):
            if rng.random() < NEUTRAL_SHARE:
                choices = [c for c in PALETTE if c[1] is None and c[0] not in used_colours]
            else:
                choices = [c for c in PALETTE if c[1] is not None and c[0] not in used_colours]
            name, base_hue, sat, val = rng.choice(choices or list(PALETTE))
            used_colours.add(name)
            hue = NEUTRAL_HUE if base_hue is None else (base_hue + rng.uniform(-8, 8)) % 360.0
            # Neutrals are drawn with a warm tint (only beige has saturation enough to show it).
            rgb = _rgb(38.0 if base_hue is None else hue, sat, val)
            index = len(items)
            words = [brand, gender if gender != "Unisex" else "", name, PATTERN_WORDS[pattern], kind.noun]
            items.append(
                DemoItem(
                    index=index,
                    sku=f"DEMO-{seed}-{index + 1:05d}",
                    title=" ".join(w for w in words if w),
                    brand=brand,
                    gender=gender,
                    season=season,
                    kind=kind.key,
                    catalog_kind=kind.key,
                    formality=formality,
                    pattern=pattern,
                    colour=name,
                    hue=round(hue, 2),
                    rgb=rgb,
                    product_model=f"demo-{seed}-m{model_index:05d}",
                    in_stock=rng.random() < 0.92,
                    shape=dict(shape),
                )
            )
    wrong = round(MISCATEGORISED_SHARE * products)
    for item in rng.sample(items, wrong):
        item.catalog_kind = CONFUSION[item.kind]
    return DemoPlan(seed=seed, items=items, outfits=_plan_outfits(items, rng))


def _plan_outfits(items: list[DemoItem], rng: random.Random) -> list[list[int]]:
    """Sample outfits in which every two items satisfy the rule (top+bottom+shoes or dress+shoes,
    sometimes with a bag or outerwear)."""
    pool: dict[str, list[DemoItem]] = {}
    for item in items:
        if not item.miscategorised:  # a curated look is built from correctly listed products
            pool.setdefault(KINDS[item.kind].slot, []).append(item)
    target = max(1, len(items) // 8)
    outfits: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(target * 20):
        if len(outfits) >= target:
            break
        base = ["dress", "shoes"] if rng.random() < 0.3 else ["top", "bottom", "shoes"]
        extras = [slot for slot in ("bag", "outerwear") if rng.random() < 0.4]
        chosen: list[DemoItem] = []
        for slot in base + extras:
            candidates = [c for c in pool.get(slot, []) if all(style_complementary(c.facts, o.facts) for o in chosen)]
            if not candidates:
                if slot in base:
                    chosen = []
                break
            chosen.append(rng.choice(candidates))
        if len(chosen) >= len(base):
            key = tuple(sorted(c.index for c in chosen))
            if key not in seen:
                seen.add(key)
                outfits.append([c.index for c in chosen])
    return outfits


# --- Drawing ------------------------------------------------------------------------------------


def _mix(rgb: tuple[int, int, int], other: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(a + (b - a) * t) for a, b in zip(rgb, other))  # type: ignore[return-value]


def _fabric(item: DemoItem) -> Image.Image:
    w, h = IMAGE_SIZE
    base = item.rgb
    light = sum(base) / 3 > 150
    ink = _mix(base, (0, 0, 0), 0.45) if light else _mix(base, (255, 255, 255), 0.6)
    img = Image.new("RGB", IMAGE_SIZE, base)
    draw = ImageDraw.Draw(img)
    period = item.shape["period"]
    if item.pattern == "stripes":
        band = max(2, period // 3)
        for pos in range(0, max(w, h), period):
            if item.shape["stripe_vertical"]:
                draw.rectangle([pos, 0, pos + band - 1, h], fill=ink)
            else:
                draw.rectangle([0, pos, w, pos + band - 1], fill=ink)
    elif item.pattern == "checks":
        for pos in range(0, max(w, h), period):
            draw.rectangle([pos, 0, pos + 2, h], fill=ink)
            draw.rectangle([0, pos, w, pos + 2], fill=ink)
    elif item.pattern == "dots":
        r = max(2, period // 5)
        for row, y in enumerate(range(0, h + period, period)):
            for x in range((row % 2) * period // 2, w + period, period):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    return img


class _Pen:
    """Maps unit coordinates (0..1 across the canvas) to pixels with the item's scale and offset."""

    def __init__(self, shape: dict):
        self.w, self.h = IMAGE_SIZE
        self.s, self.dx, self.dy, self.widen = shape["scale"], shape["dx"], shape["dy"], shape["widen"]

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.w / 2 + (x - 0.5) * self.w * self.s * self.widen + self.dx,
            self.h / 2 + (y - 0.5) * self.h * self.s + self.dy,
        )

    def poly(self, points) -> list[tuple[float, float]]:
        return [self.p(x, y) for x, y in points]

    def box(self, x0, y0, x1, y1) -> list[float]:
        (a, b), (c, d) = self.p(x0, y0), self.p(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]


def _silhouette(item: DemoItem, pen: _Pen, mask: ImageDraw.ImageDraw, details: list) -> None:
    """Draw the item's shape on ``mask`` (255 = fabric); append (kind, args) detail strokes."""
    f = item.formality
    k = item.kind
    if k == "tops":
        mask.polygon(pen.poly([(0.30, 0.15), (0.42, 0.12), (0.58, 0.12), (0.70, 0.15), (0.92, 0.30), (0.84, 0.40),
                               (0.74, 0.34), (0.74, 0.85), (0.26, 0.85), (0.26, 0.34), (0.16, 0.40), (0.08, 0.30)]), fill=255)
        if f == 2:
            mask.polygon(pen.poly([(0.42, 0.12), (0.58, 0.12), (0.50, 0.26)]), fill=0)  # V neck
        else:
            mask.ellipse(pen.box(0.42, 0.08, 0.58, 0.19), fill=0)
        if f == 0:
            details.append(("rect", pen.box(0.56, 0.36, 0.67, 0.47)))  # chest pocket
    elif k == "shirts":
        mask.polygon(pen.poly([(0.30, 0.13), (0.70, 0.13), (0.90, 0.25), (0.97, 0.75), (0.87, 0.77), (0.77, 0.38),
                               (0.76, 0.88), (0.24, 0.88), (0.23, 0.38), (0.13, 0.77), (0.03, 0.75), (0.10, 0.25)]), fill=255)
        details.append(("poly", pen.poly([(0.38, 0.11), (0.50, 0.23), (0.36, 0.21)])))
        details.append(("poly", pen.poly([(0.62, 0.11), (0.50, 0.23), (0.64, 0.21)])))
        details.append(("line", pen.poly([(0.50, 0.23), (0.50, 0.88)])))
        if f >= 1:
            for i in range(5):
                details.append(("dot", pen.p(0.53, 0.30 + i * 0.11)))
        if f == 0:
            details.append(("rect", pen.box(0.30, 0.33, 0.42, 0.44)))
    elif k == "trousers":
        flare = 0.04 if f == 0 else 0.0
        mask.polygon(pen.poly([(0.28, 0.08), (0.72, 0.08), (0.77 + flare, 0.92), (0.56, 0.92), (0.50, 0.35),
                               (0.44, 0.92), (0.23 - flare, 0.92)]), fill=255)
        details.append(("line", pen.poly([(0.28, 0.13), (0.72, 0.13)])))
        if f == 0:
            details.append(("line", pen.poly([(0.23, 0.86), (0.44, 0.86)])))
            details.append(("line", pen.poly([(0.56, 0.86), (0.77, 0.86)])))
        if f == 2:
            details.append(("line", pen.poly([(0.36, 0.18), (0.34, 0.90)])))
            details.append(("line", pen.poly([(0.64, 0.18), (0.66, 0.90)])))
    elif k == "skirts":
        shape = {
            0: [(0.32, 0.20), (0.68, 0.20), (0.84, 0.58), (0.16, 0.58)],
            1: [(0.32, 0.14), (0.68, 0.14), (0.80, 0.74), (0.20, 0.74)],
            2: [(0.34, 0.12), (0.66, 0.12), (0.65, 0.84), (0.35, 0.84)],
        }[f]
        mask.polygon(pen.poly(shape), fill=255)
        details.append(("line", pen.poly([shape[0], shape[1]])))
        if f == 2:
            details.append(("line", pen.poly([(0.50, 0.70), (0.50, 0.84)])))
    elif k == "dresses":
        hem = {0: 0.66, 1: 0.80, 2: 0.95}[f]
        width = {0: 0.24, 1: 0.18, 2: 0.14}[f]
        mask.polygon(pen.poly([(0.36, 0.14), (0.64, 0.14), (0.61, 0.40), (0.62 + width, hem), (0.38 - width, hem),
                               (0.39, 0.40)]), fill=255)
        details.append(("line", pen.poly([(0.40, 0.05), (0.40, 0.14)])))
        details.append(("line", pen.poly([(0.60, 0.05), (0.60, 0.14)])))
        details.append(("line", pen.poly([(0.39, 0.40), (0.61, 0.40)])))
    elif k == "outerwear":
        # A coat: wider shoulders and sleeves than a shirt, longer, flared at the hem.
        mask.polygon(pen.poly([(0.27, 0.10), (0.73, 0.10), (0.95, 0.22), (1.00, 0.80), (0.85, 0.83), (0.79, 0.42),
                               (0.85, 0.99), (0.15, 0.99), (0.21, 0.42), (0.15, 0.83), (0.00, 0.80), (0.05, 0.22)]), fill=255)
        if f == 0:  # hoodie: hood and pouch pocket
            mask.ellipse(pen.box(0.36, 0.02, 0.64, 0.22), fill=255)
            details.append(("rect", pen.box(0.34, 0.62, 0.66, 0.80)))
            details.append(("line", pen.poly([(0.50, 0.20), (0.50, 0.92)])))
        elif f == 1:
            details.append(("line", pen.poly([(0.50, 0.14), (0.50, 0.92)])))
            details.append(("rect", pen.box(0.27, 0.60, 0.40, 0.70)))
            details.append(("rect", pen.box(0.60, 0.60, 0.73, 0.70)))
        else:  # blazer: open V front with lapels and buttons
            mask.polygon(pen.poly([(0.42, 0.12), (0.58, 0.12), (0.50, 0.48)]), fill=0)
            details.append(("poly", pen.poly([(0.42, 0.12), (0.36, 0.30), (0.50, 0.48)])))
            details.append(("poly", pen.poly([(0.58, 0.12), (0.64, 0.30), (0.50, 0.48)])))
            details.append(("dot", pen.p(0.50, 0.58)))
            details.append(("dot", pen.p(0.50, 0.70)))
    elif k == "shoes":
        if f == 0:  # sneaker: thick white sole, laces
            mask.polygon(pen.poly([(0.10, 0.56), (0.40, 0.46), (0.58, 0.38), (0.72, 0.38), (0.76, 0.54), (0.92, 0.60),
                                   (0.92, 0.70), (0.10, 0.70)]), fill=255)
            details.append(("sole", pen.box(0.08, 0.70, 0.94, 0.78)))
            for i in range(3):
                details.append(("line", pen.poly([(0.46 + i * 0.07, 0.47 - i * 0.03), (0.52 + i * 0.07, 0.52 - i * 0.03)])))
        elif f == 1:  # loafer: low, thin dark sole
            mask.polygon(pen.poly([(0.10, 0.60), (0.35, 0.52), (0.70, 0.50), (0.90, 0.60), (0.92, 0.68), (0.10, 0.68)]), fill=255)
            details.append(("darksole", pen.box(0.09, 0.68, 0.93, 0.71)))
            details.append(("line", pen.poly([(0.40, 0.55), (0.62, 0.53)])))
        else:  # heeled pump
            mask.polygon(pen.poly([(0.12, 0.62), (0.50, 0.52), (0.78, 0.40), (0.86, 0.40), (0.86, 0.48), (0.80, 0.80),
                                   (0.75, 0.80), (0.73, 0.58), (0.30, 0.70), (0.12, 0.70)]), fill=255)
    elif k == "bags":
        if f == 0:  # backpack
            mask.rounded_rectangle(pen.box(0.24, 0.22, 0.76, 0.86), radius=14, fill=255)
            details.append(("arc", pen.box(0.38, 0.12, 0.62, 0.32)))
            details.append(("rect", pen.box(0.32, 0.56, 0.68, 0.80)))
        elif f == 1:  # tote with two handles
            mask.polygon(pen.poly([(0.20, 0.40), (0.80, 0.40), (0.73, 0.86), (0.27, 0.86)]), fill=255)
            details.append(("arc", pen.box(0.30, 0.20, 0.50, 0.60)))
            details.append(("arc", pen.box(0.50, 0.20, 0.70, 0.60)))
        else:  # clutch with a flap
            mask.rectangle(pen.box(0.18, 0.44, 0.82, 0.68), fill=255)
            details.append(("poly", pen.poly([(0.18, 0.44), (0.82, 0.44), (0.50, 0.58)])))
    else:  # accessories: hats
        if f == 0:  # cap with a visor
            mask.pieslice(pen.box(0.26, 0.34, 0.74, 0.80), 180, 360, fill=255)
            mask.ellipse(pen.box(0.56, 0.52, 0.94, 0.62), fill=255)
        elif f == 1:  # bucket hat
            mask.polygon(pen.poly([(0.34, 0.36), (0.66, 0.36), (0.72, 0.58), (0.28, 0.58)]), fill=255)
            mask.polygon(pen.poly([(0.28, 0.56), (0.72, 0.56), (0.86, 0.68), (0.14, 0.68)]), fill=255)
        else:  # fedora: pinched crown, wide flat brim, band
            mask.polygon(pen.poly([(0.34, 0.36), (0.46, 0.32), (0.50, 0.36), (0.54, 0.32), (0.66, 0.36), (0.68, 0.58),
                                   (0.32, 0.58)]), fill=255)
            mask.ellipse(pen.box(0.08, 0.54, 0.92, 0.64), fill=255)
            details.append(("band", pen.box(0.32, 0.50, 0.68, 0.55)))


def demo_render(item: DemoItem) -> bytes:
    """The product photo as JPEG bytes: a patterned silhouette with details on white."""
    pen = _Pen(item.shape)
    mask_img = Image.new("L", IMAGE_SIZE, 0)
    details: list = []
    _silhouette(item, pen, ImageDraw.Draw(mask_img), details)
    img = Image.new("RGB", IMAGE_SIZE, (255, 255, 255))
    img.paste(_fabric(item), mask=mask_img)
    outline = _mix(item.rgb, (0, 0, 0), 0.55)
    edges = mask_img.filter(ImageFilter.FIND_EDGES)
    img.paste(Image.new("RGB", IMAGE_SIZE, outline), mask=edges)
    draw = ImageDraw.Draw(img)
    for kind, args in details:
        if kind == "line":
            draw.line(args, fill=outline, width=2)
        elif kind == "poly":
            draw.polygon(args, outline=outline)
        elif kind == "rect":
            draw.rectangle(args, outline=outline, width=2)
        elif kind == "dot":
            x, y = args
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=outline)
        elif kind == "arc":
            draw.arc(args, 180, 360, fill=outline, width=4)
        elif kind == "sole":
            draw.rectangle(args, fill=(250, 250, 250), outline=(90, 90, 90), width=2)
        elif kind == "darksole":
            draw.rectangle(args, fill=(40, 30, 25))
        elif kind == "band":
            draw.rectangle(args, fill=_mix(item.rgb, (0, 0, 0), 0.7))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# --- Writing the plan ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    products: int
    outfits: int
    miscategorised: int
    categories: int
    skus: list[str]


class DemoCatalogError(Exception):
    pass


def demo_catalog_create(*, products: int, seed: int, progress=None) -> DemoResult:
    """Write the demo plan: categories, products with images, DemoTruth rows and demo outfits.

    One transaction; image files written by a failed run are deleted. Refuses when the seed's
    demo SKUs already exist.
    """
    progress = progress or (lambda phase, done, total: None)
    plan = demo_plan(products=products, seed=seed)
    clash = Product.objects.filter(sku__in=[item.sku for item in plan.items]).values_list("sku", flat=True)[:3]
    if clash:
        raise DemoCatalogError(
            f"demo products for seed {seed} already exist ({', '.join(clash)}, ...): use another --seed, "
            "--if-empty, or a fresh database"
        )
    written: list[str] = []
    try:
        with transaction.atomic():
            categories = {key: category_get_or_create_path(names=kind.path) for key, kind in KINDS.items()}
            new_products: list[NewProduct] = []
            for done, item in enumerate(plan.items, start=1):
                data = demo_render(item)
                sha = hashlib.sha256(data).hexdigest()
                name, was_written = image_store(data=data, sha256=sha, extension="jpg")
                if was_written:
                    written.append(name)
                new_products.append(
                    NewProduct(
                        sku=item.sku,
                        title=item.title,
                        category=categories[item.catalog_kind],
                        image_name=name,
                        image=ValidatedImage(sha, IMAGE_SIZE[0], IMAGE_SIZE[1], "JPEG", len(data), b""),
                        fields={
                            "brand": item.brand,
                            "gender": item.gender,
                            "colour": item.colour,
                            "season": item.season,
                            "product_model": item.product_model,
                            "in_stock": item.in_stock,
                        },
                    )
                )
                progress("demo products", done, len(plan.items))
            created = products_create_bulk(items=new_products, reason="demo catalog")
            product_ids = [product.pk for product in created]
            DemoTruth.objects.bulk_create(
                DemoTruth(
                    product=product,
                    true_category=categories[item.kind],
                    miscategorised=item.miscategorised,
                    formality=item.formality,
                    hue=item.hue,
                    pattern=item.pattern,
                )
                for item, product in zip(plan.items, created)
            )
            for number, members in enumerate(plan.outfits, start=1):
                outfit = Outfit.objects.create(
                    name=f"Demo look {number}",
                    external_id=f"demo:{seed}:{number}",
                    source=Outfit.Source.DEMO,
                )
                OutfitItem.objects.bulk_create(
                    OutfitItem(outfit=outfit, product_id=product_ids[index], position=position)
                    for position, index in enumerate(members)
                )
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    return DemoResult(
        products=len(plan.items),
        outfits=len(plan.outfits),
        miscategorised=sum(item.miscategorised for item in plan.items),
        categories=len(KINDS),
        skus=[item.sku for item in plan.items],
    )


def demo_facts_for(*, true_category_path: str, formality: int, hue: float, pattern: str) -> StyleFacts | None:
    slot = SLOT_BY_PATH.get(true_category_path)
    return StyleFacts(slot, formality, hue, pattern) if slot else None
