"""A second, independently written generator of phone photos of handwritten digits ("scenes B").

What it models: a person writes a digit (or a number, or nothing, or something that is not a digit)
with a real pen on a real surface, and photographs it with a phone. Every scene is laid out in
millimetres on the desk plane, and a simple physical chain turns it into the JPEG that a phone app
would save:

* the surface: paper with fibres, grain and mottling (ruled or squared notebook pages with margins,
  spiral holes or torn perforations, printer paper, recycled paper), sticky notes on wood, laminate,
  dark or patterned desks (with the note's shadow and curl), whiteboards with ghosts of wiped writing;
* the ink: an MNIST test digit is upscaled smoothly, thinned to its centre line and redrawn with a pen
  of a physical width and varying pressure: ballpoint (thin, semi-transparent, skips), gel, felt-tip
  and marker (saturated, soft edges), pencil (grey, grainy on the paper's tooth, a little shiny) and
  whiteboard marker (streaky); inks are filters (transmittance) multiplied onto the surface;
* the camera: a pinhole camera tilted and rolled above the plane (a homography from millimetres to
  pixels), a little barrel distortion and page curl, then light (a lamp's fall-off, a window's
  gradient, a phone flash, vignetting, soft shadows of a phone or hand and hard shadows, warm to cool
  colour temperature, a glare on the whiteboard), defocus and hand-shake blur, sensor noise that is
  relatively stronger in dark areas, imperfect auto white balance, and the phone's processing (chroma
  and luma denoising, a tone curve, a saturation boost, unsharp-mask sharpening with halos), a resize
  to 1200x900 or 900x1200, and JPEG at quality 70-95 with chroma subsampling, sometimes stored turned
  with an EXIF Orientation tag (6 or 8);
* and sometimes (b-cropped) the photo is cropped to the digit and shrunk before it is shared.

The digits' boxes come from the ink's coverage warped through the same geometry as the photo.

How it differs in intent from mnistlab/scenes.py: it was written without reading that generator
(only its `Scene` and `DigitSource` classes are reused), from its own idea of how people photograph
what they wrote, so that the photo reader can be checked against scenes it was not tuned to. All its
conditions are prefixed "b-". It uses MNIST test images only, through `DigitSource`.

    python bench/photo_scenes_b.py --out /tmp/b --condition all --count 8 --split tune --sheet
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage.morphology import skeletonize

from mnistlab.scenes import DigitSource, Scene

KINDS = {
    "b-notebook": "digit",
    "b-printer-paper": "digit",
    "b-sticky-note": "digit",
    "b-pencil": "digit",
    "b-whiteboard": "digit",
    "b-far": "digit",
    "b-cropped": "digit",
    "b-number": "number",
    "b-blank": "blank",
    "b-junk": "junk",
}
CONDITIONS = tuple(KINDS)
SIZE = (1200, 900)  # (width, height) of a landscape photo as the app saves it
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]
WORDS = ["hello", "milk", "eggs", "note", "call", "yes", "no", "ok", "Tom", "Anna", "todo", "abc", "test",
         "hi", "bread", "keys", "cat", "sun", "map", "why", "home", "Mum", "wifi", "page", "pen"]


def scene_rng(condition: str, seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{condition}/{seed}/{split}".encode()))


# ----------------------------------------------------------------------------------------------
# Small helpers


def to_linear(srgb) -> np.ndarray:
    """sRGB 0-255 colour(s) -> linear reflectance or transmittance 0-1."""
    c = np.asarray(srgb, np.float32) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def smooth_noise(rng, shape, scale: float) -> np.ndarray:
    """Gaussian noise of unit spread with features about `scale` pixels wide."""
    h, w = shape
    if scale <= 1.5:
        return rng.standard_normal((h, w), dtype=np.float32)
    small = rng.standard_normal((int(h / scale) + 3, int(w / scale) + 3), dtype=np.float32)
    big = cv2.resize(small, (w + int(2 * scale), h + int(2 * scale)), interpolation=cv2.INTER_CUBIC)
    big = big[int(scale):int(scale) + h, int(scale):int(scale) + w]
    return big / max(float(big.std()), 1e-6)


def project(H: np.ndarray, pts) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def log_uniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def blend(under: np.ndarray, over: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """over * alpha + under * (1 - alpha) for float32 images, alpha (h, w)."""
    a = np.ascontiguousarray(alpha, np.float32)
    return cv2.blendLinear(np.ascontiguousarray(over, np.float32), np.ascontiguousarray(under, np.float32), a, 1 - a)


def pick(rng, options: dict):
    """One key of {option: weight}."""
    keys = list(options)
    p = np.asarray(list(options.values()), float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


class Retry(Exception):
    """The content does not fit the photo with these choices: draw new ones."""


# ----------------------------------------------------------------------------------------------
# Inks and pen strokes

INK_COLOURS = {  # sRGB of a solid stroke of each ink on white paper
    "ballpoint": {"blue": (38, 58, 150), "black": (45, 45, 55), "red": (185, 40, 50)},
    "gel": {"blue": (25, 45, 175), "black": (20, 20, 28), "red": (200, 25, 45)},
    "felt-tip": {"black": (28, 28, 34), "blue": (30, 55, 165), "red": (205, 35, 45), "green": (25, 120, 65)},
    "marker": {"black": (22, 22, 26), "blue": (25, 45, 140), "red": (190, 25, 40), "green": (25, 110, 60),
               "purple": (90, 40, 130)},
    "pencil": {"graphite": (78, 78, 86)},
    "whiteboard": {"black": (35, 36, 40), "blue": (25, 60, 170), "red": (195, 35, 45), "green": (30, 135, 75)},
}
PEN_MM = {"ballpoint": (0.35, 0.6), "gel": (0.45, 0.8), "felt-tip": (0.8, 2.0), "marker": (1.8, 4.5),
          "pencil": (0.35, 0.8), "whiteboard": (3.0, 6.0)}


def choose_ink(rng, kind: str) -> dict:
    colours = INK_COLOURS[kind]
    weights = {"blue": 5, "black": 4, "red": 1.2, "green": 0.8, "purple": 0.4, "graphite": 1}
    colour = pick(rng, {c: weights[c] for c in colours})
    opacity = {"ballpoint": (0.8, 0.95), "gel": (0.88, 1.0), "felt-tip": (0.88, 0.98), "marker": (0.92, 1.0),
               "pencil": (0.55, 0.88), "whiteboard": (0.85, 0.97)}[kind]
    return {"kind": kind, "colour": colour, "srgb": colours[colour], "mm": float(rng.uniform(*PEN_MM[kind])),
            "opacity": float(rng.uniform(*opacity)), "pressure": float(rng.uniform(0.08, 0.2))}


def pen_stroke(skeleton: np.ndarray, ink: dict, ppm: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Draw a centre line (nonzero pixels) with a pen: (coverage, ink alpha), both float32 0-1.

    Coverage is where the pen touched (for the boxes); alpha adds the ink's opacity, its pressure, a
    ballpoint's skips, a marker's streaks; pencil grain is added later against the paper's tooth."""
    radius = max(0.35, ink["mm"] * ppm / 2)
    dist = cv2.distanceTransform((skeleton == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # pressure changes slowly along the stroke: a little wider, and for ballpoint and pencil darker
    pressure = 1 + ink["pressure"] * np.clip(smooth_noise(rng, skeleton.shape, max(6.0, 0.25 * max(skeleton.shape))),
                                             -2, 2)
    soft = {"marker": 1.0, "felt-tip": 0.8, "whiteboard": 1.2}.get(ink["kind"], 0.6)
    coverage = np.clip((radius * pressure - dist) / (2 * soft) + 0.5, 0, 1)
    alpha = coverage * ink["opacity"]
    if ink["kind"] in ("ballpoint", "pencil"):  # lighter where the hand pressed less
        alpha *= np.clip(1 + 2 * (pressure - 1), 0.4, 1)
    if ink["kind"] == "ballpoint":  # the ball skips now and then
        skips = smooth_noise(rng, skeleton.shape, max(2.0, 3 * radius))
        alpha *= 1 - 0.7 * np.clip(skips - 1.2, 0, 1)
    if ink["kind"] in ("whiteboard", "marker"):  # a drying marker leaves streaks
        alpha *= 1 - rng.uniform(0, 0.15) * np.clip(smooth_noise(rng, skeleton.shape, max(1.5, radius / 2)), 0, 2) / 2
    return coverage.astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32)


def pad_to(mask: np.ndarray, pad: int) -> np.ndarray:
    return cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)


def mnist_centre_line(img: np.ndarray, height_px: float, slant: float, rot_deg: float, aspect: float,
                      threshold: float) -> np.ndarray:
    """The centre line of an MNIST digit drawn `height_px` tall, slanted (x shifts by slant * rise),
    turned and stretched: the 28x28 image is upscaled smoothly, blurred, thresholded and thinned."""
    g = img.astype(np.float32) / 255
    ys, xs = np.nonzero(g > 0.25)
    h0 = ys.max() - ys.min() + 1
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    k = height_px / h0
    t = np.radians(rot_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    lin = rot @ np.array([[1, -slant], [0, 1]]) @ np.diag([k * aspect, k])
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 2, ys.min() - 1],
                        [xs.max() + 2, ys.max() + 2], [xs.min() - 1, ys.max() + 2]], float) - [cx, cy]
    placed = corners @ lin.T
    lo, hi = placed.min(0), placed.max(0)
    size = np.ceil(hi - lo).astype(int) + 2
    M = np.c_[lin, -lin @ [cx, cy] - lo + 1]
    big = cv2.warpAffine(g, M, (int(size[0]), int(size[1])), flags=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), max(0.5, 0.45 * k))
    blob = big > threshold * big.max()
    return skeletonize(blob).astype(np.uint8)


