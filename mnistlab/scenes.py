"""Realistic, deterministic phone photos of handwritten and printed digits: to judge the digit
locator on (bench/photos.py) and, made of training digits, to train the classifier on digits as a
photo shows them (photocrops.py).

    python -m mnistlab.scenes --out /tmp/scenes --condition ruled-blue --count 8 --split tune
    python -m mnistlab.scenes --out /tmp/scenes --condition all --count 8 --sheet

A scene is made the way a photo comes about: a surface (paper, a sticky note or a page on a desk,
a whiteboard, a chalkboard) with ink multiplied onto it, light falling on it (a shadow, a gradient,
the colour of the light, a glare spot), a camera looking at it (perspective, rotation, defocus,
shake, noise, sharpening, JPEG) and sometimes the phone's orientation kept in an EXIF tag instead
of the pixels. For benchmarks the handwriting is MNIST's test set: indices 0-4999 to tune on
("tune"), 5000-9999 to hold out ("holdout"); for training, the training images it is given
("train"). `make_scene(condition, seed, DigitSource.load(data_dir, split))` is the whole interface.
"""

import argparse
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.morphology import skeletonize

SPLITS = {"tune": (0, 5000), "holdout": (5000, 10000), "train": (0, None)}  # "train": every image given
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf",
    "LiberationSans-Italic.ttf", "LiberationSansNarrow-Regular.ttf", "LiberationSerif-Regular.ttf",
    "LiberationSerif-Bold.ttf", "LiberationSerif-Italic.ttf", "LiberationMono-Regular.ttf",
    "LiberationMono-Bold.ttf",
)
# Letters that no reader should take for a digit (no O, l, I, S, Z, B, g, q, T, G).
LETTERS = "AxkMHKRWEFhmwnNXrAxkM"

# What each condition shows: "digit" (one), "number" (2-6 digits), "blank" (nothing to read) or
# "junk" (marks that are not digits: scribbles, letters, stains). The right answer for blank and
# junk is no confident digit.
KINDS = {
    "ruled-blue": "digit",           # notebook page, blue rules (a red margin sometimes), blue or black pen
    "ruled-black-shadow": "digit",   # ruled page, black pen, a strong shadow across it
    "grid": "digit",                 # squared, graph or dotted-grid paper
    "pencil": "digit",               # pencil on plain, ruled or grid paper: faint and grainy
    "sticky-note": "digit",          # a sticky note lying on a desk
    "coloured-paper": "digit",       # yellow, pink, grey, green, blue or recycled paper; blue, red, green ink
    "whiteboard": "digit",           # marker on a glossy whiteboard with glare and ghosts of old writing
    "chalkboard": "digit",           # chalk on a green or black board with chalk dust
    "page-on-desk": "digit",         # a page that does not fill the frame, at an angle, desk around it
    "small-digit": "digit",          # a 20-45 px digit somewhere in a 1200x900 photo
    "printed": "digit",              # one printed digit, in one of 18 fonts
    "printed-number": "number",      # a printed number of 2-6 digits
    "number": "number",              # 2-5 handwritten digits on mixed surfaces
    "number-touching": "number",     # 2-6 handwritten digits, neighbours touching or overlapping
    "number-lines": "lines",         # 2-3 numbers of 2-5 handwritten digits, one under the other
    "blank": "blank",                # ruled/grid pages, notes, desks and boards with nothing written
    "junk": "junk",                  # a scribble, letters, a smiley, a coffee ring or a smudge
    "canvas": "digit",               # the drawing page's 280x280 canvas (white on black or black on white)
    "phone-12mp": "digit",           # a 4000x3000 phone photo of one digit
}
CONDITIONS = tuple(KINDS)
OUT = (1200, 900)  # (width, height) of a landscape photo


@dataclass
class Scene:
    jpeg: bytes  # the encoded photo: JPEG, except some canvas scenes, which are PNG like a browser sends
    text: str | None  # the digits left to right in the upright view; None for blank and junk scenes
    boxes: list[tuple[int, int, int, int]]  # (x, y, w, h) per digit in the upright view
    kind: str  # "digit", "number", "lines" (a page of numbers, text with "\n" between), "blank" or "junk"
    condition: str
    size: tuple[int, int] = (0, 0)  # (width, height) of the upright view
    orientation: int = 1  # the EXIF Orientation tag (1: pixels stored upright, no tag)
    mnist_indices: list[int] = field(default_factory=list)  # MNIST test indices of the handwriting
    details: dict = field(default_factory=dict)  # surface, ink, digit height, ...: for failure analysis

    @property
    def suffix(self) -> str:
        return ".png" if self.jpeg[:4] == b"\x89PNG" else ".jpg"


class DigitSource:
    """The digits of one split (test images for benchmarks, training images for training) and fonts for
    printed digits."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, split: str = "tune"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        lo, hi = SPLITS[split]
        self.split = split
        self.images, self.labels = np.asarray(images), np.asarray(labels)
        self.indices = np.arange(lo, len(self.images) if hi is None else min(hi, len(self.images)))
        self.fonts = [d / f for d in FONT_DIRS for f in FONT_FILES if (d / f).exists()] or [None]

    @classmethod
    def load(cls, data_dir=None, split: str = "tune") -> "DigitSource":
        from . import data

        d = data.load("mnist", data_dir, progress=False)
        return cls(d.test_images.numpy(), d.test_labels.numpy(), split)

    def handwritten(self, rng) -> tuple[np.ndarray, str, int]:
        """A random digit of this split: (28, 28) uint8 white on black, its label, its index."""
        i = int(rng.choice(self.indices))
        return self.images[i], str(int(self.labels[i])), i

    def font(self, rng, size: int):
        path = self.fonts[rng.integers(len(self.fonts))]
        return font_at(path, size)


def font_at(path, size: int):
    """A TrueType font, or Pillow's own when the file is missing (a machine without DejaVu/Liberation)."""
    try:
        return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size=size)
    except OSError:
        return ImageFont.load_default(size=size)


def seeded(condition: str, seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(condition.encode()), seed, list(SPLITS).index(split)])


# --- Fields and glyphs ----------------------------------------------------------------------------


def smooth_noise(h: int, w: int, cell: float, rng, cell_x: float | None = None) -> np.ndarray:
    """A smooth random field (h, w) float32 in about [0, 1], with features about `cell` pixels across
    (`cell_x` wide, if given: streaks)."""
    small = rng.random((max(2, int(h / cell) + 2), max(2, int(w / (cell_x or cell)) + 2)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def pen_alpha(shape: np.ndarray, width: float, rng) -> np.ndarray:
    """Redraw a filled shape (bool) with a round pen of `width` pixels along its skeleton, pressure
    varying along the stroke: float32 coverage in [0, 1] with one-pixel anti-aliased edges."""
    skeleton = skeletonize(shape)
    if not skeleton.any():
        skeleton = shape
    distance = cv2.distanceTransform((~skeleton).astype(np.uint8), cv2.DIST_L2, 5)
    h, w = shape.shape
    radius = width / 2 * (0.75 + 0.5 * smooth_noise(h, w, max(8.0, 4 * width), rng))
    return np.clip(radius + 0.5 - distance, 0, 1)


def handwritten_alpha(img28: np.ndarray, height: float, width: float | None, rng) -> np.ndarray:
    """An MNIST digit as ink coverage (float32) `height` pixels tall: the writer's slant, rotation and
    proportions applied, upscaled smoothly; `width` None keeps MNIST's own stroke (thickened or
    thinned a little), otherwise the strokes are redrawn with a pen that wide."""
    g = cv2.GaussianBlur(img28.astype(np.float32) / 255, (0, 0), 0.4)
    ys, xs = np.nonzero(img28 > 50)
    scale = height / (ys.max() - ys.min() + 1)
    shear, turn, aspect = rng.uniform(-0.25, 0.25), rng.uniform(-0.12, 0.12), rng.uniform(0.85, 1.2)
    m = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ [[aspect, shear], [0, 1]]
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 1, ys.min() - 1],
                        [xs.min() - 1, ys.max() + 1], [xs.max() + 1, ys.max() + 1]], np.float64) @ m.T
    pad = 3 + (width or height / 6)
    offset = -corners.min(0) + pad
    size = np.ceil(corners.max(0) - corners.min(0) + 2 * pad).astype(int)
    affine = np.hstack([m, offset[:, None]]).astype(np.float32)
    up = cv2.warpAffine(g, affine, (int(size[0]), int(size[1])), flags=cv2.INTER_CUBIC)
    up = cv2.GaussianBlur(up, (0, 0), max(0.5, 0.3 * scale))  # round off MNIST's pixel steps
    if width is None:
        t = rng.uniform(0.3, 0.6)  # where the pen's edge falls on MNIST's anti-aliased stroke profile
        alpha = np.clip((up - t) / 0.16 + 0.5, 0, 1)
        k = int(round(rng.uniform(-height / 40, height / 30)))
        if k:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1,) * 2)
            alpha = (cv2.dilate if k > 0 else cv2.erode)(alpha, kernel)
    else:
        alpha = pen_alpha(up > 0.45, width, rng)
    return alpha


