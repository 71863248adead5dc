"""Hostile input, by property-based testing (Hypothesis): arbitrary and mutated bytes for the IDX
reader, the checkpoint loader and the image preprocessing give a result or a MnistlabError, never
another exception, a hang or a huge allocation.

The budget is fixed per test (profile "ci" in conftest.py); `HYPOTHESIS_PROFILE=fuzz python -m pytest
tests/test_fuzz.py --hypothesis-show-statistics` runs the longer fuzz campaign.
"""

import atexit
import functools
import gzip
import io
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mnistlab import checkpoint, data, predict
from mnistlab.errors import MnistlabError


def attempt(fn, *args):
    """Run `fn`; a MnistlabError is an accepted outcome, any other exception fails the test."""
    try:
        return fn(*args)
    except MnistlabError as e:
        assert str(e) and "\n" not in str(e)
        return None


@functools.cache
def work_folder() -> Path:
    """One folder for all examples (Hypothesis runs many per test, so pytest's per-test tmp_path does not
    fit), made when first needed and removed when the process ends (each xdist worker its own)."""
    path = Path(tempfile.mkdtemp(prefix="mnistlab-fuzz-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def in_file(blob: bytes, name: str) -> Path:
    path = work_folder() / name
    path.write_bytes(blob)
    return path


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """A real file truncated, with bytes flipped, or with bytes inserted."""
    blob = bytearray(original)
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "header"]))
    if kind == "truncate":
        return bytes(blob[:draw(st.integers(0, len(blob) - 1))])
    if kind == "insert":
        at = draw(st.integers(0, len(blob)))
        return bytes(blob[:at] + draw(st.binary(min_size=1, max_size=64)) + blob[at:])
    span = min(len(blob), 64) if kind == "header" else len(blob)
    for _ in range(draw(st.integers(1, 8))):
        blob[draw(st.integers(0, span - 1))] ^= draw(st.integers(1, 255))
    return bytes(blob)


# --- The IDX reader -----------------------------------------------------------------------------------


def read(blob: bytes, gz: bool):
    return data.read_idx(in_file(gzip.compress(blob) if gz else blob, "file-idx"))


@given(st.binary(max_size=2048), st.booleans())
def test_idx_reader_on_arbitrary_bytes(blob, gz):
    attempt(read, blob, gz)


@given(st.integers(0, 255), st.integers(0, 255), st.lists(st.integers(0, 2**32 - 1), max_size=5),
       st.binary(max_size=512), st.booleans())
def test_idx_reader_on_any_header(type_code, ndim, dims, body, gz):
    header = struct.pack(">HBB", 0, type_code, ndim) + b"".join(struct.pack(">I", d) for d in dims)
    result = attempt(read, header + body, gz)  # huge declared sizes are refused before any allocation
    if result is not None:
        array, _ = result
        assert array.shape == tuple(dims) and array.nbytes <= len(body)


@pytest.fixture(scope="module")
def labels_file(mnist_dir) -> bytes:
    return (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()


@given(st.data())
def test_idx_reader_on_mutated_real_files(labels_file, draw):
    blob = draw.draw(mutated(labels_file))
    attempt(data.read_idx, in_file(blob, "t10k-labels-idx1-ubyte.gz"))


# --- The checkpoint loader ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(trained_run) -> bytes:
    return (trained_run / checkpoint.MODEL_FILE).read_bytes()


@given(st.binary(max_size=4096))
def test_checkpoint_loader_on_arbitrary_bytes(blob):
    assert attempt(checkpoint.load_model, in_file(blob, "model.safetensors")) is None


@given(st.data())
def test_checkpoint_loader_on_mutated_checkpoints(checkpoint_bytes, draw):
    blob = draw.draw(mutated(checkpoint_bytes))
    attempt(checkpoint.load_model, in_file(blob, "model.safetensors"))


# --- Image preprocessing ------------------------------------------------------------------------------


def preprocess(blob: bytes):
    digit = predict.to_mnist(predict.open_image(blob, max_pixels=1 << 20))
    assert digit is None or (digit.shape == (28, 28) and digit.dtype == np.uint8)
    return digit


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def real_images(mnist) -> list[bytes]:
    digit = 255 - mnist.test_images[0].numpy()
    return [encoded(np.kron(digit, np.ones((4, 4), np.uint8)), "PNG"), encoded(digit, "JPEG")]


@given(st.binary(max_size=4096))
def test_preprocessing_of_arbitrary_bytes(blob):
    attempt(preprocess, blob)


@given(st.data())
def test_preprocessing_of_mutated_real_images(real_images, draw):
    blob = draw.draw(mutated(draw.draw(st.sampled_from(real_images))))
    attempt(preprocess, blob)


@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from(["L", "RGB", "RGBA", "LA", "I;16", "1", "P"]),
       st.integers(0, 2**32 - 1), st.sampled_from(["PNG", "JPEG"]))
def test_preprocessing_of_any_decodable_image(height, width, mode, seed, fmt):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8) * (rng.random((height, width, 1)) < 0.3)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    if fmt == "JPEG" and mode not in ("L", "RGB"):
        fmt = "PNG"  # JPEG has no alpha, palette or 16-bit modes
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    attempt(preprocess, buffer.getvalue())