def polyline_centre_line(strokes: list[np.ndarray], size_px: float, rng, wobble: float = 0.01) -> np.ndarray:
    """Strokes given in unit coordinates (x right, y down, about 0-1), drawn `size_px` across with a
    hand's wobble, as a one-pixel centre line."""
    pts_all = np.concatenate(strokes)
    lo, hi = pts_all.min(0), pts_all.max(0)
    scale = size_px / max(float((hi - lo).max()), 1e-6)
    w, h = np.ceil((hi - lo) * scale).astype(int) + 3
    canvas = np.zeros((h, w), np.uint8)
    for s in strokes:
        s = np.asarray(s, float)
        if len(s) > 2:  # a smooth random drift along the stroke
            drift = np.cumsum(rng.normal(0, wobble, (len(s), 2)), axis=0)
            drift = cv2.GaussianBlur(drift.astype(np.float32).reshape(-1, 1, 2), (1, 0), 2).reshape(-1, 2)
            s = s + drift - drift.mean(0)
        p = np.round(((s - lo) * scale + 1) * 16).astype(np.int32)
        cv2.polylines(canvas, [p.reshape(-1, 1, 2)], False, 1, 1, cv2.LINE_8, shift=4)
    return canvas


def text_centre_line(word: str, height_px: float, rng) -> np.ndarray:
    """A word in a font, bent a little like handwriting and thinned to its centre line."""
    fonts = [d / f for d in FONT_DIRS for f in ("DejaVuSans.ttf", "DejaVuSans-Oblique.ttf",
                                                 "LiberationSans-Italic.ttf", "LiberationSerif-Italic.ttf",
                                                 "DejaVuSansCondensed-Oblique.ttf") if (d / f).exists()]
    size = max(12, int(height_px * 1.3))
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), size) if fonts else ImageFont.load_default()
    box = font.getbbox(word)
    img = Image.new("L", (box[2] - box[0] + size // 2, box[3] - box[1] + size // 2), 0)
    ImageDraw.Draw(img).text((size // 4 - box[0], size // 4 - box[1]), word, fill=255, font=font)
    g = np.asarray(img, np.float32) / 255
    dx = smooth_noise(rng, g.shape, size / 3) * size * 0.04
    dy = smooth_noise(rng, g.shape, size / 3) * size * 0.04
    yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]].astype(np.float32)
    g = cv2.remap(g, xx + dx, yy + dy, cv2.INTER_LINEAR)
    return skeletonize(g > 0.5).astype(np.uint8)


class Mark:
    """Something on the surface: coverage and alpha rasters at the plane's resolution, placed at
    `origin` (mm, top-left), with an ink transmittance colour."""

    def __init__(self, coverage, alpha, colour_srgb, origin_mm, label=None, index=None, grain=0.0, sheen=0.0):
        self.coverage, self.alpha = coverage, alpha
        self.colour = to_linear(colour_srgb)
        self.origin = np.asarray(origin_mm, float)
        self.label, self.index, self.grain, self.sheen = label, index, grain, sheen

    def ink_bbox_px(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.coverage > 0.5)
        if len(xs) == 0:
            ys, xs = np.nonzero(self.coverage > 0)
        return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1

    def bbox_mm(self, ppm: float) -> np.ndarray:
        x0, y0, x1, y1 = self.ink_bbox_px()
        return np.array([x0, y0, x1, y1]) / ppm + np.r_[self.origin, self.origin]


def make_mark(centre_line, ink, ppm, rng, origin_mm, **kw) -> Mark:
    pad = int(ink["mm"] * ppm) + 4
    coverage, alpha = pen_stroke(pad_to(centre_line, pad), ink, ppm, rng)
    grain = float(rng.uniform(0.55, 0.9)) if ink["kind"] == "pencil" else 0.0
    sheen = float(rng.uniform(0.0, 0.12)) if ink["kind"] == "pencil" else 0.0
    return Mark(coverage, alpha, ink["srgb"], np.asarray(origin_mm) - pad / ppm, grain=grain, sheen=sheen, **kw)


# ----------------------------------------------------------------------------------------------
# Surfaces, painted on a "canvas": a window of the desk plane in millimetres at `ppm` pixels per mm


class Canvas:
    def __init__(self, x0: float, y0: float, x1: float, y1: float, ppm: float):
        self.x0, self.y0, self.ppm = x0, y0, ppm
        self.w, self.h = int(np.ceil((x1 - x0) * ppm)), int(np.ceil((y1 - y0) * ppm))
        self.refl = np.zeros((self.h, self.w, 3), np.float32)

    def px(self, pts_mm) -> np.ndarray:
        return (np.asarray(pts_mm, float) - [self.x0, self.y0]) * self.ppm

    def grid_mm(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0:self.h, 0:self.w].astype(np.float32)
        return xx / self.ppm + self.x0, yy / self.ppm + self.y0

    def polygon_mask(self, pts_mm) -> np.ndarray:
        m = np.zeros((self.h, self.w), np.uint8)
        p = np.round(self.px(pts_mm) * 16).astype(np.int32)
        cv2.fillPoly(m, [p.reshape(-1, 1, 2)], 255, cv2.LINE_AA, shift=4)
        return m.astype(np.float32) / 255

    def lines(self, segments_mm, width_mm: float, colour_srgb, strength: float = 1.0, mask=None, opaque=False):
        """Printed lines (ruling, grids) multiplied onto the surface, or opaque lines (wire) laid on it."""
        layer = np.zeros((self.h, self.w), np.uint8)
        width = width_mm * self.ppm
        thick = max(1, int(round(width)))
        level = int(255 * strength * min(1.0, width))
        for a, b in segments_mm:
            pa, pb = (np.round(self.px([a, b]) * 16).astype(np.int32))
            cv2.line(layer, tuple(int(v) for v in pa), tuple(int(v) for v in pb), level, thick, cv2.LINE_AA, shift=4)
        alpha = layer.astype(np.float32) / 255
        if mask is not None:
            alpha *= mask
        if opaque:
            self.refl[:] = blend(self.refl, np.broadcast_to(to_linear(colour_srgb), self.refl.shape), alpha)
        else:
            self.multiply(alpha, to_linear(colour_srgb))

    def multiply(self, alpha: np.ndarray, colour: np.ndarray, roi=None):
        target = self.refl if roi is None else self.refl[roi]
        target *= 1 - alpha[..., None] * (1 - colour)


def paper_texture(canvas: Canvas, rng, rough: float) -> tuple[np.ndarray, np.ndarray]:
    """A multiplicative paper texture (mottling, grain, fibres) and the paper's tooth (0-1) for pencil."""
    ppm = canvas.ppm
    shape = (canvas.h, canvas.w)
    mottle = smooth_noise(rng, shape, 4 * ppm) * 0.012 * rough
    grain = smooth_noise(rng, shape, max(1.0, 0.08 * ppm))
    grain = cv2.GaussianBlur(grain, (0, 0), 0.6)
    tooth = np.clip(0.5 + 0.3 * grain, 0, 1)
    tex = 1 + mottle + grain * 0.018 * rough * min(1.0, ppm / 6)
    if ppm >= 4:  # fibres: short thin curved lines a little darker or lighter
        fibres = np.zeros(shape, np.float32)
        area = canvas.w * canvas.h / ppm**2
        for _ in range(int(min(500, area * 0.05 * rough))):
            p0 = rng.uniform([0, 0], [canvas.w, canvas.h])
            ang = rng.uniform(0, np.pi)
            length = rng.uniform(0.4, 2.5) * ppm
            bend = rng.normal(0, 0.2)
            t = np.linspace(0, 1, 6)[:, None]
            pts = p0 + length * t * [np.cos(ang), np.sin(ang)] + length * bend * (t * (1 - t)) * [-np.sin(ang),
                                                                                                 np.cos(ang)]
            cv2.polylines(fibres, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], False,
                          float(rng.choice([-1, 1]) * rng.uniform(0.01, 0.04)), 1, cv2.LINE_AA)
        tex += cv2.GaussianBlur(fibres, (0, 0), 0.5) * rough
    return tex.astype(np.float32), tooth.astype(np.float32)


DESKS = {
    "wood": [(196, 152, 104), (150, 100, 62), (110, 72, 48), (214, 180, 132)],
    "laminate": [(225, 225, 220), (200, 196, 186), (170, 172, 175), (232, 226, 210)],
    "dark": [(38, 38, 42), (52, 48, 46), (30, 34, 44)],
    "patterned": [((200, 40, 45), (240, 235, 230)), ((50, 90, 160), (235, 235, 240)), ((40, 110, 80), None),
                  ((120, 120, 125), None)],
}


def paint_desk(canvas: Canvas, desk: dict, rng):
    """The desk at half the canvas's resolution (it is background), enlarged onto the canvas."""
    half = Canvas(canvas.x0, canvas.y0, canvas.x0 + canvas.w / canvas.ppm, canvas.y0 + canvas.h / canvas.ppm,
                  canvas.ppm / 2)
    paint_desk_at(half, desk, rng)
    canvas.refl[:] = cv2.resize(half.refl, (canvas.w, canvas.h), interpolation=cv2.INTER_LINEAR)


def paint_desk_at(canvas: Canvas, desk: dict, rng):
    xx, yy = canvas.grid_mm()
    ang = desk["angle"]
    u = xx * np.cos(ang) + yy * np.sin(ang)  # across the grain / pattern axis
    v = -xx * np.sin(ang) + yy * np.cos(ang)
    shape = (canvas.h, canvas.w)
    kind, base = desk["kind"], desk["colour"]
    if kind == "wood":
        # grain: long lines, a random profile across u, bent gently along the board (v)
        uu = u + 0.6 * np.sin(2 * np.pi * v / rng.uniform(80, 300) + desk["phase"])
        uu += 0.25 * smooth_noise(rng, shape, 30 * canvas.ppm)
        steps = np.arange(float(uu.min()) - 1, float(uu.max()) + 1, 0.125, dtype=np.float32)
        phase = np.interp(uu, steps, np.cumsum(rng.normal(0, 0.16, len(steps))))  # uneven ring widths
        rings = (0.5 + 0.5 * np.sin(2 * np.pi * uu / desk["period"] + phase)) ** 3
        streak = np.interp(uu, steps, cv2.GaussianBlur(rng.standard_normal((len(steps), 1)).astype(np.float32),
                                                       (1, 0), 1.0)[:, 0])
        plank = np.floor(u / desk["plank"])
        tone = 1 + 0.08 * np.sin(plank * 12.9898 + desk["phase"])
        seam = np.exp(-((u - (plank + 1) * desk["plank"]) * canvas.ppm / 1.2) ** 2) * 0.5
        fine = smooth_noise(rng, shape, max(1.0, 0.3 * canvas.ppm)) * 0.02
        f = tone * (1 - 0.18 * rings) * (1 + 0.05 * streak + fine) * (1 - seam)
        colour = to_linear(base)[None, None] * f[..., None]
    elif kind == "patterned" and desk["second"] is not None:  # a checked tablecloth
        sq = desk["period"]
        check = (np.floor(u / sq) + np.floor(v / sq)) % 2
        stripes = (np.floor(u / sq) % 2 + np.floor(v / sq) % 2) / 2
        a, b = to_linear(base), to_linear(desk["second"])
        colour = b[None, None] * (1 - stripes[..., None]) + (a * 0.6 + b * 0.4)[None, None] * stripes[..., None]
        colour = colour * (1 - 0.15 * check[..., None])
        weave = smooth_noise(rng, shape, max(1.0, 0.4 * canvas.ppm)) * 0.05
        colour = colour * (1 + weave[..., None])
    elif kind == "patterned":  # a cutting mat (grid) or speckled stone
        colour = np.broadcast_to(to_linear(base), (canvas.h, canvas.w, 3)).copy()
        speck = smooth_noise(rng, shape, max(1.0, 0.5 * canvas.ppm))
        colour *= (1 + 0.12 * np.clip(speck, -2, 2))[..., None]
        grid = np.minimum(np.abs(((u + 5) % 10) - 5), np.abs(((v + 5) % 10) - 5)) * canvas.ppm
        colour *= 1 - 0.3 * np.clip(1.2 - grid, 0, 1)[..., None] * (desk["grid"])
    else:  # laminate or a dark desk: near uniform with speckle and mottling
        speck = smooth_noise(rng, shape, max(1.0, 0.2 * canvas.ppm)) * 0.03
        mottle = smooth_noise(rng, shape, 60 * canvas.ppm) * 0.01
        colour = to_linear(base)[None, None] * (1 + speck + mottle)[..., None]
    canvas.refl[:] = colour


def choose_desk(rng, kinds=("wood", "laminate", "dark", "patterned")) -> dict:
    kind = pick(rng, {k: {"wood": 4, "laminate": 3, "dark": 2, "patterned": 1.5}[k] for k in kinds})
    options = DESKS[kind]
    choice = options[rng.integers(len(options))]
    desk = {"kind": kind, "angle": float(rng.uniform(0, np.pi)), "period": float(rng.uniform(2.5, 7)),
            "plank": float(rng.uniform(90, 180)), "phase": float(rng.uniform(0, 10)), "grid": float(rng.random() < 0.6)}
    if kind == "patterned":
        desk["colour"], desk["second"] = choice
        desk["period"] = float(rng.uniform(8, 22))
    else:
        desk["colour"] = choice
    return desk


PAPERS = {"printer": (246, 246, 243), "notebook": (243, 241, 233), "recycled": (226, 222, 210),
          "whiteboard": (238, 241, 243)}
NOTES = {"yellow": (250, 236, 125), "pink": (250, 165, 195), "orange": (252, 185, 105), "green": (185, 236, 145),
         "blue": (145, 208, 242)}


def choose_surface(rng, kind: str) -> dict:
    """A surface in mm: the sheet (or note, or board) spans `sheet` (x0, y0, x1, y1); `area` is
    where a person writes on it."""
    s = {"kind": kind, "desk": choose_desk(rng)}
    if kind in ("notebook-ruled", "notebook-squared"):
        w, h = [(148, 210), (170, 220), (210, 297)][rng.integers(3)]
        s["sheet"] = (0.0, 0.0, float(w), float(h))
        s["paper"] = PAPERS["notebook"] if rng.random() < 0.6 else PAPERS["printer"]
        s["edge"] = pick(rng, {"spiral": 0.45, "perforated": 0.3, "plain": 0.25})
        s["spacing"] = float(rng.uniform(7, 8.7)) if kind == "notebook-ruled" else 5.0
        s["rule_colour"] = [(150, 182, 222), (160, 175, 200), (175, 200, 215)][rng.integers(3)]
        s["margin"] = float(rng.uniform(18, 32)) if (kind == "notebook-ruled" and rng.random() < 0.7) else None
        s["area"] = (12.0, 14.0, w - 8.0, h - 10.0)
    elif kind in ("printer", "recycled"):
        s["sheet"] = (0.0, 0.0, 210.0, 297.0)
        s["paper"] = PAPERS[kind]
        s["area"] = (15.0, 15.0, 195.0, 282.0)
    elif kind == "sticky":
        side = 76.0 if rng.random() < 0.8 else 51.0
        s["sheet"] = (0.0, 0.0, side, side)
        s["colour"] = pick(rng, {"yellow": 5, "pink": 2, "orange": 1.5, "green": 1.5, "blue": 1.5})
        s["paper"] = NOTES[s["colour"]]
        s["curl"] = float(rng.uniform(0, 1))
        s["pad"] = bool(rng.random() < 0.35)
        s["area"] = (5.0, 12.0, side - 5.0, side - 5.0)
    elif kind == "whiteboard":
        s["sheet"] = (0.0, 0.0, 1200.0, 900.0)
        s["paper"] = PAPERS["whiteboard"]
        s["wall"] = [(222, 218, 205), (200, 208, 214), (236, 233, 225)][rng.integers(3)]
        s["ghosts"] = int(rng.integers(0, 6))
        s["area"] = (40.0, 40.0, 1160.0, 860.0)
    elif kind == "desk":
        s["area"] = (0.0, 0.0, 400.0, 300.0)
    else:
        raise ValueError(kind)
    return s


def paint_surface(canvas: Canvas, s: dict, rng) -> np.ndarray:
    """Paint the desk and the sheet; return the paper's tooth (0-1) for pencil grain."""
    paint_desk(canvas, s["desk"], rng)
    tooth = np.full((canvas.h, canvas.w), 0.5, np.float32)
    if s["kind"] == "desk":
        return tooth
    x0, y0, x1, y1 = s["sheet"]
    outline = sheet_outline(s, rng)
    if s["kind"] == "whiteboard":  # an aluminium frame, the wall beyond it
        frame = canvas.polygon_mask([(x0 - 22, y0 - 22), (x1 + 22, y0 - 22), (x1 + 22, y1 + 22), (x0 - 22, y1 + 22)])
        wall = to_linear(s["wall"])
        canvas.refl[:] = wall * (1 + 0.02 * smooth_noise(rng, (canvas.h, canvas.w), 30 * canvas.ppm))[..., None]
        alu = to_linear((172, 174, 178)) * (1 + 0.05 * np.sin(canvas.grid_mm()[1] * 0.7))[..., None]
        canvas.refl[:] = blend(canvas.refl, alu.astype(np.float32), frame)
    mask = canvas.polygon_mask(outline)
    if s.get("edge") == "spiral":  # holes through the page: the desk shows through
        holes = np.zeros_like(mask)
        for y in np.arange(y0 + 6, y1 - 4, 8.47):
            c = canvas.px([[x0 + 6.5, y]])[0]
            r = 2.2 * canvas.ppm
            cv2.ellipse(holes, (int(c[0] * 16), int(c[1] * 16)), (int(r * 16), int(r * 1.15 * 16)), 0, 0, 360, 1.0,
                        -1, cv2.LINE_AA, shift=4)
        mask *= 1 - holes
    # the sheet's own soft shadow on what lies below (it is a little above the desk, or curled)
    lift = 0.4 + (2.5 * s["curl"] if s["kind"] == "sticky" else 0.0)
    shadow = cv2.GaussianBlur(mask, (0, 0), max(0.7, (0.5 + lift) * canvas.ppm))
    shift = np.float32([[1, 0, 0.6 * lift * canvas.ppm], [0, 1, 0.9 * lift * canvas.ppm]])
    shadow = cv2.warpAffine(shadow, shift, (canvas.w, canvas.h))
    canvas.refl *= (1 - 0.45 * shadow * (1 - mask))[..., None]
    if s["kind"] == "sticky" and s["pad"]:  # the pad's edge under the top note
        under = canvas.polygon_mask(outline + [0.35, 0.7])
        canvas.refl[:] = blend(canvas.refl, np.broadcast_to(0.8 * to_linear(s["paper"]), canvas.refl.shape), under)
    rough = {"whiteboard": 0.25, "sticky": 0.7, "recycled": 1.6}.get(s["kind"], 1.0)
    tex, tooth = paper_texture(canvas, rng, rough)
    paper = to_linear(s["paper"])[None, None] * tex[..., None]
    if s["kind"] == "sticky" and s["curl"] > 0.2:  # the curled lower part faces the light differently
        _, yy = canvas.grid_mm()
        lifted = np.clip((yy - (y0 + 0.55 * (y1 - y0))) / (0.45 * (y1 - y0)), 0, 1) ** 2
        paper = paper * (1 + (s["curl"] * 0.12 * (1 if s["desk"]["angle"] > 1.5 else -1)) * lifted)[..., None]
    canvas.refl[:] = blend(canvas.refl, paper, mask)
    if s["kind"] == "notebook-ruled":
        ys = np.arange(y0 + 20, y1 - 5, s["spacing"])
        canvas.lines([((x0, y), (x1, y)) for y in ys], 0.22, s["rule_colour"], 0.9, mask)
        if s["margin"]:
            canvas.lines([((x0 + s["margin"], y0), (x0 + s["margin"], y1))], 0.3, (225, 110, 125), 0.9, mask)
    elif s["kind"] == "notebook-squared":
        ys = np.arange(y0 + 3, y1, s["spacing"])
        xs = np.arange(x0 + 3, x1, s["spacing"])
        segs = [((x0, y), (x1, y)) for y in ys] + [((x, y0), (x, y1)) for x in xs]
        canvas.lines(segs, 0.15, s["rule_colour"], 0.8, mask)
    if s.get("edge") == "spiral":  # the wire coil over the edge
        segs = [((x0 + 6.5, y + 1.5), (x0 - 4, y - 1.0)) for y in np.arange(y0 + 6, y1 - 4, 8.47)]
        canvas.lines([((a[0], a[1] + 0.9), (b[0], b[1] + 0.9)) for a, b in segs], 1.0, (60, 60, 60), 0.5)
        canvas.lines(segs, 0.9, (165, 167, 172), 1.0, opaque=True)
        canvas.lines([((a[0], a[1] - 0.2), (b[0], b[1] - 0.2)) for a, b in segs], 0.3, (225, 226, 230), 1.0,
                     opaque=True)  # the wire's highlight
    if s["kind"] == "whiteboard":
        paint_ghosts(canvas, s, rng)
    return tooth


def sheet_outline(s: dict, rng) -> np.ndarray:
    x0, y0, x1, y1 = s["sheet"]
    left = np.c_[np.full(60, x0), np.linspace(y1, y0, 60)]
    if s.get("edge") == "perforated":  # torn out of a pad: a ragged edge
        left[:, 0] += np.abs(np.cumsum(rng.normal(0, 0.25, 60))) * 0.5 + rng.uniform(0, 0.6, 60)
    return np.r_[left, [[x1, y0], [x1, y1]]]


def paint_ghosts(canvas: Canvas, s: dict, rng):
    """Whiteboard ghosts: faint smeared remains of wiped-off writing, and a wiping haze."""
    shape = (canvas.h, canvas.w)
    ghost = np.zeros(shape, np.float32)
    cx0, cy0 = canvas.x0, canvas.y0
    for _ in range(s["ghosts"]):
        n = int(rng.integers(4, 9))
        start = rng.uniform([cx0, cy0], [cx0 + canvas.w / canvas.ppm, cy0 + canvas.h / canvas.ppm])
        pts = start + np.cumsum(rng.normal(0, 25, (n, 2)), axis=0)
        p = np.round(canvas.px(pts) * 16).astype(np.int32)
        cv2.polylines(ghost, [p.reshape(-1, 1, 2)], False, float(rng.uniform(0.04, 0.12)),
                      max(1, int(4 * canvas.ppm)), cv2.LINE_AA, shift=4)
    ghost = cv2.GaussianBlur(ghost, (0, 0), max(1.0, 1.5 * canvas.ppm))
    haze = np.clip(smooth_noise(rng, shape, 60 * canvas.ppm), 0, None) * 0.025
    canvas.multiply(np.clip(ghost + haze, 0, 1), to_linear((120, 125, 135)))


# ----------------------------------------------------------------------------------------------
# What is written: digits, numbers, junk


def write_digit(digits: DigitSource, rng, ink: dict, ppm: float, height_mm: float, at_mm, writer: dict) -> Mark:
    img, label, index = digits.handwritten(rng)
    height_px = height_mm * ppm
    line = mnist_centre_line(img, height_px, writer["slant"] + rng.normal(0, 0.05),
                             writer["rot"] + rng.normal(0, 2.0), writer["aspect"] * rng.uniform(0.92, 1.08),
                             float(rng.uniform(0.3, 0.5)))
    return make_mark(line, ink, ppm, rng, at_mm, label=label, index=index)


def choose_writer(rng) -> dict:
    """A person's way of writing: slant, a turn of the whole line, narrow or wide digits."""
    return {"slant": float(rng.normal(0.08, 0.12)), "rot": float(rng.normal(0, 3)),
            "aspect": float(rng.uniform(0.85, 1.2))}


def place(mark: Mark, ppm: float, centre_mm) -> Mark:
    """Move a mark so that its ink's box is centred on `centre_mm`."""
    b = mark.bbox_mm(ppm)
    mark.origin = mark.origin + np.asarray(centre_mm) - [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]
    return mark


def write_number(digits: DigitSource, rng, ink, ppm, height_mm, centre_mm, n) -> list[Mark]:
    """n digits written as people write a number: along a line with a slight slope, uneven gaps
    (sometimes touching), sizes varying a little."""
    writer = choose_writer(rng)
    slope = np.radians(rng.normal(0, 3))
    marks, x = [], 0.0
    for _ in range(n):
        h = height_mm * rng.uniform(0.85, 1.15)
        m = write_digit(digits, rng, ink, ppm, h, (0, 0), writer)
        b = m.bbox_mm(ppm)
        baseline = np.tan(slope) * x + rng.normal(0, 0.06) * height_mm
        m.origin = m.origin + [x - b[0], baseline - b[3]]
        marks.append(m)
        x += (b[2] - b[0]) + rng.uniform(-0.12, 0.35) * height_mm
    boxes = np.array([m.bbox_mm(ppm) for m in marks])
    shift = np.asarray(centre_mm) - [(boxes[:, 0].min() + boxes[:, 2].max()) / 2,
                                     (boxes[:, 1].min() + boxes[:, 3].max()) / 2]
    for m in marks:
        m.origin = m.origin + shift
    return marks


def densify(points, n: int) -> np.ndarray:
    """n points evenly spread (by index) along a polyline, so that a hand's wobble can bend it."""
    points = np.asarray(points, float)
    t = np.linspace(0, len(points) - 1, n)
    return np.c_[np.interp(t, np.arange(len(points)), points[:, 0]), np.interp(t, np.arange(len(points)), points[:, 1])]


def doodle(rng, what: str) -> list[np.ndarray]:
    t = np.linspace(0, 2 * np.pi, 80)
    circle = np.c_[np.cos(t), np.sin(t)]
    if what == "smiley":
        a = np.linspace(0.5, np.pi - 0.5, 30)
        smile = 0.55 * np.c_[np.cos(a), np.sin(a)]
        return [circle, smile, np.array([[-0.35, -0.3], [-0.33, -0.2]]), np.array([[0.35, -0.3], [0.33, -0.2]])]
    if what == "star":
        a = -np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        return [np.c_[np.cos(a), np.sin(a)]]
    if what == "heart":
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [np.c_[x, y] / 16]
    if what == "spiral":
        s = np.linspace(0, 5 * np.pi, 160)
        return [np.c_[s * np.cos(s), s * np.sin(s)] / (5 * np.pi)]
    if what == "house":
        return [np.array([[0, 1], [0, 0.4], [0.5, 0], [1, 0.4], [1, 1], [0, 1]]),
                np.array([[0.4, 1], [0.4, 0.7], [0.6, 0.7], [0.6, 1]])]
    if what == "flower":
        petals = [0.35 * circle + [0.6 * np.cos(a), 0.6 * np.sin(a)] for a in np.arange(6) * np.pi / 3]
        return [0.3 * circle, *petals, np.array([[0, 0.95], [0.05, 2.0]])]
    if what == "arrow":
        return [np.array([[0, 0.5], [1, 0.45]]), np.array([[0.75, 0.25], [1, 0.45], [0.78, 0.68]])]
    raise ValueError(what)


def write_junk(rng, ink, ppm: float, size_mm: float, stains: bool = True) -> tuple[list[Mark], dict]:
    """Something that is not a digit: a word, a doodle, a tick or cross, a crossed-out word, a stain
    (not on a whiteboard)."""
    what = pick(rng, {"word": 3, "doodle": 2.5, "tick": 1.2, "cross-out": 1.5, "stain": 1.5 if stains else 0})
    size_px = size_mm * ppm
    info = {"junk": what}
    if what == "word":
        word = WORDS[rng.integers(len(WORDS))]
        line = text_centre_line(word, size_px / max(1.0, 0.6 * len(word)), rng)  # the word about size_mm wide
        info["word"] = word
    elif what == "doodle":
        shape = ["smiley", "star", "heart", "spiral", "house", "flower", "arrow"][rng.integers(7)]
        line = polyline_centre_line(doodle(rng, shape), size_px, rng)
        info["doodle"] = shape
    elif what == "tick":
        if rng.random() < 0.7:
            strokes = [np.array([[0, 0.55], [0.3, 0.95], [0.45, 0.8], [1.0, 0.0]]) + rng.normal(0, 0.03, (4, 2))]
        else:
            strokes = [np.array([[0, 0], [1, 1]]), np.array([[1, 0.05], [0.05, 0.95]])]
        line = polyline_centre_line([densify(s, 40) for s in strokes], size_px, rng, 0.004)
        info["tick"] = "tick" if len(strokes) == 1 else "cross"
    elif what == "cross-out":  # a word, scribbled over back and forth or struck through
        word = WORDS[rng.integers(len(WORDS))]
        line = text_centre_line(word, size_px / max(1.0, 0.6 * len(word)), rng)
        ys, xs = np.nonzero(line)
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        if rng.random() < 0.7:
            k = int(rng.integers(4, 12))
            t = np.linspace(0, 1, 2 * k) + rng.normal(0, 0.2 / k, 2 * k)
            y = np.tile([0.0, 1.0], k) + rng.normal(0, 0.12, 2 * k)
            pts = np.c_[x0 + t * (x1 - x0), y0 + y * (y1 - y0)]
        else:
            pts = np.array([[x0 - 3, (y0 + y1) / 2], [x1 + 3, (y0 + y1) / 2 + rng.normal(0, 3)],
                            [x0, (y0 + y1) / 2 + 0.2 * (y1 - y0)]])
        pts = densify(pts, 12 * len(pts)) + np.cumsum(rng.normal(0, 0.3, (12 * len(pts), 2)), axis=0)
        cv2.polylines(line, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], False, 1, 1, cv2.LINE_8)
        info["word"] = word
    else:  # a coffee ring or an ink blot
        marks, stain = stain_mark(rng, ink, ppm, size_mm)
        return marks, info | stain
    mark = make_mark(line, ink, ppm, rng, (0, 0))
    return [place(mark, ppm, (0, 0))], info