def printed_alpha(text: str, height: float, font_path, rng) -> list[np.ndarray]:
    """Printed characters of one font, each as coverage `height` pixels tall (digits' cap height),
    in the order of `text`; their widths keep the font's proportions."""
    probe = font_at(font_path, 100)
    box = probe.getbbox("0")
    size = max(6, int(round(100 * height / max(1, box[3] - box[1]))))
    font = font_at(font_path, size)
    glyphs = []
    for ch in text:
        left, t, r, b = font.getbbox(ch)
        img = Image.new("L", (r - left + 6, b - t + 6))
        ImageDraw.Draw(img).text((3 - left, 3 - t), ch, font=font, fill=255)
        glyphs.append(np.asarray(img, np.float32) / 255)
    return glyphs


def letter_alpha(text: str, height: float, width: float, font_path, rng) -> np.ndarray:
    """Letters as a hand would write them: a font's shapes, slanted and redrawn with a pen."""
    glyphs = printed_alpha(text, height, font_path, rng)
    gap = int(height * 0.15)
    row = np.zeros((max(g.shape[0] for g in glyphs), sum(g.shape[1] for g in glyphs) + gap * len(glyphs)), np.float32)
    x = 0
    for g in glyphs:
        row[row.shape[0] - g.shape[0]:, x:x + g.shape[1]] = g
        x += g.shape[1] + gap
    pad = int(width + 4)
    row = np.pad(row, pad)
    shear = rng.uniform(-0.3, 0.3)
    m = np.float32([[1, shear, max(0, -shear) * row.shape[0]], [0, 1, 0]])
    row = cv2.warpAffine(row, m, (int(row.shape[1] + abs(shear) * row.shape[0]), row.shape[0]))
    return pen_alpha(row > 0.5, width, rng) if rng.random() < 0.8 else row


def break_stroke(alpha: np.ndarray, width: float, rng) -> np.ndarray:
    """Erase a thin band across one stroke, as a pen that skipped leaves."""
    ys, xs = np.nonzero(alpha > 0.8)
    if not len(ys):
        return alpha
    i = rng.integers(len(ys))
    angle, half = rng.uniform(0, np.pi), 1.5 * width + 3
    dx, dy = half * np.cos(angle), half * np.sin(angle)
    band = np.zeros(alpha.shape, np.uint8)
    cv2.line(band, (int(xs[i] - dx), int(ys[i] - dy)), (int(xs[i] + dx), int(ys[i] + dy)), 255,
             max(1, int(round(width * rng.uniform(0.4, 1.0)))), cv2.LINE_AA)
    return alpha * (1 - band / 255)


def ink_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(alpha > 0.3)
    if not len(ys):
        return 0, 0, 1, 1
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


# --- Surfaces -------------------------------------------------------------------------------------

PAPERS = {
    "white": (0.95, 0.95, 0.94), "off-white": (0.96, 0.94, 0.89), "cream": (0.97, 0.93, 0.8),
    "yellow": (0.99, 0.93, 0.58), "pink": (0.98, 0.8, 0.84), "grey": (0.82, 0.82, 0.81),
    "green": (0.82, 0.94, 0.78), "blue": (0.8, 0.88, 0.97), "recycled": (0.86, 0.83, 0.76),
}
NOTES = {"yellow": (1.0, 0.92, 0.42), "pink": (1.0, 0.62, 0.76), "green": (0.72, 0.95, 0.55),
         "blue": (0.58, 0.82, 0.98), "orange": (1.0, 0.74, 0.42)}
INKS = {"blue": (0.12, 0.22, 0.62), "black": (0.07, 0.07, 0.09), "pencil": (0.33, 0.33, 0.36),
        "red": (0.74, 0.1, 0.12), "green": (0.1, 0.45, 0.22), "grey": (0.3, 0.3, 0.32)}
CHALKS = {"white": (0.93, 0.93, 0.9), "yellow": (0.96, 0.9, 0.55), "pink": (0.95, 0.7, 0.75),
          "blue": (0.7, 0.85, 0.97)}


def paper_surface(h: int, w: int, colour, rng, grainy: bool = False) -> np.ndarray:
    """Paper (h, w, 3) float32: its colour, uneven a little, with fibres and specks if grainy."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    img *= (0.97 + 0.05 * smooth_noise(h, w, 250, rng))[..., None]
    if grainy:  # recycled paper: a mottled surface with fibres and specks
        grain = cv2.resize(rng.standard_normal((h // 2, w // 2), dtype=np.float32), (w, h)) * 0.02
        img += grain[..., None]
        for _ in range(int(h * w / rng.uniform(2000, 8000))):
            x, y = int(rng.integers(w)), int(rng.integers(h))
            c = rng.uniform(0.35, 0.8)
            cv2.ellipse(img, (x, y), (int(rng.integers(1, 4)), 1), float(rng.uniform(0, 180)), 0, 360,
                        tuple(float(c * v) for v in colour), -1, cv2.LINE_AA)
    return img


def draw_lines(img: np.ndarray, rng, style: str, spacing: float, phase: float, colour, margin_x=None):
    """Ruled lines, a square grid, a graph grid or a dotted grid, multiplied onto the paper."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    thick = 1 if rng.random() < 0.6 else 2
    ys = np.arange(phase % spacing, h, spacing)
    xs = np.arange(rng.uniform(0, spacing), w, spacing)
    if style == "dots":
        r = max(1, int(round(spacing / 14)))
        for y in ys:
            for x in xs:
                cv2.circle(mask, (int(x), int(y)), r, 255, -1, cv2.LINE_AA)
    else:
        for y in ys:
            cv2.line(mask, (0, int(round(y * 4))), ((w - 1) * 4, int(round(y * 4))), 255, thick, cv2.LINE_AA, 2)
        if style in ("grid", "graph"):
            for x in xs:
                cv2.line(mask, (int(round(x * 4)), 0), (int(round(x * 4)), (h - 1) * 4), 255, thick, cv2.LINE_AA, 2)
        if style == "graph":  # bold lines every 5 squares
            for y in ys[::5]:
                cv2.line(mask, (0, int(y)), (w - 1, int(y)), 255, thick + 1, cv2.LINE_AA)
            for x in xs[::5]:
                cv2.line(mask, (int(x), 0), (int(x), h - 1), 255, thick + 1, cv2.LINE_AA)
    a = (mask.astype(np.float32) / 255 * rng.uniform(0.3, 0.7))[..., None]
    img *= 1 - a * (1 - np.float32(colour))
    if margin_x is not None:
        mask[:] = 0
        for dx in ((0, 6) if rng.random() < 0.3 else (0,)):
            cv2.line(mask, (int(margin_x + dx), 0), (int(margin_x + dx), h - 1), 255, thick, cv2.LINE_AA)
        a = (mask.astype(np.float32) / 255 * rng.uniform(0.4, 0.7))[..., None]
        img *= 1 - a * (1 - np.float32((0.9, 0.35, 0.4)))


