"""torchrun: two processes (gloo, CPU) train like one process with the same global batch, and only
one set of outputs is written."""

import json
import os
import subprocess
import sys

from mnistlab.cli import main

TRAIN = ["train", "--model", "cnn-small", "--epochs", "2", "--train-limit", "8000", "--batch-size", "64",
         "--no-evaluate"]


def test_two_processes_match_one(mnist_dir, tmp_path):
    two = tmp_path / "two"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "mnistlab", *TRAIN, "--data-dir", str(mnist_dir), "--out", str(two)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=os.environ | {"TMPDIR": str(tmp_path)})  # torchrun's own temporary folders
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.count("Epoch 2/2") == 1  # only rank 0 prints
    assert main([*TRAIN, "--data-dir", str(mnist_dir), "--out", str(tmp_path / "one")]) == 0

    h2 = json.loads((two / "history.json").read_text())
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    assert [r["epoch"] for r in h2] == [1, 2]
    assert abs(h2[-1]["val_accuracy"] - h1[-1]["val_accuracy"]) < 0.01  # same global batch, same steps
    assert abs(h2[-1]["loss"] - h1[-1]["loss"]) < 0.02  # training metrics reduced over both shards
    assert sorted(p.name for p in two.iterdir() if p.suffix == ".safetensors") == ["model.safetensors",
                                                                                  "state.safetensors"]
    assert not list(two.glob("*.tmp*"))


def test_torchrun_needs_a_named_run_folder(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*TRAIN, "--data-dir", str(mnist_dir)]) == 1
    assert "under torchrun, name the run folder with --out" in capsys.readouterr().err
