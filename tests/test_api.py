"""The Python API (`import mnistlab as ml`): every call directly, on a tiny real run; and the same
test accuracy from the command line, the API and the benchmark helper for one seed and recipe."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import once
from PIL import Image

import mnistlab as ml
from mnistlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
# 4,000 images: trained on 2,000 or 3,000, the model was within a few points of what
# test_load_predict_arrays_tensors_and_files asks (90% of the first 200 test digits; "2" read in a photo,
# which needs 90% confidence), passing or failing with the number of torch threads.
TINY = dict(recipe="fast", train_limit=4000, epochs=1, seed=3)


@pytest.fixture(scope="session")
def api_run(tmp_path_factory, mnist):
    return ml.Run(once(tmp_path_factory, "api/fast", lambda out: ml.train(**TINY, out=out, data=mnist, quiet=True)))


def test_import_is_light_and_lazy():
    code = ("import sys, mnistlab; assert 'torch' not in sys.modules; "
            "import mnistlab.config, mnistlab.runfolder, mnistlab.api, mnistlab.pipeline; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from mnistlab.cli import build_parser; build_parser(); assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ml.nothing  # noqa: B018
    # Modules named like API functions (mnistlab/train.py) do not hide the functions once imported.
    import mnistlab.evaluate  # noqa: F401
    import mnistlab.train  # noqa: F401

    assert callable(ml.train) and ml.train.__module__ == "mnistlab.api" and ml.evaluate.__module__ == "mnistlab.api"


def test_train_returns_a_run(api_run):
    assert isinstance(api_run, ml.Run) and api_run.path.name == "fast"
    assert api_run.config["recipe"] == "fast" and api_run.config["train_limit"] == 4000
    assert [r["epoch"] for r in api_run.history] == [1] and api_run.best_epoch["epoch"] == 1
    m = api_run.metrics
    assert m["n"] == 10_000 and m["test_accuracy"] > 0.9
    assert m["calibration"]["temperature"] != 1.0  # the pipeline calibrated it
    assert api_run.report_path.stat().st_size > 10_000
    assert api_run.train_seconds == pytest.approx(api_run.history[0]["seconds"])


def test_run_figures_and_summaries(api_run):
    import matplotlib.figure

    assert isinstance(api_run.plot_curves(), matplotlib.figure.Figure)
    fig = api_run.confusion_matrix()
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) >= 1
    html = api_run._repr_html_()
    assert "test accuracy" in html and f"{api_run.metrics['test_accuracy']:.2%}" in html
    assert 'src="data:image/png;base64,' in html and "report.html" in html
    text = repr(api_run)
    assert text.startswith("Run(") and "fast-cnn" in text and "test_accuracy=0." in text


def test_load_predict_arrays_tensors_and_files(api_run, mnist, tmp_path):
    model = ml.load(api_run)
    images = mnist.test_images[:200]
    labels = [str(int(y)) for y in mnist.test_labels[:200]]
    probs = model.probabilities(images.numpy())
    assert probs.shape == (200, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.allclose(model.probabilities(images), probs)  # a tensor is the same as its array
    assert np.allclose(model.probabilities(images.numpy() / 255.0), probs, atol=1e-6)  # floats in [0, 1]
    predicted = model.predict(images.numpy())
    assert len(predicted) == 200 and np.mean([p == y for p, y in zip(predicted, labels)]) > 0.9
    assert model.predict(images[0].numpy()) == predicted[0]  # one image: one answer
    # The metrics' probabilities are the same model's, calibrated.
    saved = np.load(api_run.path / "probs.npy")[:200]
    assert np.allclose(saved, probs, atol=1e-5)
    # An image file, as a user has one: the digit drawn dark on white and larger.
    Image.fromarray(255 - mnist.test_images[1].numpy()).resize((280, 280)).save(tmp_path / "two.png")
    answer = model.predict(tmp_path / "two.png")
    assert answer["text"] == "2" and answer["confidence"] > 0.5
    assert [a["text"] for a in model.predict([str(tmp_path / "two.png")] * 2)] == ["2", "2"]
    blob = (tmp_path / "two.png").read_bytes()  # as a notebook's upload widget holds the file
    assert model.predict(blob) == model.predict(memoryview(blob)) == answer
    with pytest.raises(ml.MnistlabError, match="expected 28x28 images"):
        model.probabilities(np.zeros((3, 5, 5), np.uint8))
    with torch.no_grad():
        logits = model.module(images[:4, None].float() / 255)
    assert logits.shape == (4, 10)


def test_evaluate_report_export_robustness_calibrate(api_run, mnist, tmp_path):
    m = ml.evaluate(api_run, out=tmp_path / "eval", limit=300, data=mnist)
    assert m["n"] == 300 and (tmp_path / "eval" / "report.html").exists()
    assert ml.report(api_run, tmp_path / "r.html") == tmp_path / "r.html"
    onnx = ml.export(api_run, tmp_path / "m.onnx", check_images=100, data=mnist)
    assert onnx.stat().st_size > 1000
    onnx_model = ml.load(onnx)
    assert np.allclose(onnx_model.probabilities(mnist.test_images[:50]),
                       ml.load(api_run).probabilities(mnist.test_images[:50]), atol=1e-4)
    r = ml.robustness(api_run, limit=100, data=mnist, report=False)
    assert set(r["errors"]) and 0 <= r["mean_corruption_error"] <= 1
    c = ml.calibrate(api_run, data=mnist)
    assert c["val_images"] == 6000 and c["temperature"] > 0
    assert ml.explore(out=tmp_path / "explore", data=mnist)["counts"]["train"][1] == 6742


def test_runs_compare_models_recipes(api_run, tmp_path):
    rows = ml.runs(api_run.path.parent)
    assert [r["name"] for r in rows] == ["fast"] and rows[0]["recipe"] == "fast"
    rows, chart = ml.compare([api_run], out=tmp_path / "c.png")
    assert chart.stat().st_size > 5_000 and rows[0]["test_accuracy"] == api_run.metrics["test_accuracy"]
    assert ml.list_models()["cnn-small"][0] == 34_826 and "fast" in ml.list_recipes()
    assert ml.config("fast", lr=0.1).lr == 0.1


def test_cli_api_and_benchmark_agree(api_run, mnist, mnist_dir, tmp_path):
    """Same seed and recipe: the same test accuracy from `mnistlab train`, `ml.train` and bench/recipes.py."""
    assert main(["train", "--recipe", "fast", "--train-limit", "4000", "--epochs", "1", "--seed", "3",
                 "--data-dir", str(mnist_dir), "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import recipes as bench_recipes
    finally:
        sys.path.remove(str(ROOT / "bench"))
    row = bench_recipes.run("fast", 3, mnist, tmp_path / "bench", train_limit=4000, epochs=1)
    assert cli["test_accuracy"] == api_run.metrics["test_accuracy"] == row["test_accuracy"]
    assert cli["calibration"]["temperature"] == api_run.metrics["calibration"]["temperature"]
