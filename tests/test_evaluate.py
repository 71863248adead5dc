"""Evaluation numbers agree with scikit-learn and with a plain NumPy computation on the same predictions."""

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mnistlab.evaluate import TTA_SHIFTS, compute_metrics, predict_probs, shift
from mnistlab.models import build, pixels

CLASSES = tuple(str(d) for d in range(10))


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    logits = rng.normal(size=(2000, 10)) + 3.0 * np.eye(10)[labels]  # mostly right, often not
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs.astype(np.float32), labels


def test_metrics_equal_sklearn_and_numpy(predictions):
    probs, labels = predictions
    m = compute_metrics(probs, labels, CLASSES)
    pred = probs.argmax(1)
    assert m["test_accuracy"] == pytest.approx((pred == labels).mean())
    assert m["test_loss"] == pytest.approx(-np.log(probs[np.arange(len(labels)), labels]).mean(), rel=1e-5)
    top2 = np.argsort(-probs, 1)[:, :2]
    assert m["top2_accuracy"] == pytest.approx((top2 == labels[:, None]).any(1).mean())
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (labels, pred), 1)
    assert m["confusion_matrix"] == cm.tolist()
    assert m["misclassified"] == int((pred != labels).sum())
    report = skm.classification_report(labels, pred, output_dict=True)
    for c in CLASSES:
        assert m["classification_report"][c]["precision"] == pytest.approx(report[c]["precision"])
        assert m["classification_report"][c]["recall"] == pytest.approx(cm[int(c), int(c)] / cm[int(c)].sum())
    assert m["classification_report"]["macro avg"]["f1-score"] == pytest.approx(report["macro avg"]["f1-score"])
    assert m["auroc_macro"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    for i, c in enumerate(CLASSES):
        assert m["auroc"][c] == pytest.approx(skm.roc_auc_score(labels == i, probs[:, i]))
    onehot = np.eye(10)[labels]
    assert m["auroc_micro"] == pytest.approx(skm.roc_auc_score(onehot, probs, average="micro"))
    top = m["most_confused"][0]
    off = cm - np.diag(np.diag(cm))
    assert top["count"] == off.max() and off[int(top["true"]), int(top["predicted"])] == off.max()
    json.dumps(m)  # everything is plain JSON


def test_missing_class_in_a_small_sample(predictions):
    probs, labels = predictions
    keep = labels != 4
    m = compute_metrics(probs[keep], labels[keep], CLASSES)
    assert m["auroc"]["4"] is None and m["classification_report"]["4"]["support"] == 0
    assert m["auroc_macro"] == pytest.approx(np.mean([v for v in m["auroc"].values() if v is not None]))


def test_evaluate_writes_results_in_test_order(trained_run, mnist_dir, mnist, tmp_path):
    from mnistlab.checkpoint import load_model
    from mnistlab.evaluate import evaluate, predict_probs

    m = evaluate(trained_run, out_dir=tmp_path, data_dir=mnist_dir, limit=300)
    probs = np.load(tmp_path / "probs.npy")
    assert probs.dtype == np.float32 and probs.shape == (300, 10)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    model, _ = load_model(trained_run)
    assert np.allclose(probs, predict_probs(model, mnist.test_images[:300]), atol=1e-6)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n"] == 300 and saved["test_accuracy"] == m["test_accuracy"]
    assert m == compute_metrics(probs, mnist.test_labels[:300].numpy(), CLASSES) | \
        {k: m[k] for k in ("checkpoint", "model", "dataset", "tta", "out_dir", "calibration")}
    assert m["out_dir"] == str(tmp_path) and m["tta"] is False
    assert m["calibration"]["temperature"] == model.temperature
    for name in ("confusion_matrix.png", "roc.png", "misclassified.png", "reliability.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_shift_moves_pixels_and_fills_with_background():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    assert shift(x, 1, 0)[0, 0, 2, 3] == 1 and shift(x, 0, -1)[0, 0, 1, 2] == 1
    edge = torch.ones(1, 1, 5, 5)
    assert shift(edge, 1, 0)[0, 0, :, 0].sum() == 0  # nothing wraps around


def test_tta_is_the_mean_over_the_shifted_images(mnist):
    torch.manual_seed(0)
    model = build("cnn-small").eval()
    images = mnist.test_images[:50]
    x = pixels(images)
    expected = torch.stack([torch.softmax(model(shift(x, dx, dy)), 1) for dx, dy in TTA_SHIFTS]).mean(0)
    assert np.allclose(predict_probs(model, images, tta=True), expected.detach().numpy(), atol=1e-6)
    assert not np.allclose(predict_probs(model, images), expected.detach().numpy(), atol=1e-4)
