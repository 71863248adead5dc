"""Training digits as the photo reader sees them.

Each scene of `make` writes training digits into a synthetic phone photo (scenes.py: paper, ink,
light, a camera), and the reader finds and crops them again exactly as `mnistlab predict` does with a
user's photo (locate.find_digits, predict.normalise). A crop is labelled from the scene's truth:
a mark over one written digit is that digit; a mark over none (a desk's grain, a note's edge, the
remains of a ruling, a scribble) is a non-digit. Trained beside MNIST (the robust recipe's `photos`),
the model learns what a digit looks like after a photo and the reader's clean-up, thin or broken
strokes and blur included, and to be unsure of the reader's clutter (outlier exposure).

The line reader (lines.py) learns from photos the same way (`scene_lines`): each run of marks on a
line of a number's photo that the reader would read whole, cut out as predict.line_input cuts it,
labelled with the digits of the scene that it covers.

A scene takes about 0.15 s to make and read on one core, so the crops are made in one process per
core and kept in the user cache, named by everything they depend on.
"""

import hashlib
import multiprocessing
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from . import files, lines, locate, predict, scenes
from .data import default_cache_dir

VERSION = 4  # of the recipe below: part of the cache's name (4: no rings among the non-digits)
# The kinds of scene and how often each is drawn: numbers give several digits per scene.
WEIGHT = {"digit": 1.0, "number": 2.0, "blank": 1.0, "junk": 1.5}
# Every kind of photo but the 12 MP one (slow to make), the drawing page's canvas (MNIST's own look) and
# a page of several numbers (its lines' digits are those of numbers).
CONDITIONS = [c for c in scenes.CONDITIONS if c not in ("phone-12mp", "canvas", "number-lines")]
LINE_CONDITIONS = [c for c in scenes.CONDITIONS if scenes.KINDS[c] in ("number", "lines")]  # for scene_lines
MAX_CLUTTER = 3  # marks the reader rejected, taken as non-digits per scene at most
PER_WORKER = 50  # scenes per process at least: a process takes about 2 s to start
MAKERS = (scenes, locate, predict)  # the code that makes the crops: the photos and the reader that reads them

_source: scenes.DigitSource | None = None  # each worker's training digits
_lines = False  # and whether it cuts out lines (scene_lines) rather than digits (scene_crops)


def _overlap(a, b) -> int:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))


def label(box, truth: list, text: str) -> int | None:
    """A mark's label from the scene's truth boxes: the digit whose box it covers (over half of that
    digit, no more than a fifth of any other, and itself half inside it), -1 when it touches no digit,
    None when it is neither (two touching digits, a piece of one)."""
    covers = [_overlap(t, box) / max(1, t[2] * t[3]) for t in truth]
    if not any(covers):
        return -1
    big = [i for i, c in enumerate(covers) if c > 0.5]
    if len(big) == 1 and sum(c > 0.2 for c in covers) == 1 and _overlap(truth[big[0]], box) > 0.5 * box[2] * box[3]:
        return int(text[big[0]])
    return None


def ring(crop: np.ndarray) -> bool:
    """Whether a non-digit's 28x28 input is a ring (a coffee cup's, a letter "O") as a round "0" is written:
    one large hole, at least 0.7 as wide as tall. Such a crop is not taught as a non-digit: taught so,
    the model doubted round zeros (bench/round_zeros.py: 17% of circles read surely). locate tells a
    cup's stain by its colour and thin line (its CUP reason) before the model sees it."""
    ink = (crop > 64).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(ink)
    if h == 0 or w < 0.7 * h:
        return False
    _, _, stats, _ = cv2.connectedComponentsWithStats(1 - ink, connectivity=4)
    holes = [a for (hx, hy, hw, hh, a) in stats[1:] if hx > 0 and hy > 0 and hx + hw < 28 and hy + hh < 28]
    return len(holes) == 1 and holes[0] >= 0.15 * w * h


