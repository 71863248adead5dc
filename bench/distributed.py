"""Benchmark: one process against torchrun with N processes, the same run otherwise.

    python bench/distributed.py --data-dir ../shared/data/mnist [--nproc 2] [--epochs 3]

Both train cnn-small on all of MNIST's training split (10% held out for validation) with the same
global batch and seed, through the real `mnistlab train` command, then evaluate on the test set.
Prints a table and writes it into docs/benchmarks.md between this benchmark's markers.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import machine, write_section

from mnistlab.runfolder import best_epoch


def run(launcher: list[str], out: Path, args) -> dict:
    cmd = [*launcher, "-m", "mnistlab", "train", "--model", "cnn-small", "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--data-dir", args.data_dir, "--out", str(out)]
    subprocess.run(cmd, check=True)
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    seconds = [r["seconds"] for r in history]
    return dict(epoch_seconds=sum(seconds) / len(seconds), val=best_epoch(history)["val_accuracy"],
                last_val=history[-1]["val_accuracy"], test=metrics["test_accuracy"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="runs/bench-distributed")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    out = Path(args.out)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
    rows = [("1 process", run([sys.executable], out / "single", args)),
            (f"torchrun, {args.nproc} processes (gloo)", run(torchrun, out / f"ddp{args.nproc}", args))]
    for name, r in rows:
        print(f"{name}: {r['epoch_seconds']:.2f} s/epoch, best val {r['val']:.2%}, test {r['test']:.2%}")

    table = ["| launch | s/epoch (training) | best val accuracy | last val accuracy | test accuracy |",
             "|---|---|---|---|---|"]
    table += [f"| {n} | {r['epoch_seconds']:.2f} | {r['val']:.2%} | {r['last_val']:.2%} | {r['test']:.2%} |"
              for n, r in rows]
    body = "\n".join([
        "## torchrun against one process",
        "",
        f"Machine: {machine()}.",
        f"`python bench/distributed.py --nproc {args.nproc} --epochs {args.epochs}`: cnn-small, {args.epochs} epochs,"
        f" global batch {args.batch_size}, seed 0, all 54,000 training images, through `mnistlab train`. With"
        " torchrun each process computes half of every batch and DistributedDataParallel averages the gradients"
        " (gloo), so both runs take the same steps; on a 2-core machine the processes share the two cores that"
        " one process uses by itself.",
        "",
        *table,
    ])
    write_section("distributed", body)


if __name__ == "__main__":
    main()