def stain_mark(rng, ink, ppm: float, size_mm: float) -> tuple[list[Mark], dict]:
    r_mm = size_mm / 2
    r = r_mm * ppm
    n = int(2 * r + 8)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - n / 2
    rad = np.hypot(xx, yy)
    wobble = 1 + 0.04 * smooth_noise(rng, (n, n), n / 6)
    if rng.random() < 0.55:  # a coffee cup's ring: dark rim, faint inside, sometimes broken
        width = max(1.0, rng.uniform(0.4, 1.4) * ppm)
        rim = np.exp(-(((rad - r * wobble) / width) ** 2))
        inside = (rad < r * wobble) * rng.uniform(0.05, 0.25)
        alpha = (rim * rng.uniform(0.4, 0.8) + inside) * np.clip(0.7 + 0.5 * smooth_noise(rng, (n, n), n / 5), 0, 1)
        colour, info = (150, 100, 60), {"stain": "coffee ring"}
    else:  # an ink blot with droplets
        alpha = (rad < r * 0.6 * (1 + 0.25 * smooth_noise(rng, (n, n), n / 8))).astype(np.float32)
        for _ in range(int(rng.integers(2, 8))):
            c = rng.uniform(0.1, 0.9, 2) * n
            cv2.circle(alpha, (int(c[0]), int(c[1])), max(1, int(rng.uniform(0.02, 0.08) * n)), 1.0, -1, cv2.LINE_AA)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 0.8) * rng.uniform(0.7, 0.95)
        colour, info = ink["srgb"], {"stain": "ink blot"}
    alpha = np.clip(alpha, 0, 1).astype(np.float32)
    mark = Mark((alpha > 0.05).astype(np.float32), alpha, colour, (0, 0))
    return [place(mark, ppm, (0, 0))], info


