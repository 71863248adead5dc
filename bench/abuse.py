"""Benchmark: hostile and careless input against a live `mnistlab serve` and the CLI.

    python bench/abuse.py [RUN] --data-dir ../shared/data/mnist

Starts the real `mnistlab serve` command on a loopback port (a copy of RUN, or a model trained here
in a few seconds, in a temporary folder) and, while a thread polls /health every 20 ms, throws every
class of issue 15 at it: batches of large PNGs within and over the limits, decompression bombs,
deeply nested JSON, huge integers, malformed bodies, bad query parameters, bodies that stall or
trickle, clients that leave mid-upload. Then runs the CLI on a FIFO named like an image, a device,
checkpoints with a flipped byte or an invalid description, and a folder named like a checkpoint.
Prints requests tried, 5xx answers, tracebacks in the server's output, the worst /health latency,
hung commands and files changed outside the temporary folder, and writes them into
docs/benchmarks.md between this benchmark's markers. Loopback only; about a minute.
"""

import argparse
import base64
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import DOC, machine, write_section
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from mnistlab import checkpoint
from mnistlab.data import load

ROOT = Path(__file__).resolve().parent.parent


def png(array: np.ndarray, size: int | None = None, noise: float = 0) -> bytes:
    image = Image.fromarray(255 - array)
    if size:
        image = image.resize((size, size), Image.BILINEAR)
    if noise:
        a = np.asarray(image, np.float32) + np.random.default_rng(0).normal(0, noise, (size, size))
        image = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def bomb(size: int = 20_000) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (size, size)).save(buffer, "PNG")
    return buffer.getvalue()


def multipart(blobs: list[bytes]) -> tuple[bytes, str]:
    boundary = "abuse-boundary-7f3a"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{i}.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + blob + b"\r\n" for i, blob in enumerate(blobs)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def snapshot(*roots: Path) -> dict:
    """Size and modification time of every file under `roots` (git's own folder and caches aside)."""
    files = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__", ".pytest_cache", ".venv")]
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                files[str(path)] = (st.st_size, st.st_mtime_ns)
    return files


class Client:
    """Requests to the server, counting what was tried and every status."""

    def __init__(self, port: int):
        self.port = port
        self.statuses: dict[int, int] = {}
        self.tried = 0
        self.problems: list[str] = []  # answers that are not what a hostile input deserves
        self.lock = threading.Lock()

    def request(self, method, path, body=None, ctype=None, expect=None, timeout=60) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
            r = conn.getresponse()
            text = r.read()
            status = r.status
        except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
            status, text = 0, str(e).encode()
            if isinstance(e, (ConnectionResetError, BrokenPipeError)) and expect == {413}:
                # Refused from its Content-Length, the connection closed while the client was still sending
                # (uvicorn does not linger to drain the body): a refusal, whose 413 the client may not read.
                status = "413, closed while sending"
        finally:
            conn.close()
        with self.lock:
            self.tried += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if isinstance(status, str):
            return 413
        detail = ""
        if 400 <= status < 500 and text:
            try:
                detail = json.loads(text).get("detail", "")
            except (ValueError, AttributeError):
                detail = "(not JSON)"
        bad_detail = 400 <= status < 500 and (not isinstance(detail, str) or "\n" in detail or " at 0x" in detail)
        if status == 0 or status >= 500 or (expect and status not in expect) or bad_detail:
            with self.lock:
                self.problems.append(f"{method} {path} -> {status} {text[:120]!r}")
        return status

    def raw(self, head: bytes, parts: list[bytes], pause: float, close_early: bool = False) -> bytes:
        """A request sent by hand: headers, then body parts with a pause before each; with close_early
        the client leaves before the body is complete."""
        with self.lock:
            self.tried += 1
        answer = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(head)
            try:
                for part in parts:
                    time.sleep(pause)
                    s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if close_early:
                with self.lock:
                    self.statuses["left mid-upload"] = self.statuses.get("left mid-upload", 0) + 1
                return b""
            try:
                while chunk := s.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        return answer


