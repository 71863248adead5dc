"""Shared fixtures: the real MNIST files (through the normal data-directory option) and one small
trained run that several tests reuse."""

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mnistlab import data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Real MNIST: $MNISTLAB_DATA, else ../shared/data/mnist beside the project root."""
    path = Path(os.environ.get("MNISTLAB_DATA") or ROOT.parent / "shared" / "data" / "mnist")
    assert (path / "train-images-idx3-ubyte.gz").exists(), f"real MNIST files are needed in {path}"
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir) -> data.Data:
    return data.load("mnist", mnist_dir, progress=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """A real end-to-end `mnistlab train` of cnn-small: one epoch on 20,000 training images,
    then evaluation on the full test set and the report."""
    from mnistlab.cli import main

    run = tmp_path_factory.mktemp("runs") / "cnn-small"
    code = main(["train", "--model", "cnn-small", "--epochs", "1", "--train-limit", "20000", "--batch-size", "64",
                 "--data-dir", str(mnist_dir), "--out", str(run)])
    assert code == 0
    return run


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