def paint_marks(canvas: Canvas, marks: list[Mark], tooth: np.ndarray):
    for m in marks:
        x, y = np.round(canvas.px(m.origin[None])[0]).astype(int)
        h, w = m.alpha.shape
        cx0, cy0, cx1, cy1 = max(0, x), max(0, y), min(canvas.w, x + w), min(canvas.h, y + h)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        a = m.alpha[cy0 - y:cy1 - y, cx0 - x:cx1 - x]
        if m.grain:  # graphite stays on the paper's tooth
            a = a * np.clip(1 - m.grain * (1.0 - 2 * tooth[cy0:cy1, cx0:cx1]) - 0.25 * m.grain, 0, 1)
        canvas.multiply(a, m.colour, (slice(cy0, cy1), slice(cx0, cx1)))


# ----------------------------------------------------------------------------------------------
# The scene plan per condition: surface, marks, and the photo's scale


def content_centre(rng, s: dict, size_mm, near_edge: float = 0.0) -> np.ndarray:
    """Where on the surface's writing area the content's centre goes."""
    ax0, ay0, ax1, ay1 = s["area"]
    w, h = size_mm
    lo = np.array([ax0 + w / 2, ay0 + h / 2])
    hi = np.maximum(lo, [ax1 - w / 2, ay1 - h / 2])
    c = rng.uniform(lo, hi)
    if rng.random() < near_edge:  # close to the binding edge, or the top of the page
        c[0] = min(hi[0], lo[0] + rng.uniform(0, 25))
    return c