def scene_crops(condition: str, seed: int, source: scenes.DigitSource) -> list[tuple[np.ndarray, int]]:
    """The (28x28 uint8 crop, label or -1) pairs of one scene: every mark the reader would read, and
    up to MAX_CLUTTER of the digit-sized marks it rejected as off the line of digits."""
    scene = scenes.make_scene(condition, seed, source)
    found = locate.find_digits(predict.open_image(scene.jpeg, size=locate.WORK_SIZE))
    truth = scene.boxes if scene.kind in ("digit", "number") else []
    pairs = []
    for mark in found.digits:
        y = label(found.original_box(mark.box), truth, scene.text or "")
        crop = predict.mark_input(found, mark) if y is not None else None
        if crop is not None and not (y == -1 and ring(crop)):
            pairs.append((crop, y))
    short = min(found.rgb.shape[:2])
    least = 0.5 * min((t[3] / found.scale for t in truth), default=0.12 * short)
    others = sorted((m for m in found.rejected if m.reason in ("off the line of digits", "smaller than the digits")
                     and least <= m.h <= 0.6 * short and m.box[2] >= 0.3 * m.h),  # a thin bar is any "1"
                    key=lambda m: -m.box[2] * m.box[3])
    taken = 0
    for mark in others:
        if taken == MAX_CLUTTER:
            break
        if label(found.original_box(mark.box), truth, scene.text or "") != -1:
            continue
        crop = predict.mark_input(found, mark)
        if crop is not None and not ring(crop):
            pairs.append((crop, -1))
            taken += 1
    return pairs


def line_text(box, truth: list, digits: str) -> str | None:
    """The text of a run of marks with this box (x, y, w, h), from the scene's truth boxes and their
    `digits`: the digits whose boxes it covers (0.7 of one or more), left to right; None when it covers
    part of a digit (0.15 to 0.7 of it: a piece), more than lines.MAX_DIGITS, or digits of two lines
    (their middles apart by more than half their height: a page's lines joined by a long stroke)."""
    covers = [_overlap(t, box) / max(1, t[2] * t[3]) for t in truth]
    inside = [k for k, c in enumerate(covers) if c >= 0.7]
    if any(0.15 < c < 0.7 for c in covers) or len(inside) > lines.MAX_DIGITS:
        return None
    middles = [truth[k][1] + truth[k][3] / 2 for k in inside]
    if inside and max(middles) - min(middles) > 0.5 * np.median([truth[k][3] for k in inside]):
        return None
    return "".join(digits[k] for k in inside)


def scene_lines(condition: str, seed: int, source: scenes.DigitSource) -> list[tuple[np.ndarray, str]]:
    """The (line reader's input uint8 (28, W), text) pairs of one scene of a number or a page of them:
    every run of up to MAX_DIGITS neighbouring marks on a line found that the reader would read whole
    (predict.read_whole; no wider than lines.WIDTH once cut out), with the
    digits of the scene that it covers (line_text; a run with no one text is left out)."""
    scene = scenes.make_scene(condition, seed, source)
    found = locate.find_digits(predict.open_image(scene.jpeg, size=locate.WORK_SIZE))
    digits = (scene.text or "").replace("\n", "")
    pairs = []
    for marks in [found.digits, *found.more_lines]:
        for i in range(len(marks)):
            for j in range(i, min(len(marks), i + lines.MAX_DIGITS)):
                run = locate.join(marks[i:j + 1])
                if not predict.read_whole(run):
                    continue
                text = line_text(found.original_box(run.box), scene.boxes, digits)
                if text is None:
                    continue
                cut = predict.line_input(predict.upright_ink(found, run)[0], locate.FAINT.pixel)
                if cut is not None and cut[0].shape[1] <= lines.WIDTH:
                    pairs.append((cut[0], text))
    return pairs


