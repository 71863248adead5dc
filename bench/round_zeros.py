"""Benchmark: is a round "0" read as a zero? And a coffee cup's ring as none?

    python bench/round_zeros.py RUN [RUN ...] [--per-shape 24] [--threads 1]

MNIST's zeros are mostly tall ovals; many people write a "0" as round as an "O". Per model (a run
folder), this draws zeros of width/height 1.0, 0.9, 0.8 and 0.7 as a pen draws them (the stroke starts
at the top and ends a little past or short of it, slightly wobbly, leaning up to 10 degrees) in blue
or black ballpoint, pencil or felt-tip, 60-300 pixels tall on white, cream or squared paper, with a
light gradient, camera grain and JPEG, and reads each photo with `predict.read`. Also the ring a coffee
cup leaves (thin, brown, faintly tinted inside, 150-420 pixels across), which is no digit. Prints, per
shape: read as a sure "0", unsure, confidently something else, and the median probability of "0"; and
writes the table to docs/benchmarks.md.
"""

import argparse
import io

import cv2
import numpy as np
import torch
from common import cpu, write_section
from PIL import Image

from mnistlab import locate, predict

INKS = {"blue ballpoint": ((40, 50, 140), 0.03), "black ballpoint": ((30, 30, 35), 0.03),
        "pencil": ((95, 95, 100), 0.035), "felt-tip": ((25, 25, 60), 0.10)}
PAPERS = {"white": (245, 245, 240), "cream": (240, 232, 205), "squared": (244, 244, 244)}
ASPECTS = (1.0, 0.9, 0.8, 0.7)


def page(rng, paper: str) -> np.ndarray:
    h, w = 900, 1200
    img = np.empty((h, w, 3), np.float32)
    img[:] = PAPERS[paper]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img *= (1 - rng.uniform(0, 0.25) * (xx / w if rng.random() < 0.5 else yy / h))[..., None]
    if paper == "squared":
        step = int(rng.integers(28, 40))
        img[::step] *= np.float32([0.75, 0.82, 0.95])
        img[:, ::step] *= np.float32([0.75, 0.82, 0.95])
    return img


def zero(img: np.ndarray, rng, aspect: float, ink: str) -> None:
    """A pen's "0": an ellipse drawn from the top round and back to about where it began."""
    colour, line = INKS[ink]
    h = rng.uniform(60, 300)
    a, b = aspect * h / 2, h / 2
    start = -np.pi / 2 + rng.uniform(-0.3, 0.3)
    sweep = 2 * np.pi + rng.uniform(-0.35, 0.35)  # past its start, or a little short of it
    t = start + np.linspace(0, sweep, 200)
    wobble = 1 + 0.04 * np.sin(3 * t + rng.uniform(0, 6)) + 0.02 * np.sin(5 * t + rng.uniform(0, 6))
    lean = np.radians(rng.uniform(-10, 10))
    x, y = a * np.cos(t) * wobble, b * np.sin(t) * wobble
    x, y = x * np.cos(lean) - y * np.sin(lean), x * np.sin(lean) + y * np.cos(lean)
    centre = rng.uniform(0.35, 0.65, 2) * (1200, 900)
    pts = np.c_[x + centre[0], y + centre[1]]
    cv2.polylines(img, [np.round(pts * 4).astype(np.int32)], False, colour, max(2, round(line * h)), cv2.LINE_AA, 2)


def cup_ring(img: np.ndarray, rng) -> None:
    """The ring a coffee cup leaves: a thin brown rim, uneven, and a faint tint inside."""
    r = rng.uniform(75, 210)
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2(yy - cy, xx - cx)
    radius = np.hypot(xx - cx, yy - cy) / (r * (1 + 0.02 * np.sin(3 * angle + rng.uniform(0, 6))))
    rim = np.exp(-((radius - 1) / rng.uniform(0.012, 0.025)) ** 2) * rng.uniform(0.45, 0.8)
    rim *= 0.7 + 0.3 * np.cos(angle - rng.uniform(0, 6)) ** 2  # darker where the cup stood longer
    alpha = rim + (radius < 1) * rng.uniform(0.03, 0.1)
    brown = np.float32(rng.choice([(150, 105, 60), (170, 125, 80), (130, 85, 45)]))
    img += alpha[..., None] * (brown - img)


def photo(img: np.ndarray, rng) -> bytes:
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img += rng.normal(0, rng.uniform(2, 5), img.shape).astype(np.float32)
    out = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=int(rng.integers(70, 95)))
    return out.getvalue()


def scenes(per_shape: int):
    """(shape, seed, JPEG bytes) for every shape: the zeros of each aspect, then the cup rings."""
    for aspect in ASPECTS:
        for seed in range(per_shape):
            rng = np.random.default_rng([int(aspect * 100), seed])
            img = page(rng, rng.choice(list(PAPERS)))
            zero(img, rng, aspect, rng.choice(list(INKS)))
            yield f'"0", width {aspect:.1f} of height', seed, photo(img, rng)
    for seed in range(per_shape):
        rng = np.random.default_rng([7, seed])
        img = page(rng, rng.choice(list(PAPERS)))
        cup_ring(img, rng)
        yield "a coffee cup's ring (no digit)", seed, photo(img, rng)


def measure(model, per_shape: int) -> dict:
    rows = {}
    for shape, _, blob in scenes(per_shape):
        reading = predict.read(model, predict.open_image(blob, size=locate.WORK_SIZE))
        zero_p = max((t["probability"] for d in reading["digits"] for t in d["top"] if t["class"] == "0"),
                     default=0.0)
        row = rows.setdefault(shape, {"n": 0, "zero": 0, "unsure": 0, "other": 0, "p": []})
        row["n"] += 1
        row["p"].append(zero_p)
        if reading["status"] == "ok":  # a ring is no digit: any reading of it is wrong
            row["zero" if reading["text"] == "0" and "ring" not in shape else "other"] += 1
        else:
            row["unsure"] += 1
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (or checkpoints) of the models to compare")
    parser.add_argument("--per-shape", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = ["| model | shape | photos | sure \"0\" | unsure or no digit | sure other | median p(\"0\") |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for run in args.runs:
        for shape, row in measure(predict.TorchModel(run), args.per_shape).items():
            n = row["n"]
            line = (f"| `{run}` | {shape} | {n} | {row['zero'] / n:.0%} | {row['unsure'] / n:.0%} | "
                    f"{row['other'] / n:.0%} | {np.median(row['p']):.2f} |")
            print(line, flush=True)
            lines.append(line)
    body = (f"## Round zeros and coffee rings\n\nCPU: {cpu()}. `python bench/round_zeros.py {' '.join(args.runs)} "
            f"--per-shape {args.per_shape}`: a pen's \"0\" of each width/height drawn on a photo of paper "
            "(bench/round_zeros.py: ballpoint, pencil or felt-tip, 60-300 px tall, 1200x900 JPEG), and a coffee "
            "cup's ring; each read by `predict.read`. *sure other*: status ok with any other text (for the ring, "
            "any ok).\n\n" + "\n".join(lines) + "\n")
    write_section("round-zeros", body)


if __name__ == "__main__":
    main()
