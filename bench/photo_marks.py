"""Benchmark: digits with the marks people draw around them (a form's box, a ring, a line under a
number), against the same digits without the mark.

    python bench/photo_marks.py RUN --data-dir ../shared/data/mnist [--per-kind 60] [--split holdout]

Neither scene generator draws these marks, so they are made here: a photo of paper (mnistlab/scenes.py's
papers, light, optics and sensor) with one digit or a number of 2-4 MNIST test digits in a pen,
and for each scene the same scene without its mark. Per kind of mark: read right (status ok, the
text exactly the truth), confidently wrong (ok, any other text), and the same for the scenes
without the mark. Prints a table and writes it into docs/benchmarks.md between this benchmark's
markers.
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import cpu, write_section

from mnistlab import locate, predict
from mnistlab import scenes as s

KINDS = ("digit in a printed box", "number in a printed box", "digit in a pen box", "circled digit",
         "circled number", "underlined number")


def scene(kind: str, seed: int, digits: s.DigitSource, marked: bool) -> tuple[bytes, str]:
    """One scene of `kind`, with its mark or without (the same seed makes the same scene)."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    h, w = 900, 1200
    img = s.paper_surface(h, w, s.PAPERS[s.pick(rng, ("white", "off-white", "cream", "yellow", "grey"))], rng)
    ink = s.INKS[s.pick(rng, ("blue", "black", "black", "red", "green"))]
    tool = s.pick(rng, ("ballpoint", "gel", "felt-tip"))
    height = rng.uniform(70, 220)
    n = 1 if "digit" in kind else int(rng.integers(2, 5))
    glyphs, text = [], ""
    for _ in range(n):
        img28, label, _ = digits.handwritten(rng)
        glyphs.append(s.handwritten_alpha(img28, height, s.pen_width(rng, tool, height), rng))
        text += label
    positions = s.layout(glyphs, height, rng)
    x0, y0 = rng.uniform(0.2, 0.45) * w, rng.uniform(0.35, 0.6) * h
    boxes = []
    for g, (x, y) in zip(glyphs, positions):
        bx, by, bw, bh = s.ink_box(g)
        s.put_ink(img, g, int(x0 + x), int(y0 + y), ink, False)
        boxes.append((x0 + x + bx, y0 + y + by, bw, bh))
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    pen = max(1, round(s.pen_width(rng, tool, height) or 2))
    if marked:
        alpha = np.zeros((h, w), np.float32)
        margin = rng.uniform(0.05, 0.3) * height
        if "box" in kind:  # a form's field (printed: thin, grey) or a box drawn with the pen
            printed = "printed" in kind
            cv2.rectangle(alpha, (int(left - margin), int(top - margin)), (int(right + margin), int(bottom + margin)),
                          1.0, int(rng.integers(1, 4)) if printed else pen, cv2.LINE_AA)
            colour = s.INKS["grey"] if printed else ink
        elif "circled" in kind:  # a ring drawn round, its ends overlapping a little
            start = rng.uniform(0, 360)
            cv2.ellipse(alpha, (int((left + right) / 2), int((top + bottom) / 2)),
                        (int((right - left) / 2 + margin + 0.2 * height), int((bottom - top) / 2 + margin)),
                        rng.uniform(-10, 10), start, start + rng.uniform(365, 390), 1.0, pen, cv2.LINE_AA)
            colour = ink
        else:  # a line under the number, touching it or a little below, running on past its ends or not
            y = bottom + rng.uniform(-0.02, 0.15) * height
            cv2.line(alpha, (int(left - rng.uniform(-0.1, 0.3) * height), int(y)),
                     (int(right + rng.uniform(-0.1, 0.3) * height), int(y + rng.uniform(-0.05, 0.05) * height)),
                     1.0, pen, cv2.LINE_AA)
            colour = ink
        s.put_ink(img, alpha, 0, 0, colour, False)
    s.light(img, rng)
    pixels = s.sensor(s.optics(img, rng), rng)
    return s.encode(pixels, int(rng.integers(80, 95))), text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--per-kind", type=int, default=60)
    parser.add_argument("--split", choices=("tune", "holdout"), default="holdout")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = predict.TorchModel(args.run)
    digits = s.DigitSource.load(args.data_dir, args.split)
    lines = ["| scenes | read with the mark | confidently wrong | read without it | confidently wrong | ms median |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind in KINDS:
        counts = {True: [0, 0], False: [0, 0]}
        ms = []
        for seed in range(args.per_kind):
            for marked in (True, False):
                blob, text = scene(kind, seed, digits, marked)
                start = time.perf_counter()
                reading = predict.read(model, predict.open_image(blob, size=locate.WORK_SIZE))
                if marked:
                    ms.append((time.perf_counter() - start) * 1000)
                if reading["status"] == "ok":
                    counts[marked][reading["text"] != text] += 1
        n = args.per_kind
        row = (f"| {kind} | {counts[True][0] / n:.1%} | {counts[True][1] / n:.1%} | {counts[False][0] / n:.1%} "
               f"| {counts[False][1] / n:.1%} | {np.median(ms):.0f} |")
        print(row, flush=True)
        lines.append(row)
    body = "\n".join([
        "## Marks drawn around the digits",
        "",
        f"CPU: {cpu()}; OpenCV {cv2.__version__}; torch with {args.threads} thread(s); {time.strftime('%Y-%m-%d')}. "
        f"`python bench/photo_marks.py {args.run.name} --per-kind {args.per_kind} --split {args.split}`: "
        f"{args.per_kind} scenes per kind made by bench/photo_marks.py (MNIST test digits "
        f"{'5000-9999' if args.split == 'holdout' else '0-4999'}, in a pen on paper, under mnistlab/scenes.py's "
        "light and camera), each read with its mark and again without it (the same scene otherwise). "
        f"Model: `{args.run}`.",
        "",
        *lines,
    ])
    print(body if args.no_write else "written to docs/benchmarks.md")
    if not args.no_write:
        write_section("photo-marks", body)


if __name__ == "__main__":
    main()
