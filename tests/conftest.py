"""Shared fixtures: the real MNIST files (through the normal data-directory option) and one small
trained run that several tests reuse."""

import os
from pathlib import Path

import pytest

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