def plan(condition: str, rng, digits: DigitSource, scale: float) -> dict:
    """Choose the surface, what is written, and the photo's pixels per mm (at the internal scale)."""
    kind = KINDS[condition]
    p = {"marks": []}
    height_px = None
    if condition == "b-notebook":
        surf = choose_surface(rng, pick(rng, {"notebook-ruled": 0.6, "notebook-squared": 0.4}))
        ink = choose_ink(rng, pick(rng, {"ballpoint": 0.65, "gel": 0.35}))
        height_mm, height_px = rng.uniform(6, 15), log_uniform(rng, 70, 380)
    elif condition == "b-printer-paper":
        surf = choose_surface(rng, "printer")
        ink = choose_ink(rng, pick(rng, {"ballpoint": 0.35, "gel": 0.25, "felt-tip": 0.4}))
        height_mm, height_px = rng.uniform(8, 45), log_uniform(rng, 80, 400)
    elif condition == "b-sticky-note":
        surf = choose_surface(rng, "sticky")
        ink = choose_ink(rng, pick(rng, {"felt-tip": 0.5, "marker": 0.5}))
        side = surf["sheet"][2]
        note_px = rng.uniform(330, 640)
        height_mm = side * rng.uniform(0.42, 0.72)
        height_px = min(400.0, height_mm * note_px / side)
    elif condition == "b-pencil":
        surf = choose_surface(rng, pick(rng, {"printer": 0.35, "notebook-ruled": 0.25, "notebook-squared": 0.2,
                                               "recycled": 0.2}))
        ink = choose_ink(rng, "pencil")
        height_mm, height_px = rng.uniform(6, 30), log_uniform(rng, 70, 380)
    elif condition == "b-whiteboard":
        surf = choose_surface(rng, "whiteboard")
        ink = choose_ink(rng, "whiteboard")
        height_mm, height_px = rng.uniform(40, 130), log_uniform(rng, 90, 400)
    elif condition == "b-far":
        surf = choose_surface(rng, pick(rng, {"printer": 0.35, "notebook-ruled": 0.3, "notebook-squared": 0.15,
                                               "sticky": 0.2}))
        ink = choose_ink(rng, pick(rng, {"ballpoint": 0.3, "gel": 0.25, "felt-tip": 0.3, "marker": 0.15}))
        height_mm = rng.uniform(9, 25) if surf["kind"] != "sticky" else rng.uniform(25, 45)
        height_px = rng.uniform(30, 60)
    elif condition in ("b-number", "b-blank", "b-junk"):
        surf_kind = pick(rng, {"notebook-ruled": 3, "notebook-squared": 2, "printer": 3, "recycled": 1, "sticky": 2,
                               "whiteboard": 1.5, "desk": 1 if condition == "b-blank" else 0})
        surf = choose_surface(rng, surf_kind)
        pens = {"ballpoint": 3, "gel": 2, "felt-tip": 2, "marker": 1 if surf_kind == "sticky" else 0.3, "pencil": 1.5}
        ink_kind = "whiteboard" if surf_kind == "whiteboard" else pick(rng, pens)
        ink = choose_ink(rng, ink_kind)
        n = int(rng.integers(2, 6)) if condition == "b-number" else 1
        big = surf_kind == "whiteboard"
        if surf_kind == "sticky":
            height_mm = (surf["sheet"][2] - 10) / (n * 0.75 + 0.3) * rng.uniform(0.6, 0.95)
        else:
            height_mm = rng.uniform(40, 120) if big else rng.uniform(6, 20)
        height_px = min(log_uniform(rng, 50, 260), 0.72 * SIZE[1] / (n * 0.75 + 0.3))
        p["n"] = n
    else:
        raise ValueError(f"unknown condition {condition!r}; choose from {CONDITIONS}")
    # a pen's line is 3-11% of a digit's height: people write bigger with a thicker pen, smaller with
    # a fine one (on a small note, the pen is the thinner one)
    most = (surf["sheet"][2] - 10) / (p.get("n", 1) * 0.75 + 0.3) if surf["kind"] == "sticky" else 1e9
    ink["mm"] = min(ink["mm"], most / 9)
    height_mm = min(max(float(height_mm), ink["mm"] * rng.uniform(9, 18)), ink["mm"] * 30, most)
    ppm_final = float(height_px) / height_mm
    closest = rng.uniform(12, 20)  # a phone focuses no closer than 7-10 cm: 60-100 mm across the frame
    if ppm_final > closest:
        if rng.random() < 0.5:  # people who photograph from close write big
            height_mm = float(height_px) / closest
        ppm_final = closest
    if surf["kind"] == "sticky" and condition != "b-far":  # the note must not fill the frame
        ppm_final = min(ppm_final, rng.uniform(300, 640) / surf["sheet"][2])
    ppm = ppm_final * 1.1  # the plane's raster: a little finer than the saved photo
    p.update(surface=surf, ink=ink, ppm=ppm, ppm_photo=ppm_final * scale, height_mm=height_mm)
    if kind == "digit":
        m = write_digit(digits, rng, ink, ppm, height_mm, (0, 0), choose_writer(rng))
        b = m.bbox_mm(ppm)
        near = 0.45 if surf.get("edge") else 0.2 if surf["kind"] == "whiteboard" else 0.1
        p["marks"] = [place(m, ppm, content_centre(rng, surf, (b[2] - b[0], b[3] - b[1]), near))]
    elif kind == "number":
        marks = write_number(digits, rng, ink, ppm, height_mm, (0, 0), p["n"])
        boxes = np.array([m.bbox_mm(ppm) for m in marks])
        size = (boxes[:, 2].max() - boxes[:, 0].min(), boxes[:, 3].max() - boxes[:, 1].min())
        centre = content_centre(rng, surf, size, 0.2)
        for m in marks:
            m.origin = m.origin + centre
        p["marks"] = marks
    elif kind == "junk":
        marks, p["junk"] = write_junk(rng, ink, ppm, height_mm * rng.uniform(0.8, 1.6), surf["kind"] != "whiteboard")
        b = marks[0].bbox_mm(ppm)
        centre = content_centre(rng, surf, (b[2] - b[0], b[3] - b[1]))
        for m in marks:
            m.origin = m.origin + centre
        p["marks"] = marks
    return p


