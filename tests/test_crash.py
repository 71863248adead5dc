"""Crash-safe training: a real `mnistlab train` subprocess is killed with SIGKILL in its first and in
its second epoch and interrupted with SIGINT in its third (which saves the state of that very step);
each time `--resume` carries on, and the final weights equal those of a run that was never
interrupted."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from mnistlab import checkpoint
from mnistlab.errors import MnistlabError

# Epochs long enough (188 steps) for a signal sent 0.4 s into one to land inside it on a fast machine;
# 1,200 validation images rather than 6,000, which would take as long as the steps.
ARGS = ["--model", "cnn-small", "--epochs", "3", "--train-limit", "12000", "--batch-size", "64", "--val-fraction",
        "0.02", "--no-evaluate"]


def start(out, mnist_dir, *extra):
    # SIGINT as a terminal delivers it, even when these tests run in a background job (which ignores it)
    return subprocess.Popen([sys.executable, "-m", "mnistlab", "train", *ARGS, "--data-dir", str(mnist_dir),
                             "--out", str(out), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def epochs_done(out) -> int:
    try:
        return len(json.loads((out / "history.json").read_text()))
    except (OSError, ValueError):
        return 0


def wait_for(condition, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def stop_during(epoch: int, out, mnist_dir, sig, *extra):
    """Start training, send `sig` about half a second into `epoch`, and check that no later epoch
    finished."""
    proc = start(out, mnist_dir, *extra)
    if epoch == 1:
        wait_for(lambda: (out / "config.json").exists(), proc)
    else:
        wait_for(lambda: epochs_done(out) == epoch - 1, proc)
    time.sleep(0.4)
    proc.send_signal(sig)
    proc.wait()
    assert epochs_done(out) == epoch - 1
    return proc


def test_killed_and_interrupted_training_resumes_to_the_same_weights(tmp_path, mnist_dir):
    full = tmp_path / "full"
    assert start(full, mnist_dir).wait() == 0

    out = tmp_path / "crashed"
    # SIGKILL in epoch 1: nothing finished yet, so --resume starts from the beginning.
    stop_during(1, out, mnist_dir, signal.SIGKILL)
    # SIGKILL in the middle of epoch 2.
    stop_during(2, out, mnist_dir, signal.SIGKILL, "--resume")
    # Ctrl-C (SIGINT) in epoch 3: it finishes the step, saves, and stops with a one-line message.
    proc = stop_during(3, out, mnist_dir, signal.SIGINT, "--resume")
    assert proc.returncode == 130
    message = proc.stderr.read()
    assert "holds the training state as it stopped" in message and "Traceback" not in message
    stopped = checkpoint.read_meta(out / checkpoint.STATE_FILE)["in_progress"]
    assert stopped["epoch"] == 3 and 0 < stopped["step"] < 12000 / 64  # saved inside the epoch (188 steps)
    # And the last resume finishes.
    assert start(out, mnist_dir, "--resume").wait() == 0

    for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE):
        a, b = load_file(full / name), load_file(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((full / "history.json").read_text())]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in json.loads((out / "history.json").read_text())]


def test_flipped_bit_in_the_weights_is_caught(tmp_path, trained_run):
    raw = bytearray((trained_run / checkpoint.MODEL_FILE).read_bytes())
    raw[-100] ^= 0x01  # inside the last tensor's data: the layout still reads fine
    (tmp_path / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(MnistlabError, match="corrupt checkpoint"):
        checkpoint.load_model(tmp_path)


def test_a_model_file_is_not_a_training_state(tmp_path, trained_run):
    from mnistlab.models import build

    model = build("cnn-small", {}, 0.0, 1.0)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(MnistlabError, match="not a training state"):
        checkpoint.load_state(trained_run / checkpoint.MODEL_FILE, model, optimizer)