def poll_health(port: int, stop: threading.Event, latencies: list[float], failures: list[str]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        start = time.perf_counter()
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                failures.append(f"/health {r.status}")
        except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
            failures.append(f"/health {type(e).__name__}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    conn.close()


def attack_server(client: Client, digits: list[np.ndarray], tmp: Path):
    """Every server class of issue 15, with concurrency where it hurts."""
    big = [png(d, 2048) for d in digits[:8]]  # 8 photos of 2048x2048: 33.5 megapixels, the limit
    assert sum(map(len, big)) < 8 << 20, "the batch must be within --max-body"
    threads = []

    def later(fn, *args, **kwargs):
        t = threading.Thread(target=fn, args=args, kwargs=kwargs)
        t.start()
        threads.append(t)

    # 1. Work that used to freeze the loop: two batches of large photos within the limits at once,
    # a batch over the pixel limit, a batch of 256 images over it, bombs.
    for _ in range(2):
        later(client.request, "POST", "/v1/predict/batch", *multipart(big), expect={200})
    time.sleep(0.2)
    client.request("POST", "/v1/predict/batch", *multipart(big + big[:1]), expect={413})
    small_big = [png(digits[0], 1024)] * 256
    client.request("POST", "/v1/predict/batch", *multipart(small_big), expect={413})
    client.request("POST", "/v1/predict", bomb(), "image/png", expect={422})
    client.request("POST", "/v1/predict/batch", *multipart([bomb(5000)] * 2), expect={413})
    b64 = base64.b64encode(big[0]).decode()
    client.request("POST", "/v1/predict/batch", json.dumps({"images": [b64] * 9}).encode(), "application/json",
                   expect={413})

    # 2. Malformed JSON of every kind.
    huge = "9" * 400
    bodies = [
        "[" * 100_000 + "]" * 100_000,
        '{"pixels": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"pixels": [' + ",".join([huge] * 784) + "]}",
        '{"pixels": [[' + ",".join([huge] * 784) + "]]}",
        '{"pixels": [' + "9" * 5000 + "]}",
        '{"pixels": [1e999]}', '{"pixels": [NaN]}', '{"pixels": {"a": 1}}', '{"pixels": [[{"a": []}]]}',
        '{"images": [null, 1, {}]}', '{"image": ["x"]}', '{"image": "data:,"}', '{"pixels": "' + "A" * 10_000 + '"}',
        '{"pixels": [' + ",".join(["0"] * 1_000_000) + "]}",
        "", "null", "[]", "{}", '"text"', "\ufeff{}", '{"pixels": [0' + ", 0" * 783 + '], "y": 1}',
    ]
    for body in bodies:
        for path in ("/v1/predict", "/v1/predict/batch"):
            client.request("POST", path, body.encode(), "application/json")
    rng = np.random.default_rng(0)
    for ctype in ("image/png", "image/jpeg", "image/webp", "image/avif", "image/heic", "application/json",
                  "multipart/form-data; boundary=b", "text/plain"):
        for _ in range(20):
            body = rng.integers(0, 256, rng.integers(0, 3000), np.uint8).tobytes()
            client.request("POST", "/v1/predict", body, ctype)
    # HEIC's header with random boxes after it, and a real HEIC photo with bytes changed: libheif's input.
    heif = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"
    for _ in range(20):
        client.request("POST", "/v1/predict", heif + rng.integers(0, 256, rng.integers(0, 3000), np.uint8).tobytes(),
                       "image/heic")
    try:
        from pillow_heif import register_heif_opener
        register_heif_opener()
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8)).save(buffer, "HEIF", quality=80)
        for _ in range(20):
            photo = bytearray(buffer.getvalue())
            for at in rng.integers(12, len(photo), 20):
                photo[at] = rng.integers(0, 256)
            client.request("POST", "/v1/predict", bytes(photo), "image/heic")
    except ImportError:  # without the heic extra, the random ones above are the test
        pass

    # 3. Bad query parameters, methods and paths.
    pixels = json.dumps({"pixels": digits[0].tolist()}).encode()
    for query in ("input=maybe", "input=", "input=[]", "input=1&input=2", "input=%00", "input=" + "x" * 5000):
        client.request("POST", "/v1/predict?" + query, pixels, "application/json")
    client.request("GET", "/v1/predict", expect={405})
    client.request("GET", "/nothing/here", expect={404})
    client.request("GET", "/docs", expect={404})

    # 4. Bodies that stall or trickle (the server was started with --body-timeout 2), clients that leave.
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    for _ in range(3):
        later(client.raw, head, [b"\x89PNG"], 0)  # then nothing
        later(client.raw, head, [b"x"] * 60, 0.05)  # a byte every 50 ms
    for _ in range(5):
        later(client.raw, head, [b"\0" * 5000], 0.1, close_early=True)
    for t in threads:
        t.join()


