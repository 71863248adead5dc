"""The run registry: `mnistlab runs` lists, filters and sorts real run folders; `compare` charts them."""

import json
import shutil

import pytest
from conftest import once

from mnistlab.cli import main
from mnistlab.runs import scan, select


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory, mnist_dir, trained_run):
    def make(root):
        shutil.copytree(trained_run, root / "cnn-small-1ep")
        for name, args in [("fnn-2ep", ["--model", "fnn", "--epochs", "2"]),
                           ("fast-1ep", ["--recipe", "fast", "--batch-size", "32"])]:
            assert main(["train", *args, "--train-limit", "2000", "--data-dir", str(mnist_dir), "--out",
                         str(root / name), "--no-evaluate"]) == 0
        (root / "notes").mkdir()  # not a run: ignored

    return once(tmp_path_factory, "registry", make)


def test_scan_reads_every_run(runs_dir):
    rows = {r["name"]: r for r in scan(runs_dir)}
    assert set(rows) == {"cnn-small-1ep", "fnn-2ep", "fast-1ep"}
    fnn = rows["fnn-2ep"]
    history = json.loads((runs_dir / "fnn-2ep" / "history.json").read_text())
    assert fnn["model"] == "fnn" and fnn["params"] == 717_210 and fnn["epochs"] == 2 and fnn["dataset"] == "mnist"
    assert fnn["train_seconds"] == pytest.approx(sum(r["seconds"] for r in history))
    assert fnn["val_accuracy"] == max(r["val_accuracy"] for r in history) and fnn["test_accuracy"] is None
    assert rows["cnn-small-1ep"]["test_accuracy"] > 0.95 and rows["fast-1ep"]["recipe"] == "fast"


def test_filter_and_sort(runs_dir):
    rows = scan(runs_dir)
    assert [r["name"] for r in select(rows, {"model": "cnn"})] == ["cnn-small-1ep", "fast-1ep"]
    by_params = [r["params"] for r in select(rows, {}, "params")]
    assert by_params == sorted(by_params, reverse=True)
    by_test = select(rows, {}, "test_accuracy")
    assert by_test[0]["name"] == "cnn-small-1ep" and by_test[-1]["test_accuracy"] is None  # missing values last


def test_runs_and_compare_commands(runs_dir, tmp_path, capsys):
    assert main(["runs", "--dir", str(runs_dir), "--sort", "val_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "3 runs" in out and "fnn-2ep" in out and "717,210" in out and "fast-cnn (fast)" in out
    assert main(["compare", str(runs_dir / "fnn-2ep"), str(runs_dir / "fast-1ep"), "--out",
                 str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000
    assert main(["runs", "--dir", str(runs_dir), "--sort", "colour"]) == 1
    assert main(["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "d.png")]) == 1
    assert main(["runs", "--dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "cannot sort by 'colour'" in err[0] and "no such run folder" in err[1]
