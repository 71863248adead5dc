"""The `mnistlab` command end to end, and every user mistake as one clear line with a non-zero exit."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_command, run_main
from PIL import Image

from mnistlab.cli import main
from mnistlab.evaluate import FIGURES as EVAL_FIGURES
from mnistlab.explore import FIGURES as DATA_FIGURES


def test_train_evaluate_report_end_to_end(trained_run):
    """`mnistlab train` (the session fixture) on real MNIST: cnn-small, one epoch on 20,000 images."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["n"] == 10_000
    assert metrics["test_accuracy"] > 0.95, metrics["test_accuracy"]
    for name in DATA_FIGURES + EVAL_FIGURES + ("curves.png",):
        assert (trained_run / name).stat().st_size > 5_000, name
    for name in ("config.json", "history.json", "data.json", "model.safetensors", "probs.npy"):
        assert (trained_run / name).stat().st_size > 0
    html = (trained_run / "report.html").read_text()
    # Self-contained: every figure embedded, nothing fetched from the network.
    assert html.count('src="data:image/png;base64,') == len(DATA_FIGURES + EVAL_FIGURES) + 1
    assert not re.search(r'(src|href)="(http|//)', html)
    for text in ("Confusion", "Classification report", "Most confused", "Configuration",
                 f"{metrics['test_accuracy']:.2%}"):
        assert text in html


