"""Benchmark: issue 16's whole table for the current code, with its reference measured in the same run.

    python bench/run_all.py --data-dir ../shared/data/mnist [--quick] [--out runs/bench-all]

Each run trains into a new folder OUT/YYYYMMDD-HHMMSS.

The reference is a plain PyTorch loop written as a newcomer would write it (a DataLoader over a
TensorDataset, Adam 1e-3, batch 128, float32) training the same model as the seed notebook's Keras
CNN (cnn-small). TensorFlow is not installed here, so it stands in for the Keras notebook; ratios
against it hold on a noisy machine because both sides are timed back to back.

Rows:
- seed recipe: seconds per epoch, `--recipe seed --precision fp32` against the reference (first epoch);
- fast recipe: training seconds and test accuracy (1 seed with --quick, else 3), against the
  reference's training seconds until its validation accuracy first reached 99.0%;
- batch inference: images/s at batch 1,000 of the seed recipe's cnn-small in the default backend, and
  the most this CPU could give in float32 (its measured matrix-multiply rate over the model's FLOPs);
- serve: `mnistlab serve RUN` as typed, drawing-page PNGs, 4 connections (bench/serve.py's first row);
- best single model, its MNIST-C mCE and the ensemble come from bench/recipes.py and
  bench/robustness.py (30-minute runs per seed); --quick reports them as not measured.

Prints the table and writes it to docs/benchmarks.md between this benchmark's markers.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import cpu, load_average, machine, write_section
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mnistlab import pipeline
from mnistlab.config import TrainConfig
from mnistlab.data import load, split_indices
from mnistlab.models import build, logits_of, pixels
from mnistlab.runfolder import seconds_to, train_seconds


def reference(data, epochs: int, target: float = 0.99, seed: int = 0) -> dict:
    """The plain PyTorch loop: seconds per epoch and training seconds until validation >= target."""
    torch.manual_seed(seed)
    train, val = split_indices(data.train_labels, 0.1, seed)
    images = data.train_images.float().div(255).unsqueeze(1)
    model = build("cnn-small")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(images[train], data.train_labels[train]), batch_size=128, shuffle=True)
    val_x, val_y = images[val], data.train_labels[val]
    seconds, reached, epoch_seconds = 0.0, None, []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - start)
        seconds += epoch_seconds[-1]
        model.eval()
        with torch.no_grad():
            accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
        if accuracy >= target:
            reached = seconds
            break
    return dict(epoch=epoch_seconds[0], to_target=reached, epochs=len(epoch_seconds), val_accuracy=accuracy)


def train(recipe: str, data, out: Path, seed: int = 0, **overrides) -> dict:
    result = pipeline.run(TrainConfig.from_recipe(recipe, seed=seed, **overrides), out, data=data)
    h = result.history
    return dict(run=out, first_epoch=h[0]["seconds"], seconds=train_seconds(h), to_990=seconds_to(h, 0.99),
                test_accuracy=result.metrics["test_accuracy"])


def images_per_second(run: Path, data) -> tuple[float, float]:
    """The default backend's images/s at batch 1,000, and the ceiling this CPU puts on it: its measured
    float32 matrix-multiply rate (a 2,048-square torch.mm, the best a convolution's GEMM can do) over
    the model's floating-point operations per image (torch's own FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mnistlab.checkpoint import load_model

    model, _ = load_model(run)
    x = pixels(data.test_images)
    logits_of(model, x[:1000])  # warm-up
    best = min(_timed(lambda: [logits_of(model, x[i:i + 1000]) for i in range(0, len(x), 1000)]) for _ in range(5))
    with FlopCounterMode(display=False) as counter:
        logits_of(model, x[:100])
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)  # warm-up
    peak = 2 * 2048 ** 3 / min(_timed(lambda: torch.mm(a, b)) for _ in range(5))
    return len(x) / best, peak / (counter.get_total_flops() / 100)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def serve_row(run: Path, data_dir, seconds: int) -> dict | None:
    """bench/serve.py's first row (the plain command), or None when wrk is missing."""
    sys.path.insert(0, str(Path(__file__).parent))
    import serve as bench_serve

    if not shutil.which("wrk"):
        return None
    digit = load("mnist", data_dir).test_images[0].numpy()
    port = bench_serve.free_port()
    server, _ = bench_serve.start(run, port, [])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"http://127.0.0.1:{port}/v1/predict?input=true"
            body = bench_serve.canvas(digit)
            bench_serve.wrk(url, body, "image/png", 2, 4, Path(tmp), server.pid)  # warm-up
            return bench_serve.wrk(url, body, "image/png", seconds, 4, Path(tmp), server.pid)
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="runs/bench-all", type=Path)
    parser.add_argument("--quick", action="store_true", help="one seed, no 30-minute recipes")
    args = parser.parse_args()

    args.out = args.out / time.strftime("%Y%m%d-%H%M%S")  # a fresh folder: runs are never overwritten
    data = load("mnist", args.data_dir)
    seeds = [0] if args.quick else [0, 1, 2]
    print(f"machine: {machine()}\ncpu: {cpu()}\nload average at start: {load_average()}", flush=True)

    ref = reference(data, epochs=3 if args.quick else 10)
    print(f"reference: {ref}", flush=True)
    seed = train("seed", data, args.out / "seed", epochs=1, precision="fp32")
    print(f"seed recipe, 1 epoch: {seed}", flush=True)
    fast = [train("fast", data, args.out / f"fast-{s}", seed=s) for s in seeds]
    print(f"fast recipe: {fast}", flush=True)
    rate, ceiling = images_per_second(seed["run"], data)
    served = serve_row(seed["run"], args.data_dir, 5 if args.quick else 15)

    fast_s = statistics.mean(r["seconds"] for r in fast)
    fast_acc = [r["test_accuracy"] for r in fast]
    to = ref["to_target"]
    rows = [
        ("seed recipe fp32, seconds per epoch vs the reference",
         f"{seed['first_epoch']:.1f} s vs {ref['epoch']:.1f} s ({ref['epoch'] / seed['first_epoch']:.2f}x)",
         ">= 2x faster"),
        ("fast recipe: training seconds, test accuracy (mean of "
         f"{len(fast)} seed{'s' if len(fast) > 1 else ''})",
         f"{fast_s:.1f} s, {100 * statistics.mean(fast_acc):.2f}% (min {100 * min(fast_acc):.2f}%); reference to "
         f"99.0% validation: " + (f"{to:.1f} s ({to / fast_s:.0f}x)" if to else f"not reached in {ref['epochs']} "
                                  f"epochs (> {ref['epoch'] * ref['epochs'] / fast_s:.0f}x)"),
         "<= 2.5 s at >= 99.0%, >= 30x the reference"),
        ("batch inference, cnn-small, default backend (fp32), batch 1,000", f"{rate:,.0f} images/s; "
         f"this CPU's float32 matrix-multiply rate caps it at {ceiling:,.0f}", ">= 50,000 images/s"),
        ("`mnistlab serve RUN`, drawing-page PNG, 4 connections",
         f"{served['rps']:,.0f} req/s, p99 {served['p99']:.1f} ms, {served['errors']} errors, "
         f"{served['cpu_ms']:.2f} ms server CPU per request" if served else "not measured (wrk is not installed)",
         ">= 1,500 req/s, p99 <= 10 ms"),
        ("best single model (mean of 3 seeds), its MNIST-C mCE, ensemble",
         "not measured here: `python bench/recipes.py --recipes best` and `python bench/robustness.py`",
         ">= 99.75%, mCE <= 8%, ensemble >= 99.82%"),
    ]
    table = "| figure | measured | target |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    body = (f"## Issue 16's table (`python bench/run_all.py{' --quick' if args.quick else ''}`)\n\n"
            f"Machine: {machine()}. CPU: {cpu()}. Load average at the end: {load_average()}.\n\n{table}\n\n"
            "The reference is a plain PyTorch loop (DataLoader over a TensorDataset, Adam, batch 128, fp32) "
            "training cnn-small, timed in the same run; TensorFlow is not installed here to time the Keras "
            "notebook itself.")
    print(body)
    write_section("run-all", body)


if __name__ == "__main__":
    main()
