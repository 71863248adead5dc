"""Benchmark: `mnistlab serve` under load on loopback, measured by wrk.

    python bench/serve.py RUN --data-dir ../shared/data/mnist [--duration 15] [--connections 4]

The first row is the plain command a newcomer types, `mnistlab serve RUN` (its backend, workers and
threads chosen for the machine), sent what the drawing page sends: a 280x280 RGBA PNG of a digit
drawn on the canvas (white 18-pixel round strokes on black) to /v1/predict?input=true. Then each
backend (pytorch, onnxruntime) with 1 and 2 worker processes, with that drawing, a 28x28 PNG (an
API client's MNIST digit) and a batch of 256 digits as JSON pixels. For each row it records the
load average before and after, and the server's CPU time per request (all its processes), which
depends much less on other jobs on the machine than the request rate does. Prints a table and
writes it into docs/benchmarks.md between this benchmark's markers. Needs wrk (apt-get install wrk).
"""

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from common import cpu, load_average, machine, write_section
from PIL import Image

from mnistlab.data import load
from mnistlab.export import export

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "{ctype}"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
"""
DRAWING = "drawing-page PNG 280x280"


def png(digit, size: int) -> bytes:
    image = Image.fromarray(digit)
    if size != 28:
        image = image.resize((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def canvas(digit: np.ndarray) -> bytes:
    """The drawing page's PNG of `digit` drawn on its 280x280 canvas: RGBA, opaque black, white
    anti-aliased round strokes 18 pixels wide, one per run of ink in each of the digit's rows."""
    image = np.zeros((280, 280, 4), np.uint8)
    image[..., 3] = 255
    for row, line in enumerate(digit > 100):
        cols = np.nonzero(line)[0]
        for run in np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1) if len(cols) else []:
            y = row * 10 + 5
            cv2.line(image, (int(run[0]) * 10 + 5, y), (int(run[-1]) * 10 + 5, y), (255, 255, 255, 255), 18,
                     cv2.LINE_AA)
    return cv2.imencode(".png", image)[1].tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User and system time of a process and its children (the uvicorn workers), in seconds."""
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
                    .stdout.split()]
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body: bytes, ctype: str, seconds: int, connections: int, tmp: Path, server: int) -> dict:
    (tmp / "body").write_bytes(body)
    (tmp / "post.lua").write_text(LUA.format(ctype=ctype, body=tmp / "body"))
    before, load_before = cpu_seconds(server), load_average()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(tmp / "post.lua"),
                          url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(server) - before

    def ms(pct):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return dict(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), p50=ms(50), p99=ms(99),
                requests=requests, errors=errors, cpu_ms=1000 * used / max(requests, 1),
                load=f"{load_before} / {load_average()}")


def start(run: Path, port: int, flags: list[str]) -> tuple[subprocess.Popen, str]:
    """The real command; returns it and its start-up line (what it chose)."""
    server = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port), *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline().strip()  # "serving MODEL on ..." comes first
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return server, line
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not start: {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder of the model to serve")
    parser.add_argument("--data-dir")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default: 15)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default: 4)")
    parser.add_argument("--batch", type=int, default=256, help="digits per batch request (default: 256)")
    parser.add_argument("--default-only", action="store_true", help="only the plain command's row")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/serve.py needs wrk: apt-get install wrk")

    data = load("mnist", args.data_dir)
    run = Path(args.run)
    digit, label = data.test_images[0].numpy(), str(int(data.test_labels[0]))
    drawing = canvas(digit)
    batch = json.dumps({"pixels": data.test_images[:args.batch].tolist()}).encode()
    configs = [("`mnistlab serve RUN` (default)", [], [(DRAWING, drawing)])]
    if not args.default_only:
        configs += [(f"--backend {backend} --workers {workers}", ["--backend", backend, "--workers", str(workers)],
                     [(DRAWING, drawing), ("PNG 28x28", png(digit, 28)), (f"batch of {args.batch}", batch)])
                    for backend in ("pytorch", "onnxruntime") for workers in (1, 2)]

    rows, chosen = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, bodies in configs:
            if flags and not (run / "model.onnx").exists():  # after the plain command, which needs none
                export(run, "onnx", data=data)  # for --backend onnxruntime, checked against PyTorch
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            server, line = start(run, port, flags)
            chosen = chosen or line
            try:
                request = urllib.request.Request(url + "/v1/predict", drawing, {"Content-Type": "image/png"})
                answer = json.loads(urllib.request.urlopen(request).read())
                assert answer["text"] == label, answer
                for body_name, body in bodies:
                    is_batch = body_name.startswith("batch")
                    path = "/v1/predict/batch" if is_batch else "/v1/predict" + ("?input=true" if body_name == DRAWING
                                                                                 else "")
                    ctype = "application/json" if is_batch else "image/png"
                    r = wrk(url + path, body, ctype, args.duration, args.connections, Path(tmp), server.pid)
                    images = r["rps"] * (args.batch if is_batch else 1)
                    rows.append((name, body_name, r, images))
                    print(f"{name}, {body_name}: {r['rps']:,.0f} requests/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f}"
                          f" ms, {r['errors']} errors, {r['cpu_ms']:.2f} ms server CPU per request, load {r['load']}",
                          flush=True)
            finally:
                server.terminate()
                server.wait(30)

    table = ["| command | request | requests/s | images/s | p50 ms | p99 ms | errors | server CPU ms per request "
             "| load average before / after (1, 5, 15 min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {n} | {b} | {r['rps']:,.0f} | {ips:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} "
              f"| {r['cpu_ms']:.2f} | {r['load']} |" for n, b, r, ips in rows]
    model = json.loads((run / "config.json").read_text())["model"]
    body = "\n".join([
        "## Serving under load",
        "",
        f"Machine: {machine()}; CPU: {cpu()}.",
        f"`python bench/serve.py RUN --duration {args.duration} --connections {args.connections}`: the real"
        f" `mnistlab serve` command on loopback, loaded by wrk (1 thread, {args.connections} connections,"
        f" {args.duration} s per row) on the same cores. Model: {model} from `{run.name}`. The plain command"
        f" said: `{chosen}`. The {DRAWING} is MNIST test digit 0 drawn as the page draws it (white round strokes"
        " 18 pixels wide on black, RGBA) and sent as the page sends it, raw image/png to"
        " /v1/predict?input=true; the server reads it as `mnistlab predict` does (finds the digits, brings"
        " each to MNIST's convention, classifies it). Errors: non-2xx answers plus socket errors. Server CPU:"
        " user and system time of all the server's processes during the row, per request; other jobs on the"
        " machine change it much less than the request rate, which the load average beside each row qualifies.",
        "",
        *table,
    ])
    write_section("serve", body)


if __name__ == "__main__":
    main()