def test_evaluate_limit_and_report_commands(trained_run, mnist_dir, tmp_path, capsys):
    assert main(["evaluate", str(trained_run / "model.safetensors"), "--limit", "500", "--data-dir", str(mnist_dir),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "Classification report" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == 500
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_explore_command(mnist_dir, tmp_path, capsys):
    assert main(["explore", "--data-dir", str(mnist_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[60000, 28, 28]" in out and "6,742" in out  # shape and the count of ones
    for name in DATA_FIGURES:
        assert (tmp_path / name).stat().st_size > 5_000


def test_pixel_statistics_are_those_of_the_pixels(mnist):
    """data.json's statistics come from the histogram of pixel values: the same numbers as computed
    over the pixels themselves."""
    import dataclasses

    from mnistlab.explore import summarize

    small = dataclasses.replace(mnist, train_images=mnist.train_images[:3000], train_labels=mnist.train_labels[:3000])
    px = summarize(small)["pixels"]
    x = small.train_images.double() / 255
    assert px["mean"] == pytest.approx(x.mean().item(), rel=1e-12) and px["std"] == pytest.approx(x.std().item())
    assert (px["min"], px["max"]) == (small.train_images.min(), small.train_images.max())
    assert px["fraction_zero"] == (small.train_images == 0).double().mean().item()


def test_predict_text_output(trained_run, mnist, tmp_path, capsys):
    Image.fromarray(255 - mnist.test_images[1].numpy()).resize((300, 300)).save(tmp_path / "two.png")
    assert main(["predict", str(trained_run), str(tmp_path / "two.png"), "--debug", str(tmp_path / "seen")]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r".*two\.png: 2 \(\d+\.\d%\)", line), line
    assert Image.open(tmp_path / "seen" / "two-digits.png").size == (32 * 4, 32 * 4)  # one 28x28 input, framed


def errors(tmp_path, trained_run, mnist_dir):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "notes.txt").write_text("not an image")
    return {
        "missing checkpoint": (["evaluate", str(tmp_path / "nope")], "no such run folder or checkpoint"),
        "corrupt checkpoint": (["evaluate", str(tmp_path / "garbage.safetensors")], "not a readable safetensors"),
        "not a run folder": (["predict", str(tmp_path), "x.png"], "no model.safetensors in this folder"),
        "unknown model": (["train", "--model", "resnet9000", "--data-dir", str(mnist_dir)], "unknown model"),
        "unknown data set": (["explore", "--dataset", "cifar10"], "unknown data set 'cifar10'"),
        "undecodable image": (["predict", str(trained_run), str(tmp_path / "notes.txt")], "cannot decode image"),
        "missing image": (["predict", str(trained_run), str(tmp_path / "none.png")], "no such file or folder"),
        "bad option": (["train", "--epochs", "many"], "argument --epochs: must be a whole number"),
        "bad limit": (["evaluate", str(trained_run), "--limit", "0"], "at least 1"),
        "unknown command": (["fly"], "invalid choice"),
        "resume nothing": (["train", "--resume", "--out", str(tmp_path / "norun")], "nothing to resume"),
        "bad model arg": (["train", "--model-arg", "width", "--data-dir", str(mnist_dir)], "expected KEY=VALUE"),
        "unknown device": (["evaluate", str(trained_run), "--device", "banana"], "unknown device 'banana'"),
        "unknown recipe": (["train", "--recipe", "fastest", "--data-dir", str(mnist_dir)], "unknown recipe"),
        "bad target": (["train", "--target-accuracy", "99", "--data-dir", str(mnist_dir)],
                       "argument --target-accuracy: must be a finite number above 0 and at most 1"),
        "lone ensemble": (["ensemble", str(trained_run), "--data-dir", str(mnist_dir)], "at least two models"),
    }


@pytest.mark.parametrize("case", ["missing checkpoint", "corrupt checkpoint", "not a run folder", "unknown model",
                                  "unknown data set", "undecodable image", "missing image", "bad option",
                                  "bad limit", "unknown command", "resume nothing", "bad model arg",
                                  "unknown device", "unknown recipe", "bad target", "lone ensemble"])
def test_user_errors_are_one_line(case, tmp_path, trained_run, mnist_dir):
    """Each mistake, made through `main` as the command line calls it (in this process: a traceback
    would fail the test as an exception)."""
    args, message = errors(tmp_path, trained_run, mnist_dir)[case]
    result = run_main(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and lines[0].startswith("mnistlab")


@pytest.mark.parametrize("case", ["corrupt checkpoint", "unknown command"])
def test_user_errors_are_one_line_from_the_command(case, tmp_path, trained_run, mnist_dir):
    """The same through `python -m mnistlab` in a process of its own: its exit code and stderr."""
    args, message = errors(tmp_path, trained_run, mnist_dir)[case]
    result = run_command(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0] and lines[0].startswith("mnistlab")


def test_offline_without_data_is_a_clear_error(tmp_path):
    """No data directory and no network: every mirror fails, said in one line."""
    env_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "MNISTLAB_DATA": ""}
    # Every request goes to a proxy port where nothing listens, so each mirror fails at once.
    result = subprocess.run([sys.executable, "-m", "mnistlab", "explore", "--dataset", "kmnist"],
                            capture_output=True, text=True, timeout=180, cwd=tmp_path,
                            env={**os.environ, **env_cache,
                                 "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "could not download train-images-idx3-ubyte.gz" in result.stderr
    assert list((tmp_path / "cache" / "mnistlab" / "kmnist").iterdir()) == []


def test_resume_from_the_command_line(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data-dir", str(mnist_dir), "--out", str(run), "--no-evaluate"]
    assert main(["train", "--epochs", "1", "--train-limit", "1000", "--val-fraction", "0.02", "--seed", "5",
                 *common]) == 0
    capsys.readouterr()
    # Resuming keeps the run's own settings (seed 5, 1,000 images) and only extends the epochs.
    assert main(["train", "--resume", "--epochs", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "seed=5" in out and "train_limit=1000" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    assert [r["epoch"] for r in json.loads((run / "history.json").read_text())] == [1, 2]


def test_evaluate_one_image_and_a_corrupt_results_file(trained_run, mnist_dir, tmp_path, capsys):
    # With one image no class has both positives and negatives, so macro AUROC is undefined: said, not a crash.
    assert main(["evaluate", str(trained_run), "--limit", "1", "--data-dir", str(mnist_dir),
                 "--out", str(tmp_path)]) == 0
    assert "AUROC macro n/a" in capsys.readouterr().out
    (tmp_path / "metrics.json").write_text("{half a file")
    assert main(["report", str(tmp_path)]) == 1
    assert "metrics.json: unreadable" in capsys.readouterr().err


def test_recipe_with_overrides_and_a_target_from_the_command_line(mnist_dir, tmp_path, capsys):
    run = tmp_path / "fast"
    assert main(["train", "--recipe", "fast", "--epochs", "3", "--train-limit", "3000", "--val-fraction", "0.02",
                 "--target-accuracy", "0.9", "--data-dir", str(mnist_dir), "--out", str(run), "--no-evaluate"]) == 0
    out = capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "fast" and config["model"] == "fast-cnn" and config["schedule"] == "onecycle"
    assert config["epochs"] == 3 and config["train_limit"] == 3000  # flags beat the recipe
    history = json.loads((run / "history.json").read_text())
    assert len(history) < 3 and history[-1]["val_accuracy"] >= 0.9
    took = sum(r["seconds"] for r in history)
    assert f"target validation accuracy 90.00% reached in epoch {len(history)} after {took:.1f} s" in out


def test_ensemble_is_the_mean_of_its_members(trained_run, mnist_dir, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "--model", "fnn", "--epochs", "1", "--train-limit", "3000", "--data-dir", str(mnist_dir),
                 "--out", str(other), "--no-evaluate"]) == 0
    members = []
    for i, run in enumerate([trained_run, other]):
        assert main(["evaluate", str(run), "--limit", "500", "--data-dir", str(mnist_dir), "--out",
                     str(tmp_path / f"m{i}"), "--no-report"]) == 0
        members.append(np.load(tmp_path / f"m{i}" / "probs.npy"))
    assert main(["ensemble", str(trained_run), str(other), "--limit", "500", "--data-dir", str(mnist_dir),
                 "--out", str(tmp_path / "ens")]) == 0
    assert np.allclose(np.load(tmp_path / "ens" / "probs.npy"), (members[0] + members[1]) / 2, atol=1e-6)
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert [m["checkpoint"] for m in metrics["members"]] == [str(trained_run / "model.safetensors"),
                                                               str(other / "model.safetensors")]
    assert "member " in capsys.readouterr().out and (tmp_path / "ens" / "report.html").exists()


def test_output_piped_into_a_closed_reader_stops_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "recipes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `| head` that has already stopped reading
    err = proc.stderr.read()
    assert proc.wait() == 141 and err == ""
