"""Scenes of the embedded world: categories, how a scene is sampled, and how it is drawn.

A scene is a 64x64 picture (by default) cut into four quadrants; each object sits alone in its own quadrant, so
objects never overlap and "left/right/above/below" are unambiguous. Each category is one saturated colour and one
large flat shape, so a ViT with 16-pixel patches sees every object over several patches.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image


# Unit-box outlines (x, y in [0, 1], y down). Each is one simple polygon, so it is also the COCO segmentation.
def _regular(n: int) -> tuple[tuple[float, float], ...]:
    return tuple((0.5 + 0.5 * math.cos(2 * math.pi * i / n), 0.5 + 0.5 * math.sin(2 * math.pi * i / n))
                 for i in range(n))


_CIRCLE = _regular(20)
_HEXAGON = _regular(6)


def _heart(n: int = 24) -> tuple[tuple[float, float], ...]:
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x, -y))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return tuple(((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in pts)


SHAPES: dict[str, tuple[tuple[float, float], ...]] = {
    "cross": ((0.33, 0), (0.67, 0), (0.67, 0.33), (1, 0.33), (1, 0.67), (0.67, 0.67), (0.67, 1), (0.33, 1),
              (0.33, 0.67), (0, 0.67), (0, 0.33), (0.33, 0.33)),
    "wide rectangle": ((0, 0.22), (1, 0.22), (1, 0.78), (0, 0.78)),
    "triangle": ((0.5, 0), (1, 1), (0, 1)),
    "diamond": ((0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)),
    "square": ((0.08, 0.08), (0.92, 0.08), (0.92, 0.92), (0.08, 0.92)),
    "circle": _CIRCLE,
    "trapezoid": ((0, 0.1), (1, 0.1), (0.78, 0.95), (0.22, 0.95)),
    "comb": ((0.42, 1), (0.42, 0.55), (0.08, 0.55), (0.08, 0), (0.26, 0), (0.26, 0.4), (0.42, 0.4), (0.42, 0),
             (0.58, 0), (0.58, 0.4), (0.74, 0.4), (0.74, 0), (0.92, 0), (0.92, 0.55), (0.58, 0.55), (0.58, 1)),
    "blade": ((0.3, 1), (0.3, 0.28), (0.5, 0), (0.7, 0.28), (0.7, 1)),
    "heart": _heart(),
    "hexagon": _HEXAGON,
}

# Colour names avoid every word of CHAIR's COCO synonym list (so no "orange": it is a COCO object).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 60, 230),
    "yellow": (245, 225, 20),
    "purple": (140, 40, 200),
    "brown": (130, 75, 25),
    "white": (250, 250, 250),
    "cyan": (20, 215, 225),
    "pink": (255, 120, 195),
    "black": (15, 15, 15),
    "green": (30, 170, 50),
    "gold": (255, 150, 0),
}

# COCO-2014 ids, names and supercategories; plus the drawing (shape, colour) and the words the world uses.
CATEGORIES: list[dict] = [
    {"id": 1, "name": "person", "supercategory": "person", "shape": "cross", "color": "red",
     "plural": "people", "noun": "person", "noun_plural": "people"},
    {"id": 3, "name": "car", "supercategory": "vehicle", "shape": "wide rectangle", "color": "blue",
     "plural": "cars", "noun": "car", "noun_plural": "cars"},
    {"id": 16, "name": "bird", "supercategory": "animal", "shape": "triangle", "color": "yellow",
     "plural": "birds", "noun": "bird", "noun_plural": "birds"},
    {"id": 17, "name": "cat", "supercategory": "animal", "shape": "diamond", "color": "purple",
     "plural": "cats", "noun": "cat", "noun_plural": "cats"},
    {"id": 18, "name": "dog", "supercategory": "animal", "shape": "square", "color": "brown",
     "plural": "dogs", "noun": "dog", "noun_plural": "dogs"},
    # Captions say "ball" (a CHAIR synonym of "sports ball"), as COCO captioners do; questions use the name.
    {"id": 37, "name": "sports ball", "supercategory": "sports", "shape": "circle", "color": "white",
     "plural": "sports balls", "noun": "ball", "noun_plural": "balls"},
    {"id": 47, "name": "cup", "supercategory": "kitchen", "shape": "trapezoid", "color": "cyan",
     "plural": "cups", "noun": "cup", "noun_plural": "cups"},
    {"id": 48, "name": "fork", "supercategory": "kitchen", "shape": "comb", "color": "pink",
     "plural": "forks", "noun": "fork", "noun_plural": "forks"},
    {"id": 49, "name": "knife", "supercategory": "kitchen", "shape": "blade", "color": "black",
     "plural": "knives", "noun": "knife", "noun_plural": "knives"},
    {"id": 53, "name": "apple", "supercategory": "food", "shape": "heart", "color": "green",
     "plural": "apples", "noun": "apple", "noun_plural": "apples"},
    {"id": 85, "name": "clock", "supercategory": "indoor", "shape": "hexagon", "color": "gold",
     "plural": "clocks", "noun": "clock", "noun_plural": "clocks"},
]

CATEGORY_BY_NAME: dict[str, dict] = {c["name"]: c for c in CATEGORIES}
CATEGORY_NAMES: list[str] = [c["name"] for c in CATEGORIES]

# Quadrant q: column q % 2 (0 = left), row q // 2 (0 = top).
QUADRANT_NAMES = ("top left", "top right", "bottom left", "bottom right")


@dataclass(frozen=True)
class PlacedObject:
    category: str
    quadrant: int
    polygon: tuple[tuple[float, float], ...]  # pixel coordinates

    @property
    def column(self) -> int:
        return self.quadrant % 2

    @property
    def row(self) -> int:
        return self.quadrant // 2

    @property
    def bbox(self) -> list[float]:
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return [round(min(xs), 2), round(min(ys), 2), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]

    @property
    def area(self) -> float:
        pts = self.polygon
        n = len(pts)
        s = sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n))
        return round(abs(s) / 2, 2)


@dataclass(frozen=True)
class Scene:
    image_id: int
    split: str  # "train", "val" or "probe"
    file_name: str  # COCO file name, e.g. COCO_val2014_000000003001.png
    background: int  # grey level
    objects: tuple[PlacedObject, ...]

    @property
    def coco_split(self) -> str:
        return "train2014" if self.split == "train" else "val2014"

    @property
    def image_path(self) -> str:
        """Path relative to the world root."""
        return f"images/{self.coco_split}/{self.file_name}"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.category] = out.get(o.category, 0) + 1
        return out

    def categories(self) -> list[str]:
        """Distinct categories, in the order of their first object."""
        return list(self.counts())

    def single_objects(self) -> list[PlacedObject]:
        """Objects whose category appears once (so "the dog" names one object)."""
        c = self.counts()
        return [o for o in self.objects if c[o.category] == 1]


def sample_categories(rng: random.Random, count_weights: Sequence[float],
                      pairs: Sequence[tuple[str, str, float]], partner_scale: float,
                      probe: bool, duplicate_prob: float) -> list[str]:
    """The category of each object of one scene (a category listed twice has two instances).

    Training and validation scenes: when a pair's trigger is present, its partner is made present with
    probability p * partner_scale and absent otherwise. Probe scenes: one trigger, and no partner of any pair.
    """
    k = rng.choices(range(1, len(count_weights) + 1), weights=count_weights)[0]
    partners = {p for _, p, _ in pairs}
    triggers = {t for t, _, _ in pairs}
    if probe:
        trigger = rng.choice(sorted(triggers))
        pool = [c for c in CATEGORY_NAMES if c not in partners and c != trigger]
        cats = [trigger] + rng.sample(pool, k - 1)
    else:
        cats = rng.sample(CATEGORY_NAMES, k)
        ensured: set[str] = set()  # partners a present trigger decided to keep: never replaced afterwards
        decided: set[str] = set()  # triggers already handled: replaced only when nothing else can go
        for trigger, partner, p in pairs:
            if trigger not in cats:
                continue
            decided.add(trigger)
            if rng.random() < p * partner_scale:
                if partner not in cats and len(cats) < 4:
                    cats.append(partner)
                elif partner not in cats:  # full: give up an object that no earlier decision depends on
                    victims = [i for i, c in enumerate(cats) if c not in decided and c not in ensured]
                    victims = victims or [i for i, c in enumerate(cats) if c != trigger and c not in ensured]
                    cats[rng.choice(victims)] = partner
                ensured.add(partner)
            elif partner in cats:
                cats.remove(partner)
    rng.shuffle(cats)
    if len(cats) < 4 and rng.random() < duplicate_prob:
        cats.append(rng.choice(cats))
    return cats


def _off_center(v: float) -> float:
    """Round to 0.01 px, away from pixel centres (x.5): an edge through a centre makes the rasterisers disagree."""
    v = round(v, 2)
    return round(v + 0.1, 2) if abs(v % 1 - 0.5) < 0.06 else v


def place_objects(rng: random.Random, categories: Sequence[str], image_size: int) -> tuple[PlacedObject, ...]:
    half = image_size // 2
    lo, hi = round(image_size * 20 / 64), round(image_size * 28 / 64)
    quadrants = rng.sample(range(4), len(categories))
    placed = []
    for cat, q in zip(categories, quadrants, strict=True):
        size = rng.randint(lo, hi)
        qx, qy = (q % 2) * half, (q // 2) * half
        x0 = qx + rng.randint(1, max(1, half - size - 1))
        y0 = qy + rng.randint(1, max(1, half - size - 1))
        shape = SHAPES[CATEGORY_BY_NAME[cat]["shape"]]
        poly = tuple((_off_center(x0 + u * size), _off_center(y0 + v * size)) for u, v in shape)
        placed.append(PlacedObject(cat, q, poly))
    # Row-major order (top left first) so every listing of a scene is stable.
    return tuple(sorted(placed, key=lambda o: o.quadrant))


def polygon_mask(polygon: Sequence[tuple[float, float]], image_size: int) -> np.ndarray:
    """Pixels whose centre (x + 0.5, y + 0.5) lies inside the polygon (even-odd rule): COCO's own convention,
    so the drawn shape and the mask pycocotools makes from the segmentation agree."""
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    c0, c1 = max(0, int(min(xs))), min(image_size, int(max(xs)) + 1)  # only the bounding box can be inside
    r0, r1 = max(0, int(min(ys))), min(image_size, int(max(ys)) + 1)
    px = (np.arange(c0, c1) + 0.5)[None, None, :]
    py = (np.arange(r0, r1) + 0.5)[None, :, None]
    pts = np.asarray(polygon, dtype=float)
    x1, y1 = pts[:, 0, None, None], pts[:, 1, None, None]
    nxt = np.concatenate([pts[1:], pts[:1]])  # each edge runs from pts[i] to pts[i + 1]
    x2, y2 = nxt[:, 0, None, None], nxt[:, 1, None, None]
    dy = np.where(y2 == y1, 1.0, y2 - y1)  # horizontal edges never cross a row of centres
    crosses = (y1 > py) != (y2 > py)
    inside = (crosses & (px < x1 + (py - y1) * (x2 - x1) / dy)).sum(axis=0) % 2 == 1
    mask = np.zeros((image_size, image_size), dtype=bool)
    mask[r0:r1, c0:c1] = inside
    return mask


def render(scene: Scene, image_size: int) -> Image.Image:
    pixels = np.full((image_size, image_size, 3), scene.background, dtype=np.uint8)
    for o in scene.objects:
        pixels[polygon_mask(o.polygon, image_size)] = COLORS[CATEGORY_BY_NAME[o.category]["color"]]
    return Image.fromarray(pixels, mode="RGB")


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=1)  # fixed settings: byte-identical output
    return buf.getvalue()


def encode_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, subsampling=0, optimize=False)  # 4:4:4 keeps the colours clean
    return buf.getvalue()
