"""Benchmark: reading your own labelled photos (real ones, not generated) with mnistlab's public `read`.

    python bench/real_photos.py RUN FOLDER [--threads 1]

FOLDER holds the photos and `labels.tsv`, one line per photo: file name, a tab, the digits written in
it left to right ("7", "4071"), lines of digits top to bottom with "/" between them ("12345/67890"),
"none" for a photo without digits, or "multi" for one whose digits lie in no lines (read, shown, but not
scored); anything after a second tab is a note.
Prints, per photo, the reading (status, text or guess, each digit's confidence, ms end to end) and a
summary: read right, confidently wrong, unsure, no digit. Nothing is written to docs/benchmarks.md: the
photos are yours, so the figures say where they came from only if you say it.
"""

import argparse
import time
from collections import Counter
from pathlib import Path

import torch

from mnistlab import locate, predict
from mnistlab.errors import MnistlabError


def verdict(truth: str, reading: dict) -> str:
    truth = truth.replace("/", "\n")  # mnistlab's text has a line break between lines of digits
    if reading["status"] == "error":
        return "error"
    if truth == "none":
        return "wrong" if reading["status"] == "ok" else "right"
    if reading["status"] == "ok":
        return "right" if reading["text"] == truth else "wrong"
    return reading["status"]  # unsure, no_digit or error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder or .safetensors checkpoint")
    parser.add_argument("folder", type=Path, help="the photos and their labels.tsv")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = predict.TorchModel(args.run)
    counts = Counter()
    for line in (args.folder / "labels.tsv").read_text().splitlines():
        if not line.strip():
            continue
        name, truth, *_ = line.split("\t")
        start = time.perf_counter()
        try:
            reading = predict.read(model, predict.open_image(args.folder / name, size=locate.WORK_SIZE))
        except MnistlabError as e:  # a format this mnistlab does not read, a broken file
            reading = {"status": "error", "text": None, "digits": []}
            print(f"error: {e}")
        ms = (time.perf_counter() - start) * 1000
        said = reading["text"] or (f"maybe {reading['guess']}" if reading.get("guess") else "-")
        said = said.replace("\n", "/")
        kind = "not scored" if truth == "multi" else verdict(truth, reading)
        if truth != "multi":
            counts[kind] += 1
        sure = " ".join(f"{d['confidence']:.2f}" for d in reading["digits"][:12])
        print(f"{kind:10s} {name[:48]:48s} truth {truth:12s} {reading['status']:8s} {said:16s} {ms:6.0f} ms  [{sure}]")
    n = sum(counts.values())
    print(f"\n{n} scored photos: " + ", ".join(f"{k} {counts[k]} ({counts[k] / max(n, 1):.0%})"
                                           for k in ("right", "wrong", "unsure", "no_digit", "error")))


if __name__ == "__main__":
    main()
