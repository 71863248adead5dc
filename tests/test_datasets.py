"""Other MNIST-format data sets end to end: Fashion-MNIST from Debian's package, with its class names
in every output."""

import json
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.data import get_spec

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")
def test_fashion_mnist_end_to_end_with_clothing_names(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MNISTLAB_DATA", raising=False)  # found in Debian's folder, not the MNIST directory
    run = tmp_path / "fashion"
    assert main(["train", "--dataset", "fashion-mnist", "--recipe", "fast", "--train-limit", "6000",
                 "--batch-size", "32", "--val-fraction", "0.02", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "fashion-mnist" and metrics["test_accuracy"] > 0.75
    classes = get_spec("fashion-mnist").classes
    assert list(metrics["auroc"]) == list(classes)
    assert metrics["classification_report"]["Ankle boot"]["support"] == 1000
    report = (run / "report.html").read_text()
    assert all(name in report for name in ("T-shirt/top", "Ankle boot", "Sneaker"))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "Ankle boot" in out and "T-shirt/top" in out  # the classification report's rows