def cli(args: list[str], tmp: Path, timeout: float = 60) -> dict:
    """One CLI run: did it hang, fail with one line, or print a traceback?"""
    try:
        r = subprocess.run([sys.executable, "-m", "mnistlab", *args], capture_output=True, text=True, timeout=timeout,
                           cwd=tmp, env={**os.environ, "COLUMNS": "200"})
    except subprocess.TimeoutExpired:
        return dict(args=args, hung=True, code=None, traceback=False, err="")
    return dict(args=args, hung=False, code=r.returncode, traceback="Traceback" in r.stderr, err=r.stderr.strip())


def resave(src: Path, dst: Path, change):
    """A copy of a checkpoint whose description `change` alters, with a matching SHA-256."""
    with safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["mnistlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(meta)
    meta["sha256"] = checkpoint.digest(tensors, meta)
    dst.mkdir(parents=True, exist_ok=True)
    save_file(tensors, dst / "model.safetensors", metadata={"mnistlab": json.dumps(meta)})


def attack_cli(run: Path, digit: np.ndarray, tmp: Path) -> list[dict]:
    folder = tmp / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png(digit, 200))
    os.mkfifo(folder / "x.png")
    (folder / "y.jpg").mkdir()
    model = run / "model.safetensors"
    flipped = tmp / "flipped"
    flipped.mkdir()
    blob = model.read_bytes()
    shutil.copy(model, flipped / "model.safetensors")
    (flipped / "model.safetensors").write_bytes(blob.replace(b'\\"3\\"', b'\\"8\\"', 1))
    resave(model, tmp / "nan-temperature", lambda m: m.update(temperature=float("nan")))
    resave(model, tmp / "repeated-classes", lambda m: m.update(classes=["0"] * len(m["classes"])))
    (tmp / "folder-run" / "model.safetensors").mkdir(parents=True)
    os.mkfifo(tmp / "fifo.safetensors")
    image = str(folder / "a.png")
    runs = [
        (["predict", str(run), str(folder)], "not a regular file (a FIFO); skipped"),
        (["predict", str(run), "/dev/zero"], "not a regular file"),
        (["predict", str(flipped), image], "corrupt checkpoint"),
        (["predict", str(tmp / "nan-temperature"), image], "invalid checkpoint (temperature nan"),
        (["predict", str(tmp / "repeated-classes"), image], "class names repeat"),
        (["predict", str(tmp / "folder-run"), image], "not a regular file"),
        (["predict", str(tmp / "fifo.safetensors"), image], "not a regular file"),
        (["serve", str(flipped), "--port", "1"], "corrupt checkpoint"),
        (["export", str(tmp / "nan-temperature"), "--check-images", "0"], "invalid checkpoint"),
    ]
    results = []
    for args, expected in runs:
        r = cli(args, tmp)
        r["ok"] = not r["hung"] and not r["traceback"] and r["code"] == 1 and expected in r["err"]
        results.append(r)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder of the model to serve (default: train a small one here)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    data = load("mnist", args.data_dir)
    digits = [data.test_images[i].numpy() for i in range(10)]
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="mnistlab-abuse-") as tmp_name:
        tmp = Path(tmp_name)
        watched = [ROOT] + ([Path(args.run).resolve()] if args.run else [])
        before = snapshot(*watched)
        run = tmp / "run"
        if args.run:
            shutil.copytree(args.run, run)
        else:
            data_dir = args.data_dir or os.environ.get("MNISTLAB_DATA")
            r = cli(["train", "--recipe", "fast", "--epochs", "1", "--train-limit", "10000", "--no-evaluate",
                     "--out", str(run)] + (["--data-dir", str(Path(data_dir).resolve())] if data_dir else []), tmp, 300)
            assert r["code"] == 0, r
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(tmp / "server.log", "w+")
        server = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port),
                                   "--body-timeout", "2"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        client = Client(port)
        try:
            for _ in range(300):
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                    break
                except OSError:
                    time.sleep(0.1)
            latencies, failures, stop = [], [], threading.Event()
            poller = threading.Thread(target=poll_health, args=(port, stop, latencies, failures))
            poller.start()
            attack_started = time.perf_counter()
            attack_server(client, digits, tmp)
            attack_seconds = time.perf_counter() - attack_started
            stop.set()
            poller.join()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/v1/model")
            model_text = conn.getresponse().read().decode()
            conn.request("GET", "/metrics")
            metrics = conn.getresponse().read().decode()
            conn.close()
        finally:
            server.terminate()
            server.wait(30)
        log.seek(0)
        server_output = log.read()
        log.close()
        cli_results = attack_cli(run, digits[0], tmp)
        after = snapshot(*watched)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and Path(p) != DOC)

    counted_5xx = re.findall(r'mnistlab_requests_total\{path="[^"]*",status="5\d\d"\} (\S+)', metrics)
    server_5xx = sum(float(n) for n in counted_5xx)
    client_5xx = sum(n for status, n in client.statuses.items() if isinstance(status, int) and status >= 500)
    paths_shown = re.findall(r'"(/(?:tmp|root|home|work)[^"]*)"', model_text)
    worst = max(latencies) * 1000
    p99 = float(np.percentile(latencies, 99)) * 1000
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(client.statuses.items(), key=lambda kv: str(kv[0])))
    hung = sum(r["hung"] for r in cli_results)
    cli_ok = sum(r["ok"] for r in cli_results)
    print(f"server: {client.tried} requests in {attack_seconds:.1f} s ({statuses})")
    print(f"5xx answers: {client_5xx} seen by the clients, {server_5xx:.0f} in the server's metrics")
    print(f"tracebacks: {server_output.count('Traceback')} in the server's output, "
          f"{sum(r['traceback'] for r in cli_results)} from the CLI")
    print(f"/health under load: {len(latencies)} polls, worst {worst:.1f} ms, p99 {p99:.1f} ms, {len(failures)} failed")
    print(f"unexpected answers: {len(client.problems)}")
    for p in client.problems[:10]:
        print("  " + p)
    print(f"CLI: {len(cli_results)} runs, {cli_ok} refused with the expected one-line error, {hung} hung")
    for r in cli_results:
        if not r["ok"]:
            print(f"  {' '.join(r['args'])}: code {r['code']}, hung {r['hung']}: {r['err'][-200:]}")
    print(f"absolute paths shown by /v1/model: {len(paths_shown)}")
    print(f"files changed outside the temporary folder: {len(changed)}")
    for p in changed[:10]:
        print("  " + p)

    rows = [
        ("requests tried against the server", f"{client.tried:,}"),
        ("answers by status", statuses),
        ("5xx answers (clients / server metrics)", f"{client_5xx} / {server_5xx:.0f}"),
        ("unexpected answers (wrong status, multi-line or repr in the detail)", f"{len(client.problems)}"),
        ("tracebacks (server output / CLI)", f"{server_output.count('Traceback')} / "
                                             f"{sum(r['traceback'] for r in cli_results)}"),
        ("`/health` under the load: worst / p99 latency", f"{worst:.1f} ms / {p99:.1f} ms ({len(latencies)} polls, "
                                                          f"{len(failures)} failed)"),
        ("CLI runs with bad inputs: refused in one line / hung", f"{cli_ok} of {len(cli_results)} / {hung}"),
        ("absolute paths in `/v1/model`", f"{len(paths_shown)}"),
        ("files changed outside the temporary run folder", f"{len(changed)}"),
    ]
    body = "\n".join([
        "## Abuse",
        "",
        f"Machine: {machine()}.",
        "`python bench/abuse.py --data-dir ../shared/data/mnist`: the real `mnistlab serve` command (one worker,"
        " PyTorch, `--body-timeout 2`) on loopback, with a thread polling `/health` every 20 ms while clients"
        " send, partly at once: two batches of eight 2048x2048 photos (the default limit of 33.5 megapixels per"
        " request) and batches over it, decompression bombs, deeply nested JSON, 400- and 5,000-digit integers,"
        " NaN and other malformed JSON and random bodies under every content type (WebP, AVIF and HEIC too),"
        " HEIC headers with random boxes after them and a HEIC photo with bytes changed, bad query parameters, bodies"
        " that stall or trickle, and clients that leave mid-upload. Then the CLI on a FIFO and a folder named"
        " like images, `/dev/zero`, a checkpoint with a flipped byte in its class names, one with a NaN"
        " temperature, one with repeated class names (both with a matching SHA-256), a folder and a FIFO"
        f" named like checkpoints. {time.perf_counter() - started:.0f} s in all.",
        "",
        "| measure | result |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
    ])
    write_section("abuse", body)


if __name__ == "__main__":
    main()
