"""Benchmark: inference throughput (images/s at batch 1,000 and batch 1), peak memory and test accuracy
of trained models, for each inference backend.

    python bench/inference.py --data-dir ../shared/data/mnist RUN [RUN ...]

Backends: `torch` (models.logits_of in float32: what evaluate and predict use) and `torch-bf16`
(logits_of under bfloat16 autocast). Each (model, backend) is measured in a fresh subprocess so that its
peak resident memory (ru_maxrss) is its own; the figure includes the Python interpreter and torch
itself, whose baseline is measured and printed first. Throughput is the best of 7 passes over the
10,000 test images at batch 1,000, and of 3 passes over 2,000 of them one at a time.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

from common import machine, write_section

BACKENDS = ("torch", "torch-bf16")


def measure(run: str, backend: str, data_dir) -> dict:
    """Runs in the child process."""
    import torch

    from mnistlab.checkpoint import load_model
    from mnistlab.data import load
    from mnistlab.models import logits_of, pixels

    model, meta = load_model(run)
    data = load(meta["dataset"], data_dir)
    x = pixels(data.test_images)

    def predict(batch):
        return logits_of(model, batch, bf16=backend == "torch-bf16").argmax(1)

    def best_of(passes, fn):
        fn()  # warm-up
        times = []
        for _ in range(passes):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    preds = torch.cat([predict(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    big = best_of(7, lambda: [predict(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    one = best_of(3, lambda: [predict(x[i:i + 1]) for i in range(2000)])
    args = {k: v for k, v in (meta["model"].get("args") or {}).items() if k != "num_classes"}
    label = meta["model"]["name"] + "".join(f", {k} {v}" for k, v in args.items())
    return dict(model=label, params=meta["model"].get("params"), backend=backend,
                batch1000=len(x) / big, batch1=2000 / one, latency1_ms=one / 2000 * 1000,
                test_accuracy=(preds == data.test_labels).float().mean().item(),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(args: list) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN")
    parser.add_argument("--data-dir")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.child == ["baseline"]:
            import torch  # noqa: F401

            import mnistlab.checkpoint  # noqa: F401

            print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        else:
            print(json.dumps(measure(args.child[0], args.child[1], args.child[2] if len(args.child) > 2 else None)))
        return

    baseline = child(["baseline"])["peak_rss_mb"]
    print(f"baseline (python + torch + mnistlab imported): {baseline:.0f} MB", flush=True)
    rows = []
    for run in args.runs:
        for backend in BACKENDS:
            r = child([run, backend] + ([args.data_dir] if args.data_dir else []))
            rows.append(r)
            print(json.dumps(r), flush=True)
    lines = ["| model | params | backend | images/s, batch 1,000 | images/s, batch 1 | latency, batch 1 | "
             "peak memory | test accuracy |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['params']:,} | {r['backend']} | {r['batch1000']:,.0f} | {r['batch1']:,.0f} | "
              f"{r['latency1_ms']:.2f} ms | {r['peak_rss_mb']:.0f} MB | {r['test_accuracy']:.2%} |" for r in rows]
    print("\n".join(lines))
    write_section("inference", "\n".join([
        "## Inference throughput",
        "",
        f"`python bench/inference.py RUN...` on {machine()}.",
        "Best of 7 passes over the 10,000 test images at batch 1,000, and of 3 over 2,000 of them one image per "
        f"call. Peak memory is the resident set of a fresh process that loaded the model and the data set; "
        f"Python with torch and mnistlab imported takes {baseline:.0f} MB of it. Reference: Keras's predict "
        "runs seed 000's CNN at about 26,000 images/s on this machine.",
        "",
        *lines,
    ]))


if __name__ == "__main__":
    main()
