"""Benchmark: models side by side on MNIST-C's 15 corruptions (all 10,000 test images).

    python bench/robustness.py --data-dir ../shared/data/mnist RUN [RUN...]

For each run: the test error clean and under each corruption, and the mean corruption error (also
written into each run folder as robustness.json). Prints a table and writes it into
docs/benchmarks.md between this benchmark's markers.
"""

import argparse
import json
from pathlib import Path

from common import machine, write_section

from mnistlab.corruptions import CORRUPTIONS
from mnistlab.data import load
from mnistlab.robustness import robustness

# The corruptions that the robust recipe's augmentation (light, salt-and-pepper noise) resembles.
LIKE_ROBUST_AUGMENTATION = ("brightness", "fog", "impulse_noise")


def describe(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    return f"{run.name}: {config['model']}" + (f" ({config['recipe']} recipe)" if config.get("recipe") else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--saved", action="store_true", help="rewrite the table from each run's robustness.json")
    args = parser.parse_args()

    data = None if args.saved else load("mnist", args.data_dir)
    results = []
    for run in args.runs:
        r = json.loads((run / "robustness.json").read_text()) if args.saved else robustness(run, data, args.seed)
        results.append(r)
        print(f"{run.name}: clean {r['clean_error']:.2%}, mean corruption error {r['mean_corruption_error']:.2%}",
              flush=True)

    names = [f"`{run.name}`" for run in args.runs]
    table = ["| corruption | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    table.append("| clean | " + " | ".join(f"{r['clean_error']:.2%}" for r in results) + " |")
    table += [f"| {name.replace('_', ' ')} | " + " | ".join(f"{r['errors'][name]:.2%}" for r in results) + " |"
              for name in CORRUPTIONS]
    table.append("| **mean corruption error** | "
                 + " | ".join(f"**{r['mean_corruption_error']:.2%}**" for r in results) + " |")
    unseen = [name for name in CORRUPTIONS if name not in LIKE_ROBUST_AUGMENTATION]
    table.append(f"| mean of the {len(unseen)} others (not brightness, fog, impulse noise) | "
                 + " | ".join(f"{sum(r['errors'][n] for n in unseen) / len(unseen):.2%}" for r in results) + " |")
    body = "\n".join([
        "## Robustness: MNIST-C corruptions",
        "",
        f"Machine: {machine()}.",
        f"`python bench/robustness.py RUN...` (seed {args.seed}): test error on all 10,000 test images, clean and"
        " under each of MNIST-C's 15 corruptions as mnistlab implements them (corruptions.py, at MNIST-C's own"
        " severities). The mean corruption error is the plain mean of the 15. The `robust` recipe trains with"
        " random light and salt-and-pepper noise, which resemble MNIST-C's brightness, fog and impulse noise:"
        " for those three its figures are not those of unseen corruptions. Models:",
        "",
        *[f"- {describe(run)}" for run in args.runs],
        "",
        *table,
    ])
    write_section("robustness", body)


if __name__ == "__main__":
    main()
