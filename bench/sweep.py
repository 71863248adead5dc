"""Benchmark: `mnistlab sweep --recipe balanced` with one worker process against two on the same study.

    python bench/sweep.py --data-dir ../shared/data/mnist [--trials 20] [--budget 30m] [--train-limit 5000]

For each number of workers, a fresh SQLite study of the default search space: the worker processes run
the same `mnistlab sweep` command with a time budget (`--timeout`: no trial starts after it). Measured:
trials finished per hour (complete or pruned, over the wall time until the last worker exits), the
best validation accuracy found, and how many trials the median pruner cut. `--train-limit` keeps the
trials practical on a laptop; the figures are for that subset, not for full `balanced` runs.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import machine, write_section

ROOT = Path(__file__).resolve().parent.parent


def measure(workers: int, args, out: Path) -> dict:
    from mnistlab.sweep import load_study, open_storage, summary

    storage = f"sqlite:///{out.resolve()}/sweeps.db"
    study = f"bench-{workers}w-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "mnistlab", "sweep", "--recipe", "balanced", "--trials", str(args.trials),
               "--timeout", args.budget, "--train-limit", str(args.train_limit), "--epochs", str(args.epochs),
               "--study", study, "--storage", storage, "--dir", str(out)] + \
        (["--data-dir", args.data_dir] if args.data_dir else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    s = summary(load_study(study, open_storage(storage)))
    finished = s["counts"]["complete"] + s["counts"]["pruned"]
    row = dict(workers=workers, study=study, trials=finished, pruned=s["counts"]["pruned"], wall=wall,
               per_hour=finished / wall * 3600, best_val=s["best"]["val_accuracy"] if s["best"] else None)
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budget", default="30m", help="time budget per sweep (mnistlab sweep --timeout)")
    parser.add_argument("--train-limit", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=7, help="epochs per trial (balanced: 7)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="runs/bench-sweep")
    parser.add_argument("--note", action="append", default=[], help="a remark to print under the table")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [measure(w, args, out) for w in args.workers]
    lines = ["## Hyperparameter search: one worker against two",
             "",
             f"`python bench/sweep.py --trials {args.trials} --budget {args.budget} --train-limit {args.train_limit} "
             f"--epochs {args.epochs}`: `mnistlab sweep --recipe balanced` over the default search space (lr, "
             "weight decay, width, rotate, scale, translate), fresh SQLite study per row, the workers as "
             "separate processes on the same study. Trials per hour count complete and pruned trials over the "
             "wall time until the last worker exits.",
             "",
             "| workers | trials finished | pruned | wall s | trials per hour | best val accuracy |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        best = "-" if r["best_val"] is None else f"{r['best_val']:.2%}"
        lines.append(f"| {r['workers']} | {r['trials']} | {r['pruned']} | {r['wall']:.0f} | {r['per_hour']:.0f} | "
                     f"{best} |")
    lines += ["", f"Machine: {machine()}."] + [f"{n}" for n in args.note]
    write_section("sweep", "\n".join(lines))


if __name__ == "__main__":
    main()