def desk_surface(h: int, w: int, rng) -> tuple[np.ndarray, str]:
    """A desk or table top (h, w, 3): wood, grey or black laminate, a light desk, a cloth or stone.
    Made at half size (the desk is out of focus behind the paper), then scaled up."""
    kind = str(rng.choice(["wood", "wood", "wood", "grey", "dark", "light", "cloth", "stone"]))
    hh, hw = (h + 1) // 2, (w + 1) // 2
    img = np.empty((hh, hw, 3), np.float32)
    if kind == "wood":  # grain: a 1-D random profile across the planks, bent by a smooth field
        gh, gw = (hh, hw) if rng.random() < 0.6 else (hw, hh)
        profile = sum(cv2.resize(rng.random((1, n), dtype=np.float32), (4 * gh, 1), interpolation=cv2.INTER_CUBIC)[0]
                      * a for n, a in ((gh // 40 + 2, 0.5), (gh // 8 + 2, 0.3), (gh + 2, 0.2)))
        bend = smooth_noise(gh, gw, rng.uniform(80, 250), rng) * rng.uniform(10, 60)
        t = np.arange(gh, dtype=np.float32)[:, None] + bend
        grain = np.interp(t.ravel() + gh, np.arange(4 * gh), profile).reshape(gh, gw).astype(np.float32)
        grain = grain if gh == hh else np.ascontiguousarray(grain.T)
        colour = np.float32(pick(rng, [(0.55, 0.36, 0.2), (0.72, 0.52, 0.32), (0.36, 0.22, 0.12), (0.8, 0.66, 0.46)]))
        img[:] = colour * rng.uniform(0.8, 1.15)
        img *= (0.7 + 0.45 * grain)[..., None]
    elif kind == "cloth":
        s = int(rng.uniform(6, 20))
        check = ((np.arange(hh)[:, None] // s) % 2 + (np.arange(hw)[None] // s) % 2).astype(np.float32) / 2
        colour = np.float32([(0.7, 0.15, 0.15), (0.2, 0.3, 0.6), (0.25, 0.45, 0.3)][rng.integers(3)])
        img[:] = colour
        img += (1 - colour) * (1 - check)[..., None] * 0.8
    else:
        level = {"grey": rng.uniform(0.3, 0.5), "dark": rng.uniform(0.06, 0.16), "light": rng.uniform(0.75, 0.88),
                 "stone": rng.uniform(0.35, 0.6)}[kind]
        img[:] = level * np.float32(rng.uniform(0.92, 1.08, 3))
        if kind == "stone":
            specks = cv2.GaussianBlur(rng.standard_normal((hh, hw), dtype=np.float32), (0, 0), 0.7)
            img += (specks * 0.2)[..., None]
    img *= (0.9 + 0.2 * smooth_noise(hh, hw, 150, rng))[..., None]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR), kind


def board_surface(h: int, w: int, rng, chalk: bool) -> np.ndarray:
    """A whiteboard with faint ghosts of wiped writing, or a chalkboard with chalk dust and eraser smears."""
    img = np.empty((h, w, 3), np.float32)
    if chalk:
        img[:] = [(0.13, 0.22, 0.17), (0.12, 0.12, 0.13), (0.16, 0.25, 0.2)][rng.integers(3)]
        # Dust wiped along by the eraser: streaks, one sweep wide, fading in and out.
        sweep = rng.uniform(60, 200)
        dust = smooth_noise(h, w, sweep / 3, rng, sweep * 4) ** 2 * smooth_noise(h, w, sweep, rng, sweep * 2)
        dust *= rng.uniform(0.08, 0.3)
        img += (dust * (0.85 - img[..., 1:2].mean()))[..., None]
        img += rng.standard_normal((h, w), dtype=np.float32)[..., None] * 0.015
    else:
        img[:] = (0.93, 0.94, 0.95)
        img *= (0.96 + 0.04 * smooth_noise(h, w, 300, rng))[..., None]
    # Ghosts: strokes wiped off earlier, still faintly there.
    ghost = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        pts = scribble_points(rng, rng.uniform(100, 400)) + [rng.uniform(0, w), rng.uniform(0, h)]
        cv2.polylines(ghost, [pts.astype(np.int32)], False, 255, int(rng.integers(6, 20)), cv2.LINE_AA)
    ghost = cv2.GaussianBlur(ghost.astype(np.float32) / 255, (0, 0), 6) * rng.uniform(0.03, 0.12)
    target = np.float32((0.95, 0.95, 0.92) if chalk else (0.3, 0.35, 0.5))
    img += ghost[..., None] * (target - img)
    return img


def scribble_points(rng, size: float) -> np.ndarray:
    """A smooth wandering pen path (N, 2) about `size` pixels across, centred on 0."""
    n = int(rng.integers(60, 160))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, n) + rng.uniform(-0.25, 0.25))
    pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1), 0)
    pts -= pts.mean(0)
    return pts * (size / max(1e-6, np.ptp(pts, 0).max()))


# --- Light and camera -----------------------------------------------------------------------------


