"""Benchmark: temperature scaling, before and after, on the validation split and the test set.

    python bench/calibration.py --data-dir ../shared/data/mnist RUN [RUN...]

For each run: fits the temperature on its validation split (stored in its checkpoint, as `mnistlab
calibrate` does), then evaluates on all 10,000 test images. Prints a table and writes it into
docs/benchmarks.md between this benchmark's markers.
"""

import argparse
from pathlib import Path

from common import machine, write_section

from mnistlab.calibration import calibrate
from mnistlab.data import load
from mnistlab.evaluate import evaluate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    data = load("mnist", args.data_dir)
    table = ["| run | T | val ECE before | val ECE after | test ECE before | test ECE after | test NLL before "
             "| test NLL after |", "|---|---|---|---|---|---|---|---|"]
    for run in args.runs:
        v = calibrate(run, data)
        m = evaluate(run, data=data)
        c = m["calibration"]
        table.append(f"| `{run.name}` | {v['temperature']:.3f} | {v['val_ece_before']:.2%} | {v['val_ece_after']:.2%} "
                     f"| {c['ece_uncalibrated']:.2%} | {c['ece']:.2%} | {c['loss_uncalibrated']:.4f} "
                     f"| {m['test_loss']:.4f} |")
        print(table[-1], flush=True)
    body = "\n".join([
        "## Calibration: temperature scaling",
        "",
        f"Machine: {machine()}.",
        "`python bench/calibration.py RUN...`: the temperature is fitted on each run's own validation split"
        " (6,000 images), then the test set (10,000 images) is evaluated with it. ECE: expected calibration"
        " error over 15 equal-width confidence bins. NLL: mean cross-entropy. Runs trained with label"
        " smoothing (the recipes) are underconfident, so their T is below 1.",
        "",
        *table,
    ])
    write_section("calibration", body)


if __name__ == "__main__":
    main()
