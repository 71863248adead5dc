"""Benchmark: `mnistlab serve` under load on loopback, measured by wrk.

    python bench/serve.py RUN --data-dir ../shared/data/mnist [--duration 30] [--connections 4]

For each backend (pytorch, onnxruntime) and number of worker processes (1, 2), it starts the real
`mnistlab serve` command, checks one answer, then runs wrk for --duration seconds against
/v1/predict with one PNG per request (a real MNIST test digit: 28x28 as an API client sends it,
and 280x280 as the drawing page sends it), and against /v1/predict/batch with 256 digits per
request. Prints a table and writes it into docs/benchmarks.md between this benchmark's markers.
Needs wrk (apt-get install wrk).
"""

import argparse
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import machine, write_section
from PIL import Image

from mnistlab.data import load
from mnistlab.export import export

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "{ctype}"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
"""


def png(digit, size: int) -> bytes:
    image = Image.fromarray(digit)
    if size != 28:
        image = image.resize((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, body: bytes, ctype: str, seconds: int, connections: int, tmp: Path) -> dict:
    (tmp / "body").write_bytes(body)
    (tmp / "post.lua").write_text(LUA.format(ctype=ctype, body=tmp / "body"))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(tmp / "post.lua"),
                          url], capture_output=True, text=True, check=True).stdout

    def ms(pct):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return dict(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), p50=ms(50), p99=ms(99),
                requests=int(re.search(r"(\d+) requests in", out).group(1)), errors=errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder of the model to serve")
    parser.add_argument("--data-dir")
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run (default: 30)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default: 4)")
    parser.add_argument("--batch", type=int, default=256, help="digits per batch request (default: 256)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/serve.py needs wrk: apt-get install wrk")

    data = load("mnist", args.data_dir)
    run = Path(args.run)
    export(run, "onnx", data=data)  # for the onnxruntime backend, checked against PyTorch
    digit, label = data.test_images[0].numpy(), str(int(data.test_labels[0]))
    batch = json.dumps({"pixels": data.test_images[:args.batch].tolist()}).encode()
    bodies = [("PNG 28x28", png(digit, 28)), ("PNG 280x280", png(digit, 280))]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("pytorch", "onnxruntime"):
            for workers in (1, 2):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                server = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port),
                                           "--backend", backend, "--workers", str(workers)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    for _ in range(600):
                        try:
                            urllib.request.urlopen(url + "/health", timeout=1)
                            break
                        except OSError:
                            time.sleep(0.1)
                    request = urllib.request.Request(url + "/v1/predict", bodies[0][1], {"Content-Type": "image/png"})
                    answer = json.loads(urllib.request.urlopen(request).read())
                    assert answer["digit"] == label, answer
                    for name, body in bodies:
                        r = wrk(url + "/v1/predict", body, "image/png", args.duration, args.connections, Path(tmp))
                        rows.append((backend, workers, name, r, r["rps"]))
                        print(f"{backend}, {workers} worker(s), {name}: {r['rps']:,.0f} requests/s, "
                              f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, {r['errors']} errors", flush=True)
                    r = wrk(url + "/v1/predict/batch", batch, "application/json", args.duration, args.connections,
                            Path(tmp))
                    rows.append((backend, workers, f"batch of {args.batch} (JSON pixels)", r, r["rps"] * args.batch))
                    print(f"{backend}, {workers} worker(s), batch: {r['rps'] * args.batch:,.0f} images/s, "
                          f"p99 {r['p99']:.1f} ms, {r['errors']} errors", flush=True)
                finally:
                    server.terminate()
                    server.wait(30)

    table = ["| backend | workers | request | requests/s | images/s | p50 ms | p99 ms | requests | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {b} | {w} | {n} | {r['rps']:,.0f} | {ips:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['requests']:,} "
              f"| {r['errors']} |" for b, w, n, r, ips in rows]
    model = json.loads((run / "config.json").read_text())["model"]
    body = "\n".join([
        "## Serving under load",
        "",
        f"Machine: {machine()}.",
        f"`python bench/serve.py RUN --duration {args.duration} --connections {args.connections}`: the real"
        f" `mnistlab serve` command on loopback, loaded by wrk (1 thread, {args.connections} connections,"
        f" {args.duration} s per row) on the same 2 cores. Model: {model}"
        f" from `{run.name}`. One PNG per request is MNIST test digit 0, sent as raw image/png; the server"
        " decodes it, brings it to MNIST's convention (as `mnistlab predict` does) and classifies it."
        " With several workers each has one inference thread, and the rows vary from run to run: wrk opens its"
        " keep-alive connections at the start, and the kernel hands them to the workers then, often unevenly."
        " Errors: non-2xx answers plus socket errors.",
        "",
        *table,
    ])
    write_section("serve", body)


if __name__ == "__main__":
    main()