# ----------------------------------------------------------------------------------------------
# Camera geometry


def camera_matrix(ppm: float, tilt_x: float, tilt_y: float, roll: float, f: float, centre_mm, principal) -> np.ndarray:
    """Homography from the desk plane (mm) to photo pixels: the plane point `centre_mm` lands at
    `principal`, where the photo has `ppm` pixels per mm; the camera is tilted by tilt_x/tilt_y and
    rolled by `roll` (degrees), with focal length `f` pixels."""
    ax, ay, az = np.radians([tilt_x, tilt_y, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ rx @ ry
    m = np.column_stack([r[:, 0] * ppm, r[:, 1] * ppm, [0, 0, f]])
    k = np.array([[f, 0, principal[0]], [0, f, principal[1]], [0, 0, 1]])
    t = np.array([[1, 0, -centre_mm[0]], [0, 1, -centre_mm[1]], [0, 0, 1]])
    return k @ m @ t


def choose_camera(rng, p: dict, size) -> dict:
    """Tilt, roll, focal length and aim such that everything written lies inside the frame."""
    w, h = size
    boxes = np.array([m.bbox_mm(p["ppm"]) for m in p["marks"]]) if p["marks"] else None
    if boxes is not None:
        bx = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])
    else:
        bx = np.r_[content_centre(rng, p["surface"], (10, 10)) - 5, 0, 0]
        bx[2:] = bx[:2] + 10
    centre = (bx[:2] + bx[2:]) / 2
    corners = [[bx[0], bx[1]], [bx[2], bx[1]], [bx[2], bx[3]], [bx[0], bx[3]]]
    margin = 0.06 * min(w, h)
    cam = {}
    for attempt in range(12):
        gentle = 0.7**attempt
        tilt = rng.normal(0, [8, 6]) * gentle
        tilt *= min(1.0, 20 / max(float(np.hypot(*tilt)), 1e-6))  # phones are held within ~20 degrees of flat
        cam = {"tilt_x": float(tilt[0]), "tilt_y": float(tilt[1]),
               "roll": float(np.clip(rng.normal(0, 4), -10, 10) * gentle),
               "f": float(max(w, h) * rng.uniform(0.8, 1.15)),
               "ppm": p["ppm_photo"] * (0.92**max(0, attempt - 4)), "k1": float(rng.uniform(-0.02, 0.05))}
        H = camera_matrix(cam["ppm"], cam["tilt_x"], cam["tilt_y"], cam["roll"], cam["f"], centre, (w / 2, h / 2))
        q = project(H, corners)
        lo = np.array([margin, margin]) - q.min(0)
        hi = np.array([w - margin, h - margin]) - q.max(0)
        if np.all(lo <= hi):
            # aim off-centre: people rarely centre what they photograph exactly
            spread = rng.beta(2, 2, 2) if rng.random() < 0.8 else rng.uniform(0, 1, 2)
            shift = lo + (hi - lo) * spread
            cam["H"] = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ H
            return cam
    raise Retry("the writing does not fit the frame")


def sample_maps(cam: dict, size, canvas: Canvas, curl: dict, step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """For every photo pixel, where it looks on the canvas (remap maps), through lens distortion,
    the camera's homography and the page's curl. Computed on a coarse grid, then interpolated."""
    w, h = size
    gw, gh = w // step + 2, h // step + 2
    u = (np.arange(gw, dtype=np.float64) + 0.5) * step - 0.5
    v = (np.arange(gh, dtype=np.float64) + 0.5) * step - 0.5
    uu, vv = np.meshgrid(u, v)
    x, y = lens_to_ideal(uu, vv, cam["k1"], size)
    hinv = np.linalg.inv(cam["H"])
    d = hinv[2, 0] * x + hinv[2, 1] * y + hinv[2, 2]
    xm = (hinv[0, 0] * x + hinv[0, 1] * y + hinv[0, 2]) / d
    ym = (hinv[1, 0] * x + hinv[1, 1] * y + hinv[1, 2]) / d
    xm -= curl["ax"] * np.sin(2 * np.pi * ym / curl["lx"] + curl["px"])
    ym -= curl["ay"] * np.sin(2 * np.pi * xm / curl["ly"] + curl["py"])
    mx = ((xm - canvas.x0) * canvas.ppm).astype(np.float32)
    my = ((ym - canvas.y0) * canvas.ppm).astype(np.float32)
    big = (gw * step, gh * step)
    mx = cv2.resize(mx, big, interpolation=cv2.INTER_LINEAR)[:h, :w]
    my = cv2.resize(my, big, interpolation=cv2.INTER_LINEAR)[:h, :w]
    return mx, my


def lens_to_ideal(u, v, k1: float, size):
    """A photo pixel -> where an ideal pinhole camera would have imaged the ray (k1 > 0: barrel)."""
    w, h = size
    cx, cy, r0 = (w - 1) / 2, (h - 1) / 2, np.hypot(w, h) / 2
    du, dv = u - cx, v - cy
    f = 1 + k1 * (du * du + dv * dv) / r0**2
    return cx + du * f, cy + dv * f


def visible_window(cam: dict, size, curl: dict) -> tuple[float, float, float, float]:
    """The desk-plane rectangle (mm) that the photo sees, with a margin."""
    w, h = size
    t = np.linspace(0, 1, 25)
    border = np.r_[np.c_[t * w, 0 * t], np.c_[t * w, 0 * t + h], np.c_[0 * t, t * h], np.c_[0 * t + w, t * h]]
    x, y = lens_to_ideal(border[:, 0], border[:, 1], cam["k1"], size)
    q = project(np.linalg.inv(cam["H"]), np.c_[x, y])
    pad = 12 / cam["ppm"] + max(curl["ax"], curl["ay"]) + 1
    lo, hi = q.min(0) - pad, q.max(0) + pad
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


# ----------------------------------------------------------------------------------------------
# Light and the phone's camera pipeline

CCT = np.array([2600, 3200, 4000, 5000, 5800, 6500, 8000])
CCT_RGB = np.array([[1.0, 0.70, 0.40], [1.0, 0.78, 0.55], [1.0, 0.87, 0.72], [1.0, 0.94, 0.86],
                    [1.0, 0.98, 0.95], [0.96, 0.98, 1.0], [0.86, 0.93, 1.0]])


def light_colour(kelvin: float) -> np.ndarray:
    return np.array([np.interp(kelvin, CCT, CCT_RGB[:, c]) for c in range(3)], np.float32)


def lighting(rng, size, surface_kind: str, shadows: float = 1.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Illumination over the photo (h, w, 3), an additive glare (h, w, 3) and what was chosen;
    `shadows` > 1 makes a shadow of the phone, a hand or an object likelier.
    Computed at a quarter of the resolution: light varies smoothly, shadows have soft edges."""
    w, h = size
    sw, sh = w // 4, h // 4
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xn, yn = xx / sw, yy / sh * (h / w)  # units of the photo's width
    source = pick(rng, {"lamp": 3, "window": 3, "overhead": 2.5, "flash": 1})
    kelvin = {"lamp": rng.uniform(2600, 3600), "window": rng.uniform(5000, 8000),
              "overhead": rng.uniform(3200, 5600), "flash": rng.uniform(5200, 6000)}[source]
    info = {"light": source, "kelvin": int(kelvin)}
    if source == "lamp":
        ang = rng.uniform(0, 2 * np.pi)
        lx, ly = 0.5 + np.cos(ang) * rng.uniform(0.4, 1.1), 0.4 + np.sin(ang) * rng.uniform(0.4, 1.1)
        height = rng.uniform(0.4, 1.0)
        key = height**3 / (height**2 + (xn - lx) ** 2 + (yn - ly) ** 2) ** 1.5
    elif source == "window":
        ang = rng.uniform(0, 2 * np.pi)
        key = 1 + rng.uniform(0.15, 0.6) * ((xn - 0.5) * np.cos(ang) + (yn - 0.37) * np.sin(ang))
    elif source == "overhead":
        key = 1 + rng.uniform(0, 0.2) * (xn - 0.5) + rng.uniform(-0.1, 0.1) * yn
    else:
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.45)
        key = 1 / (1 + ((xn - cx) ** 2 + (yn - cy) ** 2) / rng.uniform(0.35, 0.9) ** 2) ** 2
    key = (key / key.max()).astype(np.float32)
    shadow, kind = cast_shadow(rng, (sw, sh), source, shadows)
    info["shadow"] = kind
    ambient = rng.uniform(0.25, 0.55) if source != "flash" else rng.uniform(0.1, 0.3)
    amb_kelvin = kelvin + rng.normal(0, 800) + (1500 if source == "lamp" else 0)  # daylight fills in
    light = (light_colour(kelvin)[None, None] * (key * (1 - shadow))[..., None]
             + ambient * light_colour(amb_kelvin)[None, None])
    vignette = rng.uniform(0.1, 0.4)
    r2 = ((xn - 0.5) ** 2 + (yn - 0.5 * h / w) ** 2) / (0.25 + 0.25 * (h / w) ** 2)
    light = light * (1 - vignette * r2)[..., None]
    glare = np.zeros((sh, sw), np.float32)
    if surface_kind == "whiteboard" or (source == "flash" and surface_kind == "sticky" and rng.random() < 0.5):
        glare = glare_field(rng, (sw, sh), source)
        info["glare"] = float(glare.max())
    info["vignette"] = round(float(vignette), 3)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    glare = cv2.resize(glare, (w, h), interpolation=cv2.INTER_LINEAR)[..., None] * light_colour(kelvin)[None, None]
    return light.astype(np.float32), glare.astype(np.float32), info


def cast_shadow(rng, small, source: str, odds: float = 1.0) -> tuple[np.ndarray, str]:
    """Where the key light is blocked (0-1): by the phone, the photographer's hand, or an object."""
    sw, sh = small
    kind = pick(rng, {"none": 4 / odds, "phone": 2, "hand": 1.5, "hard": 1} if source != "flash" else {"none": 1})
    mask = np.zeros((sh, sw), np.float32)
    if kind == "none":
        return mask, kind
    side = rng.integers(4)
    ang = rng.uniform(-0.6, 0.6) + side * np.pi / 2  # direction the shadow comes from
    d = np.array([np.cos(ang), np.sin(ang)])
    centre = np.array([sw / 2, sh / 2]) + d * np.array([sw, sh]) * rng.uniform(0.35, 0.75)
    if kind == "phone":
        length, width = rng.uniform(0.5, 1.0) * sw, rng.uniform(0.25, 0.45) * sw
        box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(width), float(length)),
                             float(np.degrees(ang) + 90 + rng.normal(0, 15))))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1.0, cv2.LINE_AA)
        blur = rng.uniform(0.015, 0.05) * sw
    elif kind == "hand":
        palm = tuple(int(v) for v in centre)
        axes = (int(rng.uniform(0.2, 0.3) * sw), int(rng.uniform(0.14, 0.22) * sw))
        cv2.ellipse(mask, palm, axes, float(np.degrees(ang)), 0, 360, 1.0, -1, cv2.LINE_AA)
        for k in range(4):  # fingers reaching into the frame
            a = ang + np.pi + (k - 1.5) * 0.22
            tip = centre + np.array([np.cos(a), np.sin(a)]) * sw * rng.uniform(0.3, 0.42)
            cv2.line(mask, palm, tuple(int(v) for v in tip), 1.0, int(0.05 * sw), cv2.LINE_AA)
        blur = rng.uniform(0.02, 0.06) * sw
    else:  # the straight edge of a book, a laptop, a monitor
        normal = d
        off = rng.uniform(0.15, 0.45) * sw
        xx, yy = np.meshgrid(np.arange(sw), np.arange(sh))
        mask = (((xx - sw / 2) * normal[0] + (yy - sh / 2) * normal[1]) > off).astype(np.float32)
        blur = rng.uniform(0.3, 2.0)
    mask = cv2.GaussianBlur(mask, (0, 0), blur)
    return mask * rng.uniform(0.55, 0.95), kind