def _start(images: np.ndarray, labels: np.ndarray, cut_lines: bool = False):
    global _source, _lines
    cv2.setNumThreads(1)
    _source, _lines = scenes.DigitSource(images, labels, "train"), cut_lines


def _crops_of(task: tuple[str, int]) -> list[tuple[np.ndarray, int | str]]:
    try:
        return (scene_lines if _lines else scene_crops)(*task, _source)
    except scenes.NoRoom:  # a scene that cannot be laid out adds no crops
        return []


def plan(count: int, seed: int, cut_lines: bool = False) -> list[tuple[str, int]]:
    """The (condition, seed) of each of `count` scenes: conditions drawn by WEIGHT of their kind, or
    for lines, evenly among the LINE_CONDITIONS."""
    conditions = LINE_CONDITIONS if cut_lines else CONDITIONS
    weights = np.array([1.0 if cut_lines else WEIGHT[scenes.KINDS[c]] for c in conditions])
    rng = np.random.default_rng([seed, VERSION] + [1] * cut_lines)
    chosen = rng.choice(len(conditions), size=count, p=weights / weights.sum())
    return [(conditions[c], seed * 1_000_003 + i) for i, c in enumerate(chosen)]


def make(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0,
         workers: int | None = None, cut_lines: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Crops from `count` scenes written with `images` (uint8 (N, 28, 28)) and their `labels`:
    (crops uint8 (M, 28, 28), labels int64 (M,), -1 for a non-digit). The same for the same inputs.
    With `cut_lines`, the lines of scenes of numbers (scene_lines): (lines uint8 (M, 28, lines.WIDTH),
    each from column 0 and black after its end, and texts int64 (M, lines.MAX_DIGITS): class d + 1, 0
    past the end)."""
    todo = plan(count, seed, cut_lines)
    workers = max(1, min(workers or (os.cpu_count() or 1), count // PER_WORKER if workers is None else count))
    if workers == 1:
        _start(images, labels, cut_lines)
        parts = list(map(_crops_of, todo))
    else:  # in the plan's order, however many workers; spawned, since a fork of a process with
        # threads (PyTorch's, a test runner's) can inherit a lock held by another thread and hang
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), initializer=_start,
                                 initargs=(images, labels, cut_lines)) as pool:
            parts = list(pool.map(_crops_of, todo, chunksize=max(1, count // (8 * workers))))
    pairs = [p for part in parts for p in part]
    if cut_lines:
        inputs = np.zeros((len(pairs), 28, lines.WIDTH), np.uint8)
        texts = np.zeros((len(pairs), lines.MAX_DIGITS), np.int64)
        for k, (line, text) in enumerate(pairs):
            inputs[k, :, :line.shape[1]] = line
            texts[k, :len(text)] = [int(d) + 1 for d in text]
        return inputs, texts
    crops = np.stack([c for c, _ in pairs]) if pairs else np.zeros((0, 28, 28), np.uint8)
    return crops, np.array([y for _, y in pairs], np.int64)


def cached(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0,
           cut_lines: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`make`, kept in the user cache (~/.cache/mnistlab/photo-crops/) under a name made of everything
    the crops depend on: the images and labels, the count, the seed, this recipe's VERSION, whether it
    cuts out lines, and the code of the MAKERS (a change to the reader changes which marks it reads, so
    it makes new crops)."""
    key = hashlib.sha256(np.ascontiguousarray(images).tobytes() + np.ascontiguousarray(labels).tobytes())
    key.update(f"{count}/{seed}/{VERSION}".encode() + b"/lines" * cut_lines)
    for module in MAKERS:
        key.update(Path(module.__file__).read_bytes())
    path = default_cache_dir() / "photo-crops" / f"{key.hexdigest()[:24]}.npz"
    try:
        with np.load(path) as saved:
            return saved["crops"], saved["labels"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # not made yet, or damaged: made again
        pass
    crops, ys = make(images, labels, count, seed, cut_lines=cut_lines)
    with files.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, crops=crops, labels=ys)
    return crops, ys