def light(img: np.ndarray, rng, shadow: float = 0.3, strong_shadow: bool = False, glare: float = 0.15) -> dict:
    """Light falling on the scene, in place: a gradient, vignetting, perhaps a soft shadow of a hand or
    a phone and a glare spot, the white balance and exposure. Returns what it did."""
    h, w = img.shape[:2]
    sh, sw = max(2, h // 8), max(2, w // 8)
    yy, xx = np.mgrid[-1:1:sh * 1j, -1:1:sw * 1j].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    gain = 1 + rng.uniform(0, 0.25) * (xx * np.cos(angle) + yy * np.sin(angle))
    gain *= 1 - rng.uniform(0, 0.35) * (xx ** 2 + yy ** 2) / 2
    did = {}
    shade = np.zeros((sh, sw), np.float32)
    if strong_shadow or rng.random() < shadow:
        # A polygon entering from one edge and reaching 20-70% across the frame.
        side = rng.integers(4)
        reach = rng.uniform(0.2, 0.7)
        a, b = sorted(rng.uniform(-0.3, 1.3, 2))
        inner = [(rng.uniform(a, b), reach * rng.uniform(0.7, 1.0)) for _ in range(rng.integers(1, 4))]
        poly = [(a, -0.1), *sorted(inner), (b, -0.1)]
        pts = []
        for u, v in poly:  # u along the edge, v into the frame
            x, y = [(u, v), (1 - v, u), (u, 1 - v), (v, u)][side]
            pts.append((x * sw, y * sh))
        cv2.fillPoly(shade, [np.array(pts, np.int32)], 1.0, cv2.LINE_AA)
        shade = cv2.GaussianBlur(shade, (0, 0), rng.uniform(0.6, 5))
        depth = rng.uniform(0.3, 0.6) if strong_shadow else rng.uniform(0.2, 0.5)
        gain *= 1 - depth * shade
        did["shadow"] = round(depth, 2)
    # Colour of the light (daylight, warm lamp, tungsten, cool LED) and exposure: auto-exposure puts
    # paper at about 70-95% grey. Shade is lit by the sky, not the lamp: slightly blue.
    balance = pick(rng, [(1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (1.06, 1.0, 0.88), (1.1, 1.0, 0.82), (0.93, 1.0, 1.08)])
    balance = np.float32(balance) * np.float32(rng.uniform(0.97, 1.03, 3)) * rng.uniform(0.75, 1.0)
    gain3 = gain[..., None] * balance * (1 - shade[..., None] * np.float32((0.06, 0.02, -0.04)))
    img[:] = cv2.multiply(img, cv2.resize(gain3.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC))
    if rng.random() < glare:
        cx, cy, r = rng.uniform(0.1, 0.9) * sw, rng.uniform(0.1, 0.9) * sh, rng.uniform(0.08, 0.3) * max(sw, sh)
        y, x = np.ogrid[:sh, :sw]
        spot = np.exp(-(((x - cx) / r) ** 2 + ((y - cy) / (r * rng.uniform(0.4, 1))) ** 2)).astype(np.float32)
        spot = cv2.resize(spot * np.float32(rng.uniform(0.3, 0.85)), (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
        img += spot * (1.02 - img)
        did["glare"] = True
    return did


def optics(img: np.ndarray, rng, blur: float = 1.5) -> np.ndarray:
    """Defocus and hand shake."""
    if rng.random() < 0.7:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, blur))
    if rng.random() < 0.2:
        n = int(rng.integers(3, 12))
        kernel = np.zeros((n, n), np.float32)
        angle = rng.uniform(0, np.pi)
        c = (n - 1) / 2
        cv2.line(kernel, (int(round(c - c * np.cos(angle))), int(round(c - c * np.sin(angle)))),
                 (int(round(c + c * np.cos(angle))), int(round(c + c * np.sin(angle)))), 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    return img


def sensor(img: np.ndarray, rng) -> np.ndarray:
    """Tone curve, shot noise with blotchy colour noise, the phone's sharpening: uint8 (h, w, 3)."""
    h, w = img.shape[:2]
    sigma = np.float32(rng.uniform(0.004, 0.025))
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise *= sigma
    chroma = rng.standard_normal((h // 2, w // 2, 3), dtype=np.float32)
    chroma *= sigma * 0.6
    img = cv2.add(img, cv2.resize(chroma, (w, h)))
    img += noise[..., None]
    if rng.random() < 0.5:
        s = rng.uniform(0.3, 1.0)
        img = cv2.addWeighted(img, 1 + s, cv2.GaussianBlur(img, (0, 0), rng.uniform(1, 2.5)), -s, 0)
    img *= 255
    np.clip(img, 0, 255, out=img)
    tone = np.round((np.arange(256) / 255) ** rng.uniform(0.8, 1.15) * 255).astype(np.uint8)
    return cv2.LUT(img.astype(np.uint8), tone)


def encode(pixels: np.ndarray, quality: int, orientation: int = 1, png: bool = False) -> bytes:
    """The upright picture as a file; with an EXIF orientation, the pixels are stored turned so that a
    viewer honouring the tag shows them upright (Pillow's exif_transpose undoes np.rot90 by these k)."""
    k = {1: 0, 3: 2, 6: 1, 8: -1}[orientation]
    img = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k)))
    buf = io.BytesIO()
    if png:
        img.save(buf, "PNG")
    elif orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, "JPEG", quality=quality, exif=exif)
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- Composition ----------------------------------------------------------------------------------


def camera_pose(w: int, h: int, rng, tilt: float = 0.06, turn: float = 15) -> tuple[np.ndarray, tuple[int, int]]:
    """The homography (3x3) from the world surface to the photo, and the world's (width, height):
    the frame's corners rotated in plane, zoomed and jittered (perspective) on the surface."""
    theta = np.radians(rng.uniform(-turn, turn))
    zoom = rng.uniform(0.9, 1.1)
    dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    c = dst - [w / 2, h / 2]
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src = (c @ rot.T) / zoom + rng.uniform(-tilt, tilt, (4, 2)) * [w, h]
    src -= src.min(0) - 24
    size = (int(src[:, 0].max() + 24), int(src[:, 1].max() + 24))
    return cv2.getPerspectiveTransform(np.float32(src), dst), size


def apply_h(m: np.ndarray, pts) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ m.T
    return p[:, :2] / p[:, 2:]


def local_scale(m: np.ndarray, p) -> float:
    """Photo pixels per surface pixel near surface point p."""
    q = apply_h(m, [p, (p[0] + 1, p[1]), (p[0], p[1] + 1)])
    (ax, ay), (bx, by) = q[1] - q[0], q[2] - q[0]
    return float(np.sqrt(abs(ax * by - ay * bx)))


def layout(glyphs: list[np.ndarray], height: float, rng, touching: bool = False, printed: bool = False):
    """Top-left positions (x, y) of glyphs written left to right: irregular gaps, a drifting baseline,
    or, if touching, each glyph pushed left until its ink meets its neighbour's."""
    positions, x, base = [], 0.0, 0.0
    for i, g in enumerate(glyphs):
        if i:
            prev, (px, _) = glyphs[i - 1], positions[-1]
            if printed:
                x = px + prev.shape[1] + height * rng.uniform(-0.1, 0.05)
            else:
                bx, _, bw, _ = ink_box(prev)
                gap = rng.uniform(-0.05, 0.12) if touching else rng.uniform(0.05, 0.5)
                x = px + bx + bw + height * gap - ink_box(g)[0]
                base += rng.normal(0, 0.03) * height
        y = base - (ink_box(g)[1] + ink_box(g)[3])  # the ink's bottom on the baseline
        if touching and i:  # slide left until the inks meet (at most half the glyph's width), then a little more
            for _ in range(int(height * rng.uniform(0.05, 0.12) + ink_box(g)[2] / 2)):
                if overlap(glyphs[i - 1], positions[-1], g, (x, y)) > 0:
                    break
                x -= 1
            x -= rng.uniform(0, 0.04) * height
        positions.append((x, y))
    return positions


def overlap(a, pa, b, pb) -> int:
    ax, ay, bx, by = int(round(pa[0])), int(round(pa[1])), int(round(pb[0])), int(round(pb[1]))
    x0, y0 = max(ax, bx), max(ay, by)
    x1, y1 = min(ax + a.shape[1], bx + b.shape[1]), min(ay + a.shape[0], by + b.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0
    return int(((a[y0 - ay:y1 - ay, x0 - ax:x1 - ax] > 0.5) & (b[y0 - by:y1 - by, x0 - bx:x1 - bx] > 0.5)).sum())


def put_ink(img: np.ndarray, alpha: np.ndarray, x: int, y: int, colour, light_ink: bool):
    """Multiply ink onto the surface (light ink, chalk, is laid over it instead)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + alpha.shape[1], w), min(y + alpha.shape[0], h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = img[y0:y1, x0:x1]
    colour = np.float32(colour)
    region[:] = region + a * (colour - region) if light_ink else region * (1 - a * (1 - colour))


class Photo:
    """One scene under construction: the world surface, perhaps a sheet (page, note) lying on it, and
    the camera. Ink goes onto the sheet; the photo is rendered from both."""

    def __init__(self, rng, size=OUT, tilt=0.06, turn=15.0):
        self.rng, self.size = rng, size
        self.cam, self.world_size = camera_pose(*size, rng, tilt, turn)
        self.world = None  # (H, W, 3) float32 desk or board, set by the caller
        self.sheet = None  # (h, w, 3) float32 page or note on the world, or None: the world is the page
        self.place = np.eye(3)  # sheet -> world
        self.light_ink = False

    @property
    def to_photo(self) -> np.ndarray:
        return self.cam @ self.place

    @property
    def surface(self) -> np.ndarray:
        return self.world if self.sheet is None else self.sheet

    def lay_sheet(self, sheet_wh, angle: float, centre_photo, rng, shadow=True):
        """Put a sheet of (w, h) pixels on the world, rotated, centred below a point of the photo."""
        w, h = sheet_wh
        centre = apply_h(np.linalg.inv(self.cam), [centre_photo])[0]
        a = np.radians(angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.place = np.eye(3)
        self.place[:2, :2] = rot
        self.place[:2, 2] = centre - rot @ [w / 2, h / 2]
        if shadow:  # the sheet's soft shadow on the desk
            W, H = self.world_size
            mask = cv2.warpAffine(np.ones((h, w), np.float32), self.place[:2], (W, H))
            shift = np.float32([[1, 0, rng.uniform(-12, 12)], [0, 1, rng.uniform(2, 16)]])
            mask = cv2.GaussianBlur(cv2.warpAffine(mask, shift, (W, H)), (0, 0), rng.uniform(3, 12))
            self.world *= 1 - (mask * rng.uniform(0.25, 0.55))[..., None]

    def height_scale(self) -> float:
        """Surface pixels per photo pixel at the photo's centre."""
        centre = apply_h(np.linalg.inv(self.to_photo), [(self.size[0] / 2, self.size[1] / 2)])[0]
        return 1 / local_scale(self.to_photo, centre)

    def place_block(self, glyphs, positions, rng, region=(0.08, 0.92), margin=6, tries=40):
        """Where to put a block of glyphs on the surface so that every glyph lands inside the photo and
        on the sheet: the top-left surface offset, or None."""
        boxes = [ink_box(g) for g in glyphs]
        corners = np.array([(px + bx + dx, py + by + dy) for (px, py), (bx, by, bw, bh) in zip(positions, boxes)
                            for dx in (0, bw) for dy in (0, bh)])
        lo, hi = corners.min(0), corners.max(0)
        inv = np.linalg.inv(self.to_photo)
        sh, sw = self.surface.shape[:2]
        W, H = self.size
        for _ in range(tries):
            anchor = apply_h(inv, [(rng.uniform(*region) * W, rng.uniform(*region) * H)])[0]
            offset = anchor - (lo + hi) / 2
            c = corners + offset
            if (c.min(0) < 4).any() or c[:, 0].max() > sw - 4 or c[:, 1].max() > sh - 4:
                continue
            p = apply_h(self.to_photo, c)
            if (p.min(0) >= margin).all() and p[:, 0].max() <= W - margin and p[:, 1].max() <= H - margin:
                return offset
        return None

    def write(self, glyphs, positions, offset, colour, density, rng, grain: float = 0.0):
        """Ink the glyphs onto the surface; returns their boxes in the photo."""
        boxes = []
        for g, (px, py) in zip(glyphs, positions):
            x, y = int(round(px + offset[0])), int(round(py + offset[1]))
            a = g * (density * (0.8 + 0.2 * smooth_noise(*g.shape, max(10, g.shape[0] / 3), rng)))
            if grain:  # pencil and chalk: the surface's tooth takes ink only in places
                tooth = cv2.GaussianBlur(rng.random(g.shape, dtype=np.float32), (0, 0), 0.7)
                a = a * np.clip((tooth - grain * 0.5) / (1 - grain * 0.5) * 1.6, 0, 1)
            put_ink(self.surface, a, x, y, colour, self.light_ink)
            bx, by, bw, bh = ink_box(g)
            p = apply_h(self.to_photo, [(x + bx, y + by), (x + bx + bw, y + by), (x + bx, y + by + bh),
                                        (x + bx + bw, y + by + bh)])
            W, H = self.size
            x0, y0 = np.clip(p.min(0), 0, [W, H])
            x1, y1 = np.clip(p.max(0), 0, [W, H])
            boxes.append((int(x0), int(y0), int(round(x1 - x0)), int(round(y1 - y0))))
        return boxes

    def render(self) -> np.ndarray:
        """The surface(s) as the camera sees them: (h, w, 3) float32, before light and optics."""
        W, H = self.size
        out = cv2.warpPerspective(self.world, self.cam, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.sheet is not None:
            m = self.to_photo
            sheet = cv2.warpPerspective(self.sheet, m, (W, H), flags=cv2.INTER_LINEAR)
            cover = cv2.warpPerspective(np.ones(self.sheet.shape[:2], np.float32), m, (W, H), flags=cv2.INTER_LINEAR)
            out = out * (1 - cover[..., None]) + sheet * cover[..., None]
        return out


# --- Recipes --------------------------------------------------------------------------------------


def pick(rng, options):
    return options[rng.integers(len(options))]


def pen_width(rng, tool: str, height: float) -> float | None:
    """Stroke width in photo pixels for a writing tool, never above a third of the digit's height;
    None: MNIST's own stroke."""
    lo, hi = {"ballpoint": (1.5, 4), "gel": (2.5, 6), "felt-tip": (4, 10), "marker": (7, 20),
              "chalk": (5, 14), "pencil": (1.5, 4)}.get(tool, (0, 0))
    if not hi:
        return None
    return float(min(rng.uniform(lo, hi), height / 3))


class NoRoom(RuntimeError):
    """No room on the surface for the digits asked for, even after shrinking them eight times by a fifth."""


def write_digits(photo: Photo, digits: DigitSource, rng, n: int, h_photo: float, tool: str, colour, density,
                 touching=False, printed=False, broken=0.1, grain=0.0, region=(0.08, 0.92),
                 rows: list[int] | None = None) -> dict:
    """Handwritten (or printed) digits on the photo's surface: text, boxes, MNIST indices, height.
    With `rows` (digits per line), lines of handwritten numbers one under the other, each starting
    near the first's left end: their text has "\n" between lines."""
    if rows:
        return _write_lines(photo, digits, rng, rows, h_photo, tool, colour, density, broken, grain, region)
    for _ in range(8):
        k = photo.height_scale()
        h = h_photo * k  # surface pixels
        if printed:
            text = "".join(str(d) for d in rng.integers(0, 10, n))
            glyphs = printed_alpha(text, h, pick(rng, digits.fonts), rng)
            indices = []
            if rng.random() < 0.5:
                glyphs = [cv2.GaussianBlur(g, (0, 0), 0.6) for g in glyphs]
        else:
            picks = [digits.handwritten(rng) for _ in range(n)]
            text, indices = "".join(p[1] for p in picks), [p[2] for p in picks]
            width = pen_width(rng, tool, h_photo)
            glyphs = []
            for img28, _, _ in picks:
                gh = h * (rng.uniform(0.85, 1.15) if n > 1 else 1)
                g = handwritten_alpha(img28, gh, None if width is None else max(1.2, width * k), rng)
                if rng.random() < broken:
                    g = break_stroke(g, (width or h / 8) * k, rng)
                glyphs.append(g)
        positions = layout(glyphs, h, rng, touching, printed)
        offset = photo.place_block(glyphs, positions, rng, region)
        if offset is not None:
            boxes = photo.write(glyphs, positions, offset, colour, density, rng, grain)
            return {"text": text, "boxes": boxes, "indices": indices, "height": round(h_photo),
                    "baseline": float(offset[1] + max(p[1] + g.shape[0] for g, p in zip(glyphs, positions)))}
        h_photo *= 0.8
    raise NoRoom(f"no room for {n} digits {h_photo / 0.8 ** 8:.0f} pixels tall")


def _write_lines(photo: Photo, digits: DigitSource, rng, rows: list[int], h_photo: float, tool: str, colour,
                 density, broken: float, grain: float, region) -> dict:
    """write_digits' lines of numbers: each laid out like a number, the next 1.4-2.2 digit heights below
    it and indented by up to half a digit either way."""
    for _ in range(8):
        k = photo.height_scale()
        h = h_photo * k
        width = pen_width(rng, tool, h_photo)
        glyphs, positions, lines, indices = [], [], [], []
        top = 0.0
        for n in rows:
            picks = [digits.handwritten(rng) for _ in range(n)]
            row = []
            for img28, _, _ in picks:
                g = handwritten_alpha(img28, h * rng.uniform(0.85, 1.15), None if width is None else
                                      max(1.2, width * k), rng)
                row.append(break_stroke(g, (width or h / 8) * k, rng) if rng.random() < broken else g)
            indent = rng.uniform(-0.5, 0.5) * h
            placed = layout(row, h, rng)
            glyphs += row
            positions += [(x + indent, y + top) for x, y in placed]
            lines.append("".join(p[1] for p in picks))
            indices += [p[2] for p in picks]
            top += h * rng.uniform(1.4, 2.2)
        offset = photo.place_block(glyphs, positions, rng, region)
        if offset is not None:
            boxes = photo.write(glyphs, positions, offset, colour, density, rng, grain)
            return {"text": "\n".join(lines), "boxes": boxes, "indices": indices, "height": round(h_photo),
                    "baseline": float(offset[1] + max(p[1] + g.shape[0] for g, p in zip(glyphs, positions)))}
        h_photo *= 0.8
    raise NoRoom(f"no room for {len(rows)} lines of digits {h_photo / 0.8 ** 8:.0f} pixels tall")


def digit_height(rng, lo=40, hi=300) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def dark_ink(rng, options=("blue", "blue", "black", "black", "pencil", "red", "green")):
    name = pick(rng, options)
    density = rng.uniform(0.45, 0.75) if name == "pencil" else rng.uniform(0.8, 1.0)
    return name, INKS[name], density


def tool_for(rng, ink: str) -> str:
    if ink == "pencil":
        return "pencil"
    return pick(rng, ["ballpoint", "ballpoint", "gel", "felt-tip", "mnist", "mnist"])


def make_surface(photo: Photo, rng, surface: str, paper: str | None = None, lines: str | None = None) -> dict:
    """Build the world (and the sheet) of a photo. Lines are drawn later, when the digits' baseline is known."""
    W, H = photo.world_size
    w, h = photo.size
    info = {"surface": surface}
    if surface == "page":
        paper = paper or pick(rng, ["white", "white", "off-white", "cream"])
        photo.world = paper_surface(H, W, PAPERS[paper], rng, grainy=paper == "recycled")
        info["paper"] = paper
    elif surface in ("page-on-desk", "sticky-note"):
        photo.world, info["desk"] = desk_surface(H, W, rng)
        if surface == "sticky-note":
            side = int(rng.uniform(0.35, 0.7) * min(w, h))
            sheet_wh, note = (side, side), pick(rng, list(NOTES))
            photo.sheet = paper_surface(side, side, NOTES[note], rng)
            curl = np.linspace(rng.uniform(0.88, 0.97), 1.0, side, dtype=np.float32)  # the sticky edge lifts
            photo.sheet *= curl[:, None, None]
            info["note"] = note
            angle = rng.uniform(-25, 25)
        else:
            paper = paper or pick(rng, ["white", "white", "off-white", "cream", "recycled", "yellow"])
            long = int(rng.uniform(0.75, 1.2) * max(w, h))
            sheet_wh = (int(long / 1.414), long) if rng.random() < 0.6 else (long, int(long / 1.414))
            photo.sheet = paper_surface(sheet_wh[1], sheet_wh[0], PAPERS[paper], rng, grainy=paper == "recycled")
            info["paper"] = paper
            angle = rng.uniform(-35, 35)
        centre = (w / 2 + rng.uniform(-0.15, 0.15) * w, h / 2 + rng.uniform(-0.15, 0.15) * h)
        photo.lay_sheet(sheet_wh, angle, centre, rng)
    elif surface in ("whiteboard", "chalkboard"):
        photo.world = board_surface(H, W, rng, chalk=surface == "chalkboard")
        photo.light_ink = surface == "chalkboard"
    elif surface == "desk":
        photo.world, info["desk"] = desk_surface(H, W, rng)
    info["lines"] = lines
    return info


def rule(photo: Photo, rng, lines: str | None, baseline: float | None = None, margin: bool = False):
    """Rules or grid on the page: line spacing 20-60 photo pixels, a line under the writing sometimes."""
    if not lines or lines == "plain":
        return
    k = photo.height_scale()
    spacing = rng.uniform(22, 60) * k if lines != "graph" else rng.uniform(12, 22) * k
    phase = baseline + rng.uniform(-0.1, 0.15) * spacing if baseline is not None and rng.random() < 0.6 \
        else rng.uniform(0, spacing)
    colour = pick(rng, [(0.35, 0.55, 0.9), (0.35, 0.55, 0.9), (0.55, 0.55, 0.6), (0.4, 0.7, 0.6)])
    margin_x = None
    if margin:
        left = apply_h(np.linalg.inv(photo.to_photo), [(rng.uniform(-0.05, 0.25) * photo.size[0], photo.size[1] / 2)])
        margin_x = float(left[0, 0])
    draw_lines(photo.surface, rng, lines, spacing, phase, colour, margin_x)


def single_digit_scene(condition: str, rng, digits: DigitSource, size=OUT, heights=(40, 300)) -> tuple[Photo, dict]:
    """The photo conditions of one handwritten or printed digit: surface, lines, ink, then the digit."""
    photo = Photo(rng, size)
    lines, margin, grain, light_opts, tool = None, False, 0.0, {}, None
    ink, colour, density = dark_ink(rng)
    if condition == "ruled-blue":
        info = make_surface(photo, rng, "page")
        lines, margin = "ruled", rng.random() < 0.4
        ink, colour, density = dark_ink(rng, ("blue", "blue", "blue", "black", "black", "pencil"))
    elif condition == "ruled-black-shadow":
        info = make_surface(photo, rng, "page" if rng.random() < 0.8 else "page-on-desk")
        lines, margin = "ruled", rng.random() < 0.3
        ink, colour, density = "black", INKS["black"], rng.uniform(0.8, 1.0)
        light_opts = {"strong_shadow": True}
    elif condition == "grid":
        info = make_surface(photo, rng, "page" if rng.random() < 0.8 else "page-on-desk")
        lines = pick(rng, ["grid", "grid", "graph", "dots"])
    elif condition == "pencil":
        info = make_surface(photo, rng, "page" if rng.random() < 0.7 else "page-on-desk")
        lines = pick(rng, ["plain", "ruled", "grid"])
        ink, colour, density = "pencil", INKS[pick(rng, ["pencil", "pencil", "grey"])], rng.uniform(0.4, 0.75)
        grain = rng.uniform(0.2, 0.6)
    elif condition == "sticky-note":
        info = make_surface(photo, rng, "sticky-note")
        ink, colour, density = dark_ink(rng, ("black", "black", "blue", "blue", "red", "green"))
        tool = pick(rng, ["felt-tip", "marker", "ballpoint", "mnist"])
        heights = (heights[0], min(heights[1], 0.3 * min(size)))
    elif condition == "coloured-paper":
        paper = pick(rng, ["yellow", "pink", "grey", "green", "blue", "recycled", "cream"])
        info = make_surface(photo, rng, "page" if rng.random() < 0.75 else "page-on-desk", paper)
        lines = pick(rng, ["plain", "plain", "ruled", "grid"])
        ink, colour, density = dark_ink(rng, ("blue", "red", "green", "black"))
    elif condition == "whiteboard":
        info = make_surface(photo, rng, "whiteboard")
        ink, colour, density = dark_ink(rng, ("black", "blue", "red", "green"))
        tool = "marker"
        light_opts = {"glare": 0.8}
    elif condition == "chalkboard":
        info = make_surface(photo, rng, "chalkboard")
        ink = pick(rng, list(CHALKS))
        colour, density, tool, grain = CHALKS[ink], rng.uniform(0.6, 0.95), "chalk", rng.uniform(0.1, 0.5)
        light_opts = {"glare": 0.05}
    elif condition == "page-on-desk":
        info = make_surface(photo, rng, "page-on-desk")
        lines = pick(rng, ["plain", "ruled", "grid"])
    elif condition == "small-digit":
        info = make_surface(photo, rng, pick(rng, ["page", "page", "page-on-desk", "sticky-note"]))
        lines = pick(rng, ["plain", "ruled", "grid"]) if info["surface"] != "sticky-note" else None
        heights = (20, 45)
    elif condition == "printed":
        info = make_surface(photo, rng, pick(rng, ["page", "page", "page-on-desk", "sticky-note"]))
        ink, colour, density = "toner", INKS[pick(rng, ["black", "black", "grey", "blue"])], rng.uniform(0.8, 1.0)
        tool = "printer"
    else:
        raise ValueError(condition)
    tool = tool or tool_for(rng, ink)
    if ink == "pencil" and condition != "pencil":
        grain = rng.uniform(0.1, 0.4)
    written = write_digits(photo, digits, rng, 1, digit_height(rng, *heights), tool, colour, density,
                           printed=condition == "printed", grain=grain)
    if info["surface"] in ("page", "page-on-desk"):
        rule(photo, rng, lines, written["baseline"], margin)
    info.update(ink=ink, tool=tool, lines=lines, light=light_opts)
    return photo, info | written


def number_scene(condition: str, rng, digits: DigitSource) -> tuple[Photo, dict]:
    photo = Photo(rng, OUT if rng.random() < 0.7 else OUT[::-1])
    printed = condition == "printed-number"
    # Printed numbers are on paper (a page or a label): black toner on a chalkboard is nobody's photo.
    surface = pick(rng, ["page", "page", "page", "page-on-desk", "sticky-note"] + ([] if printed else
                                                                                  ["whiteboard", "chalkboard"]))
    paper = pick(rng, ["white", "white", "off-white", "cream", "yellow", "pink", "grey", "recycled"])
    info = make_surface(photo, rng, surface, paper if surface.startswith("page") else None)
    ink, colour, density = dark_ink(rng)
    tool, grain = tool_for(rng, ink), (rng.uniform(0.1, 0.4) if ink == "pencil" else 0.0)
    if surface == "whiteboard":
        ink, colour, density = dark_ink(rng, ("black", "blue", "red", "green"))
        tool = "marker"
    elif surface == "chalkboard":
        ink = pick(rng, list(CHALKS))
        colour, density, tool, grain = CHALKS[ink], rng.uniform(0.6, 0.95), "chalk", rng.uniform(0.1, 0.5)
    if printed:
        ink, colour, density, tool = "toner", INKS[pick(rng, ["black", "black", "grey", "blue"])], 0.95, "printer"
    n = int(rng.integers(2, 7 if condition in ("number-touching", "printed-number") else 6))
    hi = 200 if surface != "sticky-note" else 0.25 * min(photo.size)
    rows = [n] + [int(rng.integers(2, 6)) for _ in range(int(rng.integers(1, 3)))] \
        if condition == "number-lines" else None
    written = write_digits(photo, digits, rng, n, digit_height(rng, 35, hi / (1 if rows is None else len(rows))),
                           tool, colour, density, touching=condition == "number-touching", printed=printed,
                           grain=grain, broken=0.05, rows=rows)
    if surface in ("page", "page-on-desk"):
        rule(photo, rng, pick(rng, ["plain", "ruled", "ruled", "grid"]), written["baseline"], rng.random() < 0.3)
    info.update(ink=ink, tool=tool)
    return photo, info | written


def empty_scene(rng) -> tuple[Photo, dict]:
    photo = Photo(rng, OUT if rng.random() < 0.7 else OUT[::-1])
    what = pick(rng, ["ruled page", "grid page", "sticky note", "bare desk", "whiteboard", "chalkboard",
                      "page with a shadow", "page on desk", "coloured page"])
    surface = {"ruled page": "page", "grid page": "page", "sticky note": "sticky-note", "bare desk": "desk",
               "page with a shadow": "page", "page on desk": "page-on-desk", "coloured page": "page"}.get(what, what)
    paper = pick(rng, ["yellow", "pink", "grey", "green", "recycled"]) if what == "coloured page" else None
    info = make_surface(photo, rng, surface, paper)
    lines = {"ruled page": "ruled", "grid page": pick(rng, ["grid", "graph", "dots"]),
             "page on desk": pick(rng, ["plain", "ruled", "grid"])}.get(what)
    rule(photo, rng, lines, None, what == "ruled page" and rng.random() < 0.5)
    info.update(blank=what, lines=lines, light={"strong_shadow": True} if what == "page with a shadow" else {})
    return photo, info


def junk_scene(rng, digits: DigitSource) -> tuple[Photo, dict]:
    """Marks that are not digits: a scribble, letters, a smiley, a coffee ring, a smudge."""
    photo = Photo(rng, OUT if rng.random() < 0.7 else OUT[::-1])
    surface = pick(rng, ["page", "page", "page", "page-on-desk", "sticky-note", "whiteboard", "chalkboard"])
    info = make_surface(photo, rng, surface)
    what = pick(rng, ["scribble", "letters", "letters", "smiley", "coffee ring", "smudge"])
    ink, colour, density = dark_ink(rng, ("blue", "black", "pencil", "red"))
    grain = 0.0
    if surface == "chalkboard":
        ink, colour, grain = "chalk", CHALKS[pick(rng, list(CHALKS))], 0.3
    k = photo.height_scale()
    size = digit_height(rng, 50, 300) * k
    width = max(1.5, (rng.uniform(2, 8) if surface not in ("whiteboard", "chalkboard") else rng.uniform(6, 16)) * k)
    if what == "scribble":
        pts = scribble_points(rng, size)
        pts -= pts.min(0) - width - 2
        mask = np.zeros((int(pts[:, 1].max() + width + 3), int(pts[:, 0].max() + width + 3)), np.uint8)
        cv2.polylines(mask, [np.round(pts * 4).astype(np.int32)], False, 255, int(round(width)), cv2.LINE_AA, 2)
        glyph = mask.astype(np.float32) / 255
    elif what == "letters":
        text = "".join(pick(rng, LETTERS) for _ in range(rng.integers(1, 4)))
        glyph = letter_alpha(text, size * 0.7, width, pick(rng, digits.fonts), rng)
        info["letters"] = text
    elif what == "smiley":
        s = int(size)
        mask = np.zeros((s + 20, s + 20), np.uint8)
        c, r, t = (s // 2 + 10,) * 2, s // 2, max(1, int(round(width)))
        cv2.circle(mask, c, r, 255, t, cv2.LINE_AA)
        for dx in (-r // 3, r // 3):
            cv2.circle(mask, (c[0] + dx, c[1] - r // 4), max(2, r // 10), 255, -1, cv2.LINE_AA)
        cv2.ellipse(mask, (c[0], c[1] + r // 8), (r // 2, r // 3), 0, 20, 160, 255, t, cv2.LINE_AA)
        glyph = mask.astype(np.float32) / 255
    elif what == "coffee ring":
        s = int(size * 1.5)
        y, x = np.mgrid[-s:s + 1, -s:s + 1].astype(np.float32)
        r = np.sqrt(x * x + y * y) / (s * 0.8) + 0.06 * (smooth_noise(2 * s + 1, 2 * s + 1, s / 3, rng) - 0.5)
        glyph = np.exp(-((r - 1) / 0.03) ** 2) * 0.7 + (r < 1) * 0.12 * smooth_noise(2 * s + 1, 2 * s + 1, s / 4, rng)
        colour, density, grain, ink = (0.55, 0.35, 0.18), rng.uniform(0.3, 0.7), 0.0, "coffee"
    else:  # a smudge of graphite or ink rubbed with a finger
        s = int(size)
        glyph = np.zeros((2 * s, 2 * s), np.float32)
        cv2.ellipse(glyph, (s, s), (int(s * rng.uniform(0.3, 0.8)), int(s * rng.uniform(0.15, 0.4))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        glyph = cv2.GaussianBlur(glyph, (0, 0), s / 5) * smooth_noise(2 * s, 2 * s, s / 4, rng)
        colour, density = INKS[pick(rng, ["pencil", "grey", "blue"])], rng.uniform(0.3, 0.6)
    offset = photo.place_block([glyph], [(0, 0)], rng)
    if offset is None:
        glyph = cv2.resize(glyph, None, fx=0.5, fy=0.5)
        offset = photo.place_block([glyph], [(0, 0)], rng, tries=200)
    if offset is not None:
        photo.write([glyph], [(0, 0)], offset, colour, density, rng, grain)
    if surface in ("page", "page-on-desk"):
        rule(photo, rng, pick(rng, ["plain", "ruled", "grid"]), None, rng.random() < 0.3)
    info.update(junk=what, ink=ink)
    return photo, info


def canvas_scene(rng, digits: DigitSource) -> Scene:
    """The drawing page's canvas or a scanner's crop: one digit on a clean 280x280 square."""
    img28, label, index = digits.handwritten(rng)
    h = rng.uniform(130, 230)
    width = rng.uniform(10, 28) if rng.random() < 0.85 else None  # the page's brush; sometimes MNIST's own stroke
    alpha = handwritten_alpha(img28, h, width, rng)
    x0, y0, bw, bh = ink_box(alpha)
    ox = int(np.clip(140 - x0 - bw / 2 + rng.normal(0, 12), -x0 + 4, 276 - x0 - bw))
    oy = int(np.clip(140 - y0 - bh / 2 + rng.normal(0, 12), -y0 + 4, 276 - y0 - bh))
    ink = np.zeros((280, 280), np.float32)
    put = ink[max(oy, 0):oy + alpha.shape[0], max(ox, 0):ox + alpha.shape[1]]
    put[:] = np.maximum(put, alpha[max(-oy, 0):max(-oy, 0) + put.shape[0], max(-ox, 0):max(-ox, 0) + put.shape[1]])
    white_on_black = rng.random() < 0.6
    grey = (ink if white_on_black else 1 - ink) * 255
    pixels = np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, 2)
    png = rng.random() < 0.5
    box = ink_box(ink)
    return Scene(encode(pixels, 95, png=png), label, [box], "digit", "canvas", (280, 280), 1, [index],
                 {"surface": "canvas", "white_on_black": white_on_black, "format": "PNG" if png else "JPEG"})


def make_scene(condition: str, seed: int, digits: DigitSource) -> Scene:
    """The scene `seed` of a condition, drawn with the split of `digits`: the same bytes every time."""
    if condition not in KINDS:
        raise ValueError(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")
    rng = seeded(condition, seed, digits.split)
    if condition == "canvas":
        return canvas_scene(rng, digits)
    if condition in ("number", "number-touching", "printed-number", "number-lines"):
        photo, info = number_scene(condition, rng, digits)
    elif condition == "blank":
        photo, info = empty_scene(rng)
    elif condition == "junk":
        photo, info = junk_scene(rng, digits)
    elif condition == "phone-12mp":  # composed at half size, then as a 12 MP sensor sees it
        inner = pick(rng, ["ruled-blue", "grid", "sticky-note", "coloured-paper", "page-on-desk", "whiteboard"])
        photo, info = single_digit_scene(inner, rng, digits, (2000, 1500), (80, 450))
        info["recipe"] = inner
    else:
        size = pick(rng, [OUT, OUT, OUT, OUT[::-1], OUT[::-1], (1600, 1200), (800, 600)])
        photo, info = single_digit_scene(condition, rng, digits, size)
    img = photo.render()
    did = light(img, rng, **{"shadow": 0.3, "glare": 0.15} | info.pop("light", {}))
    img = optics(img, rng)
    boxes = info.pop("boxes", [])
    if condition == "phone-12mp":
        img = cv2.resize(img, (4000, 3000), interpolation=cv2.INTER_CUBIC)
        boxes = [tuple(2 * v for v in b) for b in boxes]
    pixels = sensor(img, rng)
    quality = int(rng.integers(60, 96))
    orientation = int(pick(rng, [1, 1, 1, 1, 1, 6, 8, 3])) if condition != "phone-12mp" else int(pick(rng, [1, 6]))
    h, w = pixels.shape[:2]
    text = info.pop("text", None)
    indices = info.pop("indices", [])
    info.pop("baseline", None)
    info.update(did, quality=quality)
    return Scene(encode(pixels, quality, orientation), text, boxes, KINDS[condition], condition, (w, h),
                 orientation, indices, info)


# --- Looking at them ------------------------------------------------------------------------------


def contact_sheet(scenes: list[Scene], path, columns: int = 8, thumb: int = 180):
    """A PNG grid of thumbnails, one row per condition, the truth boxes drawn in green."""
    from PIL import ImageOps

    rows = {}
    for s in scenes:
        rows.setdefault(s.condition, []).append(s)
    label_w = 150
    sheet = Image.new("RGB", (label_w + columns * (thumb + 6), len(rows) * (thumb + 6)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    font = font_at(FONT_DIRS[0] / "DejaVuSans.ttf", 14)
    for r, (condition, row) in enumerate(rows.items()):
        draw.text((6, r * (thumb + 6) + thumb // 2), condition, fill=(230, 230, 230), font=font)
        for c, s in enumerate(row[:columns]):
            img = ImageOps.exif_transpose(Image.open(io.BytesIO(s.jpeg))).convert("RGB")
            scale = thumb / max(img.size)
            d = ImageDraw.Draw(img)
            for x, y, w, h in s.boxes:
                d.rectangle((x, y, x + w, y + h), outline=(0, 255, 0), width=max(1, int(2 / scale)))
            img.thumbnail((thumb, thumb))
            x0, y0 = label_w + c * (thumb + 6), r * (thumb + 6)
            sheet.paste(img, (x0, y0))
            draw.text((x0 + 3, y0 + 2), s.text or s.kind, fill=(255, 255, 0), font=font)
    sheet.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--condition", action="append", help=f"repeatable, or 'all': {', '.join(CONDITIONS)}")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--split", choices=("tune", "holdout"), default="tune")
    parser.add_argument("--data-dir")
    parser.add_argument("--sheet", action="store_true", help="also write contact-sheet.png")
    args = parser.parse_args()
    conditions = CONDITIONS if not args.condition or "all" in args.condition else args.condition
    digits = DigitSource.load(args.data_dir, args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    truth, scenes = [], []
    for condition in conditions:
        for seed in range(args.first_seed, args.first_seed + args.count):
            s = make_scene(condition, seed, digits)
            name = f"{condition}-{seed}{s.suffix}"
            (args.out / name).write_bytes(s.jpeg)
            truth.append({"file": name, "condition": condition, "seed": seed, "split": args.split, "text": s.text,
                          "kind": s.kind, "boxes": s.boxes, "size": s.size, "orientation": s.orientation,
                          "mnist_indices": s.mnist_indices, "details": s.details})
            scenes.append(s)
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1))
    print(f"{len(truth)} scenes in {args.out}")
    if args.sheet:
        contact_sheet(scenes, args.out / "contact-sheet.png")
        print(f"contact sheet: {args.out / 'contact-sheet.png'}")


if __name__ == "__main__":
    main()
