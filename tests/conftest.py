"""Shared fixtures: the real MNIST files (through the normal data-directory option) and one small
trained run that several tests reuse, made once for all pytest-xdist workers."""

import asyncio
import contextlib
import fcntl
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from mnistlab import data

ROOT = Path(__file__).resolve().parent.parent

# pytest-xdist (`-n auto` in pyproject.toml) runs the tests in one worker process per CPU. The workers
# share the CPUs: each worker's torch, and every process its tests start (they inherit OMP_NUM_THREADS),
# gets CPUs / workers threads. With two threads each, two busy processes on two CPUs wait on each other's
# threads: cnn-small's training steps ran 10x slower than in one thread each.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // WORKERS))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Real MNIST: $MNISTLAB_DATA, else ../shared/data/mnist beside the project root."""
    path = Path(os.environ.get("MNISTLAB_DATA") or ROOT.parent / "shared" / "data" / "mnist")
    assert (path / "train-images-idx3-ubyte.gz").exists(), f"real MNIST files are needed in {path}"
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> data.Data:
    return data.load("mnist", mnist_dir, progress=False)


def once(tmp_path_factory, name: str, make) -> Path:
    """The folder `name` made by `make(folder)` once per test session, for tests to read: under
    pytest-xdist the first worker that needs it makes it while the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    folder, mark = shared / name, shared / name.replace("/", "-")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{mark}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not Path(f"{mark}.done").exists():
            make(folder)
            Path(f"{mark}.done").touch()
    return folder


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """A real end-to-end `mnistlab train` of cnn-small: one epoch on 20,000 training images,
    then evaluation on the full test set and the report."""
    from mnistlab.cli import main

    def make(run):
        assert main(["train", "--model", "cnn-small", "--epochs", "1", "--train-limit", "20000", "--batch-size", "64",
                     "--data-dir", str(mnist_dir), "--out", str(run)]) == 0

    return once(tmp_path_factory, "cnn-small", make)


def run_main(*args, cwd=None) -> subprocess.CompletedProcess:
    """`mnistlab ARGS` through `main`, as the command line calls it, in this process (a traceback fails
    the test as an exception; starting Python and torch again for every case took 4-5 s): its exit
    code, stdout and stderr."""
    from mnistlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own errors exit
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def run_command(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m mnistlab ARGS` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "mnistlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


class Server:
    """A real HTTP server for the API and browser tests: uvicorn running `app` in a thread, on a free
    loopback port."""

    def __init__(self, app):
        import uvicorn

        sock = free_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


# Hypothesis budgets: "ci" (the default) keeps the fuzz tests within the normal suite time and is
# derandomised so that every run tries the same inputs; "fuzz" is the longer campaign.
settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
