"""Benchmark: each training recipe over several seeds, and ensembles of the `best` runs.

    python bench/recipes.py --data-dir ../shared/data/mnist [--recipes fast balanced] [--seeds 0 1 2]

For each recipe and seed: training seconds (training steps only), the seconds until the validation
accuracy first reached 99.0% and 99.5% (checked after each epoch, as --target-accuracy does), and the
test accuracy of the kept weights. Then ensembles, with and without test-time augmentation: of the
`best` runs, and of the `best` and `balanced` runs together. Results accumulate in OUT/results.json,
so recipes can be run separately; the table in docs/benchmarks.md is rewritten from all of them.
"""

import argparse
import json
import statistics
from pathlib import Path

from common import machine, write_section

from mnistlab import pipeline
from mnistlab.config import TrainConfig
from mnistlab.data import load
from mnistlab.evaluate import ensemble
from mnistlab.recipes import RECIPES
from mnistlab.runfolder import seconds_to, train_seconds


def run(name, seed, data, out: Path, **overrides) -> dict:
    """One recipe and seed through the same pipeline as `mnistlab train` (calibrated, evaluated, reported)."""
    result = pipeline.run(TrainConfig.from_recipe(name, seed=seed, **overrides), out, data=data)
    history, m = result.history, result.metrics
    row = dict(recipe=name, seed=seed, run=str(out), epochs=len(history),
               train_seconds=train_seconds(history), to_990=seconds_to(history, 0.99),
               to_995=seconds_to(history, 0.995), val_accuracy=max(r["val_accuracy"] for r in history),
               test_accuracy=m["test_accuracy"])
    print(json.dumps(row), flush=True)
    return row


def seconds(v):
    return f"{v:.1f}"


def percent(v):
    return f"{v:.2%}"


def spread(values, fmt) -> str:
    """mean (min-max) of the values that exist, and how many do if some runs never got there."""
    got = [v for v in values if v is not None]
    if not got:
        return "not reached"
    text = f"{fmt(statistics.mean(got))} ({fmt(min(got))}-{fmt(max(got))})"
    return text if len(got) == len(values) else f"{text}, {len(got)} of {len(values)} runs"


def table(results: dict) -> list[str]:
    lines = ["| recipe | seeds | training s | s to 99.0% (val) | s to 99.5% (val) | test accuracy |",
             "|---|---|---|---|---|---|"]
    for name in RECIPES:
        rows = [r for r in results["runs"] if r["recipe"] == name]
        if rows:
            cells = [spread([r[k] for r in rows], seconds) for k in ("train_seconds", "to_990", "to_995")]
            lines.append(f"| {name} | {', '.join(str(r['seed']) for r in rows)} | {' | '.join(cells)} | "
                         f"{spread([r['test_accuracy'] for r in rows], percent)} |")
    for e in results.get("ensembles", []):
        lines.append(f"| ensemble{', TTA' if e['tta'] else ''} | {' '.join(e['members'])} | "
                     f"{e['train_seconds']:.0f} (sum) | | | {e['test_accuracy']:.2%} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--recipes", nargs="+", default=["fast", "balanced", "best"], choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-recipes")
    parser.add_argument("--no-train", action="store_true", help="only recompute the ensembles and the table")
    parser.add_argument("--note", action="append", default=[], help="a remark to print under the table")
    args = parser.parse_args()

    out = Path(args.out)
    store = out / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {"runs": [], "ensembles": []}
    data = load("mnist", args.data_dir)
    for name in [] if args.no_train else args.recipes:
        for seed in args.seeds:
            folder = out / f"{name}-seed{seed}"
            if folder.exists():
                raise SystemExit(f"{folder} exists: remove it to measure again")
            row = run(name, seed, data, folder)
            results["runs"] = [r for r in results["runs"] if (r["recipe"], r["seed"]) != (name, seed)] + [row]
            store.write_text(json.dumps(results, indent=1))

    best = [r for r in results["runs"] if r["recipe"] == "best"]
    others = [r for r in results["runs"] if r["recipe"] == "balanced"]
    if len(best) >= 2 and "best" in args.recipes:
        results["ensembles"] = []
        for members in ([best, best + others] if others else [best]):
            for tta in (False, True):
                names = "+".join(sorted({r["recipe"] for r in members}))
                m = ensemble([r["run"] for r in members], out / f"ensemble-{names}{'-tta' if tta else ''}", data=data,
                             tta=tta)
                results["ensembles"].append(dict(
                    members=[f"{r['recipe']}-seed{r['seed']}" for r in members], tta=tta,
                    train_seconds=sum(r["train_seconds"] for r in members), test_accuracy=m["test_accuracy"]))
                print(json.dumps(results["ensembles"][-1]), flush=True)
        store.write_text(json.dumps(results, indent=1))

    lines = table(results)
    print("\n".join(lines))
    recipes = "\n".join(f"- `{n}`: {r.summary}; " + ", ".join(f"{k}={json.dumps(v)}" for k, v in r.settings.items())
                        for n, r in RECIPES.items())
    write_section("recipes", "\n".join([
        "## Recipes: time to accuracy and final accuracy",
        "",
        f"`python bench/recipes.py` on {machine()}.",
        "Each cell: mean (min-max) over the seeds listed. Training seconds count the training steps only "
        "(validation and evaluation excluded). The time to 99.0% and 99.5% is when the validation accuracy "
        "(6,000 held-out training images) first reached it, checked after each epoch; the test accuracy is "
        "that of the kept weights (the epoch with the best validation accuracy) on the 10,000 test images, "
        "which play no part in training or selection. Ensembles average the members' class probabilities; "
        "TTA also averages over one-pixel shifts of each test image.",
        "",
        *lines,
        *[f"\n{note}" for note in args.note],
        "",
        "Recipes as measured:",
        "",
        recipes,
    ]))


if __name__ == "__main__":
    main()
