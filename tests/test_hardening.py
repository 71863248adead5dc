"""Careless and hostile input to the command line, the run folder and the loaders (issue 15, items 6-9):
each class of mistake is one line on stderr with a non-zero exit, never a traceback, and nothing that
is not mnistlab's is overwritten."""

import gzip
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess

import numpy as np
import pytest
from conftest import run_command, run_main

from mnistlab import data
from mnistlab.errors import MnistlabError
from mnistlab.files import TEMP_SUFFIX, atomic_path
from mnistlab.runfolder import LOCK, Lock

TINY = ["--epochs", "1", "--train-limit", "500", "--val-fraction", "0.02", "--no-evaluate"]


def one_line_error(result, code, message):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0] and lines[0].startswith("mnistlab"), lines[0]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


# --- 6. One training process per run folder -------------------------------------------------------


def test_a_held_run_folder_says_who_holds_it(tmp_path, mnist_dir):
    out = tmp_path / "run"
    with Lock(out):  # this test's process holds it, as a running `mnistlab train` would
        result = run_command("train", *TINY, "--data-dir", mnist_dir, "--out", out)
        with pytest.raises(MnistlabError, match=f"in use: pid {os.getpid()} on {socket.gethostname()}"):
            Lock(out).acquire()
    one_line_error(result, 1, f"{out} is in use: pid {os.getpid()} on {socket.gethostname()} has held it since")
    assert not (out / "config.json").exists()
    assert not (out / LOCK).exists()  # released


def test_a_dead_processs_lock_is_taken_over(tmp_path, mnist_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "since": "yesterday"}))
    result = run_main("train", *TINY, "--data-dir", mnist_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "model.safetensors").exists() and not (out / LOCK).exists()


# --- 7. Never write over what is not ours ---------------------------------------------------------


def test_out_onto_a_folder_of_other_files_is_refused(tmp_path, mnist_dir, trained_run):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("\\section{Intro}")
    (mine / "config.json").write_text('{"theme": "dark"}')  # a common name: not enough to be a run folder
    before = digest(mine)
    for args in (["train", *TINY, "--data-dir", mnist_dir], ["explore", "--data-dir", mnist_dir],
                 ["evaluate", trained_run, "--limit", "10", "--data-dir", mnist_dir],
                 ["import-keras", tmp_path / "none.h5"]):
        one_line_error(run_main(*args, "--out", mine), 1,
                       "not an mnistlab run folder; choose another --out, or add --force")
    assert digest(mine) == before
    assert run_main("explore", "--data-dir", mnist_dir, "--out", mine, "--force").returncode == 0
    assert (mine / "data.json").exists() and (mine / "chapter1.tex").exists()


def test_no_artefact_is_written_over_another_kind(run_copy, mnist_dir):
    before = digest(run_copy)
    cases = [(["report", run_copy, "--out", run_copy / "model.safetensors"], "a report is written to a .html file"),
             (["report", run_copy, "--out", run_copy / "curves.html"], None),
             (["compare", run_copy, "--out", run_copy / "state.safetensors"], "written to a .png file"),
             (["compare", run_copy, "--out", run_copy / "confusion_matrix.png"], "a run's own confusion_matrix.png"),
             (["export", run_copy, "--out", run_copy / "model.safetensors", "--check-images", "0"], ".onnx file"),
             (["export", run_copy, "--out", run_copy / "history.onnx", "--check-images", "0"], None)]
    for args, message in cases:
        result = run_main(*args)
        if message:
            one_line_error(result, 1, message)
        else:
            assert result.returncode == 0, result.stderr
    after = digest(run_copy)
    assert {k: after[k] for k in before} == before  # nothing the run had was touched


# --- 8. Stale temporaries -------------------------------------------------------------------------


def test_temporaries_are_named_as_ours_and_stale_ones_go(run_copy):
    with atomic_path(run_copy / "x.json") as tmp:
        assert tmp.name.startswith(".x.json.") and tmp.name.endswith(f".{os.getpid()}{TEMP_SUFFIX}")
        tmp.write_text("{}")
    stale = run_copy / f".model.safetensors.k2j3h4.{dead_pid()}{TEMP_SUFFIX}"
    live = run_copy / f".history.json.a8b7c6.{os.getpid()}{TEMP_SUFFIX}"  # being written by a live process
    other = run_copy / "notes.tmp"  # not ours
    for path in (stale, live, other):
        path.write_bytes(b"half a file")
    assert run_main("report", run_copy).returncode == 0
    assert not stale.exists() and live.exists() and other.exists()