def glare_field(rng, small, source: str) -> np.ndarray:
    """Light reflected by a glossy board: a window's or a ceiling lamp's blurred image, or the flash."""
    sw, sh = small
    mask = np.zeros((sh, sw), np.float32)
    c = (int(rng.uniform(0.1, 0.9) * sw), int(rng.uniform(0.1, 0.9) * sh))
    if source == "flash":
        cv2.circle(mask, c, int(rng.uniform(0.03, 0.08) * sw), 1.0, -1, cv2.LINE_AA)
        blur = rng.uniform(0.02, 0.05) * sw
    else:
        size = (float(rng.uniform(0.15, 0.6) * sw), float(rng.uniform(0.05, 0.3) * sw))
        box = cv2.boxPoints(((float(c[0]), float(c[1])), size, float(rng.uniform(0, 180))))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1.0, cv2.LINE_AA)
        blur = rng.uniform(0.03, 0.12) * sw
    mask = cv2.GaussianBlur(mask, (0, 0), blur)
    return mask / max(float(mask.max()), 1e-6) * rng.uniform(0.15, 1.1)


def tone_lut(rng) -> tuple[np.ndarray, dict]:
    """Linear -> display: sRGB gamma and the phone's S-shaped contrast curve, as a 4096-entry table."""
    x = np.linspace(0, 1, 4096)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    contrast = rng.uniform(0.0, 0.6)
    s = srgb + contrast * 0.12 * np.sin(2 * np.pi * srgb) * -1  # darkens shadows, lifts highlights
    black = rng.uniform(0, 0.03)
    return np.clip(black + (1 - black) * s, 0, 1).astype(np.float32), {"contrast": round(float(contrast), 2)}


def phone_camera(radiance: np.ndarray, illuminant: np.ndarray, rng, out_size) -> tuple[np.ndarray, dict]:
    """Linear scene radiance (h, w, 3) -> the 8-bit RGB photo the phone app saves at `out_size`;
    `illuminant` is the main light's colour, which auto white balance tries to find."""
    h, w = radiance.shape[:2]
    info = {}
    # optics: defocus and hand shake
    sigma = rng.uniform(0.3, 1.2) if rng.random() < 0.75 else rng.uniform(1.3, 3.2)
    img = cv2.GaussianBlur(radiance, (0, 0), sigma)
    info["defocus"] = round(float(sigma), 2)
    if rng.random() < 0.35:
        length = rng.uniform(2, 10)
        ang = rng.uniform(0, np.pi)
        n = int(np.ceil(length)) | 1
        kernel = np.zeros((n, n), np.float32)
        c = n // 2
        d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        cv2.line(kernel, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))),
                 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
        info["motion"] = round(float(length), 1)
    # auto exposure: the frame's mean to a mid level, but the brightest material (paper, a note, the
    # board) at least fairly bright and not much clipped
    luma = img[::7, ::7] @ np.float32([0.2126, 0.7152, 0.0722])
    top = max(float(np.percentile(luma, 99.5)), 1e-4)
    gain = rng.uniform(0.15, 0.3) / max(float(luma.mean()), 1e-4)
    gain = min(max(gain, rng.uniform(0.45, 0.9) / top), rng.uniform(1.0, 1.4) / top)
    img *= gain
    # sensor noise: shot noise grows with the signal, read noise does not: dark areas are noisier
    iso = pick(rng, {"low": 3, "mid": 3, "high": 1})
    shot, read = {"low": (0.0006, 0.0015), "mid": (0.0015, 0.003), "high": (0.004, 0.006)}[iso]
    # drawn at half resolution: demosaicking and denoising make the noise blotchy, not per-pixel
    # (mostly in brightness: the colour part is what the chroma denoising below removes)
    noise = rng.standard_normal((h // 2 + 1, w // 2 + 1, 3), dtype=np.float32)
    noise = 0.4 * noise + noise.mean(2, keepdims=True) * 0.9
    noise = cv2.resize(noise, (w + w % 2, h + h % 2), interpolation=cv2.INTER_LINEAR)[:h, :w] * 1.4
    level = np.clip(img @ np.float32([0.2126, 0.7152, 0.0722]), 0, None)
    img += noise * np.sqrt(shot * level + read**2)[..., None]
    info["iso"] = iso
    # auto white balance: finds the light's colour only partly (a warm lamp stays a little warm) and
    # is pulled by the scene's own colours (a big yellow note looks like yellow light)
    tint = img[::5, ::5].reshape(-1, 3).mean(0) / illuminant
    tint = tint / tint.mean()
    strength, fooled = rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.35)
    estimate = illuminant**strength * np.maximum(tint, 1e-3) ** fooled * np.exp(rng.normal(0, 0.02, 3))
    img *= (estimate[1] / estimate).astype(np.float32)
    info["awb"] = [round(float(strength), 2), round(float(fooled), 2)]
    # tone curve, then processing in YCrCb: denoise, sharpen, saturate
    lut, tone = tone_lut(rng)
    info.update(tone)
    img = lut[np.clip(img * 4095, 0, 4095).astype(np.uint16)]
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = cv2.split(ycc)
    chroma_blur = rng.uniform(1.0, 3.0)
    cr, cb = cv2.GaussianBlur(cr, (0, 0), chroma_blur), cv2.GaussianBlur(cb, (0, 0), chroma_blur)
    if rng.random() < 0.6:
        y = cv2.bilateralFilter(y, 5, float(rng.uniform(0.03, 0.08)), 2.0)
    else:
        y = cv2.GaussianBlur(y, (0, 0), rng.uniform(0.4, 0.8))
    amount, radius = rng.uniform(0.3, 1.6), rng.uniform(0.8, 2.5)
    y = y + amount * (y - cv2.GaussianBlur(y, (0, 0), radius))  # unsharp mask: crisp edges, halos
    sat = rng.uniform(1.0, 1.35)
    cr, cb = 0.5 + (cr - 0.5) * sat, 0.5 + (cb - 0.5) * sat
    img = cv2.cvtColor(cv2.merge([y, cr, cb]), cv2.COLOR_YCrCb2RGB)
    info.update(sharpen=round(float(amount), 2), saturation=round(float(sat), 2))
    if (w, h) != tuple(out_size):
        img = cv2.resize(img, tuple(out_size), interpolation=cv2.INTER_AREA)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), info


def encode_jpeg(rgb: np.ndarray, rng, orientation: int) -> tuple[bytes, dict]:
    """JPEG as a phone app saves it: quality 70-95, chroma subsampled, maybe stored turned with an
    EXIF Orientation tag saying how to turn it upright."""
    img = Image.fromarray(rgb)
    if orientation == 6:  # stored turned a quarter to the left; viewers turn it right
        img = img.transpose(Image.Transpose.ROTATE_90)
    elif orientation == 8:
        img = img.transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x010F] = ["Apple", "samsung", "Google", "Xiaomi"][rng.integers(4)]  # Make
    if orientation != 1:
        exif[0x0112] = orientation
    quality = int(rng.integers(70, 96))
    subsampling = int(pick(rng, {2: 0.8, 1: 0.15, 0: 0.05}))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=subsampling, exif=exif.tobytes())
    return buf.getvalue(), {"quality": quality, "subsampling": ["4:4:4", "4:2:2", "4:2:0"][subsampling]}


# ----------------------------------------------------------------------------------------------
# The scene


