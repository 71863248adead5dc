"""The robustness suite: MNIST-C's corruptions are deterministic for a seed and stay in range; the
command measures a real model on them and puts the result in its report."""

import json
import shutil

import numpy as np
import pytest

from mnistlab.cli import main
from mnistlab.corruptions import CORRUPTIONS, corrupt

FIXED = {"brightness", "scale", "stripe", "canny_edges"}  # no randomness in these


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_seeded_deterministic_and_in_range(name, mnist):
    images = mnist.test_images[:40].numpy()
    once = corrupt(images, name, seed=0)
    assert once.shape == images.shape and once.dtype == np.uint8
    assert np.array_equal(once, corrupt(images, name, seed=0))
    assert np.array_equal(once[:10], corrupt(images[:10], name, seed=0))  # the first N, whatever N
    assert (once != images).any(axis=(1, 2)).mean() > 0.9  # it changes (nearly) every image
    if name not in FIXED:
        assert not np.array_equal(once, corrupt(images, name, seed=1))


def test_some_corruptions_do_what_they_say(mnist):
    x = mnist.test_images[:5].numpy()
    assert np.array_equal(corrupt(x, "stripe")[:, :, :7], 255 - x[:, :, :7])
    assert corrupt(x, "brightness").min() >= 127  # +0.5 of full scale everywhere
    assert set(np.unique(corrupt(x, "canny_edges"))) <= {0, 255}
    ink = (x > 0).sum(axis=(1, 2))
    assert ((corrupt(x, "scale") > 0).sum(axis=(1, 2)) < ink).all()  # shrunk digits


def test_robustness_command_measures_a_model_and_reports_it(tmp_path, trained_run, mnist_dir, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["robustness", str(run), "--limit", "300", "--data-dir", str(mnist_dir)]) == 0
    assert "mean corruption error" in capsys.readouterr().out
    r = json.loads((run / "robustness.json").read_text())
    assert r["n"] == 300 and set(r["errors"]) == set(CORRUPTIONS)
    assert r["mean_corruption_error"] == pytest.approx(np.mean(list(r["errors"].values())))
    assert r["clean_error"] < 0.1 and r["mean_corruption_error"] > r["clean_error"]
    # Confidently wrong: a part of the errors, those read with at least predict's MIN_CONFIDENCE.
    assert r["min_confidence"] == 0.9 and set(r["confidently_wrong"]) == set(CORRUPTIONS)
    assert all(0 <= r["confidently_wrong"][name] <= r["errors"][name] for name in CORRUPTIONS)
    assert r["clean_confidently_wrong"] <= r["clean_error"]
    assert r["mean_confidently_wrong"] == pytest.approx(np.mean(list(r["confidently_wrong"].values())))
    assert 0 < r["mean_confidently_wrong"] < r["mean_corruption_error"]
    html = (run / "report.html").read_text()
    assert "Robustness: MNIST-C corruptions" in html and "canny edges" in html
    assert "confidently wrong (p ≥ 0.9)" in html
    assert (run / "robustness.png").exists() and (run / "corruptions.png").exists()