# --- 9. Out-of-range options, malformed files and data: one line, no traceback ---------------------


@pytest.mark.parametrize("args, message", [
    (["train", "--lr", "nan"], "argument --lr: must be a finite number above 0, got nan"),
    (["train", "--weight-decay", "-1"], "argument --weight-decay: must be a finite number at least 0"),
    (["train", "--seed", str(2**64)], "argument --seed: must be a whole number at least 0 and at most 2**63 - 1"),
    (["train", "--model", "fast-cnn", "--model-arg", "width=-5"], "model argument width must be a whole number"),
    (["train", "--model-arg", "num_classes=3"], "num_classes comes from the data set"),
    (["train", "--model", "fnn", "--model-arg", "width=8"], "model 'fnn' has no argument 'width'; it takes hidden"),
    (["train", "--ema", "inf"], "argument --ema: must be a finite number"),
    (["robustness", "run", "--seed", "-5"], "argument --seed: must be a whole number at least 0"),
    (["evaluate", "run", "--limit", "0"], "argument --limit: must be a whole number at least 1"),
])
def test_out_of_range_options(args, message, tmp_path):
    one_line_error(run_main(*args, cwd=tmp_path), 2, message)


@pytest.mark.parametrize("config, message", [
    ([1, 2], "expected a JSON object of settings, got list"),
    ({"model": "cnn-small", "lr": "abc"}, "lr must be a finite number above 0"),
    ({"model": "cnn-small", "epochs": 2.5}, "epochs must be a whole number"),
    ({"model": "cnn-small", "model_args": []}, "model_args must be a mapping"),
])
def test_hand_edited_config_on_resume(config, message, tmp_path, mnist_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config))
    one_line_error(run_main("train", "--resume", "--out", out, "--data-dir", mnist_dir), 2, message)


def test_malformed_run_folders_are_skipped_or_named(run_copy, tmp_path):
    root = run_copy.parent
    for name, files in {"bad-json": {"history.json": "{half"}, "bad-shape": {"history.json": '{"epoch": 1}'},
                        "bad-metrics": {"metrics.json": '{"test_accuracy": "high"}'},
                        "bad-rows": {"history.json": '[{"epoch": 1, "loss": null}]'}}.items():
        (root / name).mkdir()
        for file, text in files.items():
            (root / name / file).write_text(text)
    result = run_main("runs", "--dir", root)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 4 and all(w.startswith("mnistlab: warning: skipped ") for w in warnings)
    assert "1 run in" in result.stdout and "run" in result.stdout
    one_line_error(run_main("compare", run_copy, root / "bad-json", "--out", tmp_path / "c.png"), 1,
                   "history.json: unreadable")
    one_line_error(run_main("report", root / "bad-shape"), 1, "history.json: malformed")
    (run_copy / "metrics.json").write_text(json.dumps({"test_accuracy": 0.9, "n": 10}))  # keys missing
    one_line_error(run_main("report", run_copy), 1, "malformed results, cannot report them")


def idx(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(data.IDX_TYPES[type_code]).tobytes()


def emnist_dir(tmp_path, train_images=None, train_labels=None):
    """A folder of EMNIST Digits files (the data set whose files carry no checksum of their own)."""
    folder = tmp_path / "emnist"
    folder.mkdir(exist_ok=True)
    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20) % 10
    arrays = {"train_images": train_images if train_images is not None else idx(images),
              "train_labels": train_labels if train_labels is not None else idx(labels),
              "test_images": idx(images), "test_labels": idx(labels)}
    for role, name in data.EMNIST_DIGITS_FILES.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(arrays[role]))
    return folder


@pytest.mark.parametrize("images, labels, message", [
    (struct.pack(">HBB", 0, 8, 70) + struct.pack(">70I", *[2] * 70), None, "declares 70 dimensions"),
    (idx(np.zeros((20, 5, 5), np.uint8)), None, "images have shape (20, 5, 5); expected (N, 28, 28)"),
    (idx(np.zeros((0, 28, 28), np.uint8)), idx(np.zeros(0, np.uint8)), "split has no images"),
    (None, idx(np.full(20, np.nan), 0x0D), "labels are float32; expected whole numbers"),
    (None, idx(np.arange(20) + 5), "labels outside 0..9"),
])
def test_malformed_data_is_one_line(images, labels, message, tmp_path):
    folder = emnist_dir(tmp_path, images, labels)
    with pytest.raises(MnistlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load("emnist-digits", folder, progress=False)
    one_line_error(run_main("explore", "--dataset", "emnist-digits", "--data-dir", folder, "--out", tmp_path / "x"), 1,
                   message)
