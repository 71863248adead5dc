"""Calibration: ECE against a hand computation, temperature scaling fitted on the validation split,
stored in the checkpoint and applied by every consumer."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from mnistlab import calibration, checkpoint, outliers
from mnistlab.cli import main
from mnistlab.export import OnnxModel, export
from mnistlab.models import logits_of, pixels
from mnistlab.predict import TorchModel


def test_ece_of_a_hand_made_case():
    # Top probabilities 0.9, 0.9, 0.6 and 0.42; the first and third are right. With 15 bins (lo, hi]:
    # 0.9 falls in bin 13 (0.8667, 0.9333], 0.6 in bin 8 (0.5333, 0.6], 0.42 in bin 6 (0.4, 0.4667].
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.0, 0.1], [0.2, 0.6, 0.2], [0.3, 0.28, 0.42]])
    labels = np.array([0, 1, 1, 0])
    # bins: {0.9, 0.9} accuracy 1/2; {0.6} accuracy 1; {0.42} accuracy 0
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(0 - 0.42)
    assert calibration.ece(probs, labels) == pytest.approx(expected)
    b = calibration.bins_of(probs, labels)
    assert b["count"].sum() == 4 and b["count"][13] == 2 and b["count"][8] == 1 and b["count"][6] == 1


def test_ece_is_zero_for_a_perfectly_calibrated_model():
    probs = np.tile([[0.75, 0.25]], (8, 1))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])  # right 3 times in 4 at confidence 0.75
    assert calibration.ece(probs, labels) == pytest.approx(0.0)


def test_temperature_recovers_a_known_overconfidence():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(5000, 10, generator=g) * 2
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    t = calibration.fit_temperature(true_logits * 4, labels)  # four times too sure of itself
    assert t == pytest.approx(4, rel=0.1)
    assert calibration.nll(true_logits * 4, labels, t) < calibration.nll(true_logits * 4, labels)


def test_calibration_is_stored_and_used_everywhere(tmp_path, trained_run, mnist, mnist_dir):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    model, meta = checkpoint.load_model(run)
    images, labels = calibration.validation_split(meta, mnist)
    assert len(labels) == 6000  # the run's own 10% split, seed 0

    assert main(["calibrate", str(run), "--data-dir", str(mnist_dir)]) == 0
    model, meta = checkpoint.load_model(run)
    c = meta["calibration"]
    assert model.temperature == meta["temperature"] == c["temperature"] != 1.0
    assert c["val_nll_after"] < c["val_nll_before"]  # temperature scaling lowers validation NLL

    digits = mnist.test_images[:100]
    expected = torch.softmax(logits_of(model, pixels(digits)) / model.temperature, 1).numpy()
    assert np.abs(TorchModel(run).probabilities(digits.numpy()) - expected).max() < 1e-6
    if all(importlib.util.find_spec(m) for m in ("onnxscript", "onnxruntime")):  # the onnx extra
        export(run, "onnx", data=mnist, check_images=100)
        assert np.abs(OnnxModel(run / "model.onnx").probabilities(digits.numpy()) - expected).max() < 1e-4

    assert main(["evaluate", str(run), "--data-dir", str(mnist_dir), "--limit", "2000"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())["calibration"]
    assert metrics["temperature"] == model.temperature and 0 <= metrics["ece"] < 0.05
    assert (run / "reliability.png").exists() and "Calibration" in (run / "report.html").read_text()


def test_non_digits_it_is_sure_of_make_the_temperature_softer():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 10, generator=g) * 3
    labels = logits.argmax(1)  # always right: on digits alone the sharpest temperature wins
    sure = torch.zeros(500, 10)
    sure[:, 0] = 8.0  # non-digits read as a confident "0"
    alone = calibration.fit_temperature(logits, labels)
    with_them = calibration.fit_temperature(logits, labels, sure, outlier_weight=0.5)
    assert with_them > 2 * alone
    assert outliers.loss(sure / with_them) < outliers.loss(sure / alone)


def test_a_model_trained_on_photos_is_calibrated_on_photos_of_its_validation_digits(
        tmp_path, trained_run, mnist, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    model, meta = checkpoint.load_model(run)
    plain = calibration.calibrate(run, mnist)
    assert "val_photo_digits" not in plain  # a model that never saw photos: MNIST's validation split only

    meta = {**meta, "config": {**meta["config"], "photos": 6}}  # as if trained with --photos 6
    checkpoint.save_model(checkpoint.resolve(run), model, meta)
    c = calibration.calibrate(run, mnist)
    assert c["val_photo_digits"] > 0 and c["val_outliers"] == 2000
    assert c["temperature"] > plain["temperature"]  # the photos' clutter and the made non-digits: less sure
    assert list((tmp_path / "cache" / "mnistlab" / "photo-crops").glob("*.npz"))  # kept for the next time
    assert checkpoint.load_model(run)[0].temperature == c["temperature"]