def render(condition: str, seed: int, digits: DigitSource) -> tuple[Scene, list[np.ndarray]]:
    """The scene and each digit's ink mask (bool, upright view at the photo's size)."""
    if condition not in KINDS:
        raise ValueError(f"unknown condition {condition!r}; choose from {CONDITIONS}")
    if condition == "b-cropped":
        return render_cropped(seed, digits)
    rng = scene_rng(condition, seed, digits.split)
    for _ in range(10):
        try:
            return render_once(condition, rng, digits)
        except Retry:
            continue
    raise RuntimeError(f"no scene fits for {condition}/{seed}")


def render_once(condition: str, rng, digits: DigitSource) -> tuple[Scene, list[np.ndarray]]:
    portrait = rng.random() < 0.5
    out = (SIZE[1], SIZE[0]) if portrait else SIZE
    orientation = int(pick(rng, {1: 0.4, 6: 0.45, 8: 0.15} if portrait else {1: 0.8, 6: 0.1, 8: 0.1}))
    scale = float(rng.uniform(1.0, 1.25))  # the sensor's image is larger than the saved one
    size = (int(round(out[0] * scale)), int(round(out[1] * scale)))
    p = plan(condition, rng, digits, scale)
    cam = choose_camera(rng, p, size)
    fov = max(size) / cam["ppm"]
    curl = {"ax": float(rng.uniform(0, 0.006) * fov), "ay": float(rng.uniform(0, 0.006) * fov),
            "lx": float(fov * rng.uniform(0.8, 2.5)), "ly": float(fov * rng.uniform(0.8, 2.5)),
            "px": float(rng.uniform(0, 6.3)), "py": float(rng.uniform(0, 6.3))}
    canvas = Canvas(*visible_window(cam, size, curl), p["ppm"])
    if canvas.w * canvas.h > 9e6:
        raise Retry("a very oblique view")
    tooth = paint_surface(canvas, p["surface"], rng)
    paint_marks(canvas, p["marks"], tooth)
    mx, my = sample_maps(cam, size, canvas, curl)
    refl = cv2.remap(canvas.refl, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    masks, sheen = [], np.zeros(size[::-1], np.float32)
    for m in p["marks"]:
        ox, oy = canvas.px(m.origin[None])[0]
        cov = cv2.remap(m.coverage, mx - np.float32(round(ox)), my - np.float32(round(oy)), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if m.label is not None:
            small = cv2.resize(cov, out, interpolation=cv2.INTER_AREA)
            masks.append(small > min(0.5, 0.5 * float(small.max())))
        if m.sheen:
            sheen += cov * m.sheen
    light, glare, light_info = lighting(rng, size, p["surface"]["kind"], 4.0 if condition == "b-printer-paper" else 1.0)
    radiance = refl * light + glare + sheen[..., None] * light
    rgb, camera_info = phone_camera(radiance, light_colour(light_info["kelvin"]), rng, out)
    jpeg, jpeg_info = encode_jpeg(rgb, rng, orientation)
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0 or xs.min() == 0 or ys.min() == 0 or xs.max() == out[0] - 1 or ys.max() == out[1] - 1:
            raise Retry("a digit is cut by the frame")
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)])
    digit_marks = [m for m in p["marks"] if m.label is not None]
    kind = KINDS[condition]
    surf, ink = p["surface"], p["ink"]
    details = {
        "surface": surf["kind"], "desk": surf["desk"]["kind"],
        **({"paper_colour": surf["colour"]} if surf["kind"] == "sticky" else {}),
        **({"edge": surf["edge"]} if "edge" in surf else {}),
        "ink": ink["kind"], "ink_colour": ink["colour"], "pen_mm": round(ink["mm"], 2),
        "written_mm": round(p["height_mm"], 1),
        "height_px": int(np.mean([b[3] for b in boxes])) if boxes else None,
        "tilt": [round(cam["tilt_x"], 1), round(cam["tilt_y"], 1)], "roll": round(cam["roll"], 1),
        "barrel": round(cam["k1"], 3), "sensor_scale": round(scale, 2),
        **light_info, **camera_info, **jpeg_info, **p.get("junk", {}),
    }
    scene = Scene(jpeg=jpeg, text="".join(m.label for m in digit_marks) if kind in ("digit", "number") else None,
                  boxes=[tuple(b) for b in boxes], kind=kind, condition=condition, size=out, orientation=orientation,
                  mnist_indices=[m.index for m in digit_marks], details=details)
    return scene, masks


CROPPED_FROM = ("b-notebook", "b-printer-paper", "b-sticky-note", "b-pencil", "b-whiteboard")


def render_cropped(seed: int, digits: DigitSource) -> tuple[Scene, list[np.ndarray]]:
    """A photo cropped to its digit before it is shared, as people do: a single-digit scene of one of
    CROPPED_FROM, upright, cut out with 0.2-1.2 of the digit's size around it on each side (so rarely
    centred), shrunk to 150-450 pixels on its longer side (never enlarged) and saved again as a JPEG
    of quality 75-95 without EXIF, as a phone's crop tool or an editor does."""
    rng = scene_rng("b-cropped", seed, digits.split)
    base = CROPPED_FROM[int(rng.integers(len(CROPPED_FROM)))]
    scene, masks = render(base, 1_000_000 + seed, digits)
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(scene.jpeg))).convert("RGB")
    x, y, w, h = scene.boxes[0]
    left, top, right, bottom = (rng.uniform(0.2, 1.2) * max(w, h) for _ in range(4))
    x0, y0 = max(0, int(x - left)), max(0, int(y - top))
    x1, y1 = min(img.width, int(x + w + right)), min(img.height, int(y + h + bottom))
    k = min(1.0, log_uniform(rng, 150, 450) / max(x1 - x0, y1 - y0))
    size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
    part = img.crop((x0, y0, x1, y1)).resize(size, Image.Resampling.LANCZOS)
    mask = cv2.resize(masks[0][y0:y1, x0:x1].astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.25
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    quality = int(rng.integers(75, 96))
    buf = io.BytesIO()
    part.save(buf, "JPEG", quality=quality)
    details = scene.details | {"cropped_from": base, "quality": quality, "height_px": box[3]}
    return Scene(jpeg=buf.getvalue(), text=scene.text, boxes=[box], kind="digit", condition="b-cropped",
                 size=size, orientation=1, mnist_indices=scene.mnist_indices, details=details), [mask]


def make_scene(condition: str, seed: int, digits: DigitSource) -> Scene:
    """The photo scene `seed` of `condition`, the same for the same (condition, seed, digits.split)."""
    return render(condition, seed, digits)[0]


# ----------------------------------------------------------------------------------------------
# Command line: write scenes, their truth, and a contact sheet


def contact_sheet(scenes: list[tuple[str, Scene]], path: Path, thumb: int = 300, cols: int = 6):
    rows = (len(scenes) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * thumb, rows * (thumb + 30)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for i, (name, s) in enumerate(scenes):
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(s.jpeg))).convert("RGB")
        k = thumb / max(img.size)
        img = img.resize((int(img.width * k), int(img.height * k)), Image.Resampling.LANCZOS)
        d = ImageDraw.Draw(img)
        for x, y, w, h in s.boxes:
            d.rectangle([x * k, y * k, (x + w) * k, (y + h) * k], outline=(0, 255, 0))
        x0, y0 = (i % cols) * thumb, (i // cols) * (thumb + 30)
        sheet.paste(img, (x0 + (thumb - img.width) // 2, y0 + (thumb - img.height) // 2))
        label = f"{name} {s.text if s.text is not None else s.kind} o{s.orientation}"
        draw.text((x0 + 4, y0 + thumb + 4), label, fill=(255, 255, 255))
        draw.text((x0 + 4, y0 + thumb + 16), f"{s.details.get('surface')} {s.details.get('ink')} "
                  f"h{s.details.get('height_px')}", fill=(200, 200, 200))
    sheet.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--condition", default="all", help=f"one of {', '.join(CONDITIONS)}, or all")
    ap.add_argument("--count", type=int, default=6, help="scenes per condition")
    ap.add_argument("--split", default="tune", choices=("tune", "holdout"))
    ap.add_argument("--first-seed", type=int, default=0)
    default_data = os.environ.get("MNISTLAB_DATA") or Path(__file__).resolve().parents[2] / "shared/data/mnist"
    ap.add_argument("--data-dir", type=Path, default=default_data, help="the MNIST files (test images are used)")
    ap.add_argument("--sheet", action="store_true", help="also write a contact sheet PNG per condition")
    args = ap.parse_args(argv)
    conditions = CONDITIONS if args.condition == "all" else (args.condition,)
    if any(c not in KINDS for c in conditions):
        ap.error(f"--condition must be one of {', '.join(CONDITIONS)} or all")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    cv2.setNumThreads(1)
    digits = DigitSource.load(args.data_dir, args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    truth, took = [], []
    for condition in conditions:
        made = []
        for seed in range(args.first_seed, args.first_seed + args.count):
            start = time.perf_counter()
            s = make_scene(condition, seed, digits)
            took.append(time.perf_counter() - start)
            name = f"{condition}_{seed:04d}{s.suffix}"
            (args.out / name).write_bytes(s.jpeg)
            truth.append({"file": name, "condition": condition, "seed": seed, "split": args.split, "kind": s.kind,
                          "text": s.text, "boxes": [list(b) for b in s.boxes], "size": list(s.size),
                          "orientation": s.orientation, "mnist_indices": s.mnist_indices, "details": s.details})
            made.append((f"{seed}", s))
        if args.sheet:
            contact_sheet(made, args.out / f"sheet_{condition}.png")
    (args.out / "scenes.json").write_text(json.dumps(truth, indent=1))
    print(f"{len(truth)} scenes in {args.out}, {np.mean(took):.2f} s each on average (max {np.max(took):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
