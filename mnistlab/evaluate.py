"""Judging a model on the test set: scikit-learn's metrics, ROC curves, confusion and mistakes."""

import io
import json
from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from . import checkpoint
from .data import Data, load
from .errors import MnistlabError
from .files import atomic_path, write_text
from .models import logits_of, pixels
from .plots import plot_confusion, plot_misclassified, plot_roc, save_figure

FIGURES = ("confusion_matrix.png", "roc.png", "misclassified.png")


def compute_metrics(probs: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Every test number from class probabilities (N, K) and true labels (N,)."""
    k = len(classes)
    ids = list(range(k))
    pred = probs.argmax(1)
    cm = skm.confusion_matrix(labels, pred, labels=ids)
    report = skm.classification_report(labels, pred, labels=ids, target_names=list(classes), output_dict=True,
                                       zero_division=0)
    # One-vs-rest AUROC per class; undefined for a class with no positives (possible with --limit).
    auroc = {}
    for i in ids:
        present = (labels == i).any() and (labels != i).any()
        auroc[classes[i]] = float(skm.roc_auc_score(labels == i, probs[:, i])) if present else None
    defined = [v for v in auroc.values() if v is not None]
    off_diagonal = [(int(cm[i, j]), i, j) for i in ids for j in ids if i != j and cm[i, j]]
    return {
        "n": int(len(labels)),
        "test_loss": float(skm.log_loss(labels, probs, labels=ids)),
        "test_accuracy": float(skm.accuracy_score(labels, pred)),
        "test_error": float(1 - skm.accuracy_score(labels, pred)),
        "top2_accuracy": float(skm.top_k_accuracy_score(labels, probs, k=2, labels=ids)) if k > 2 else 1.0,
        "misclassified": int((pred != labels).sum()),
        "confusion_matrix": cm.tolist(),
        "classification_report": report,
        "auroc": auroc,
        "auroc_macro": float(np.mean(defined)) if defined else None,
        "auroc_micro": float(skm.roc_auc_score(label_binarize(labels, classes=ids), probs, average="micro")),
        "most_confused": [{"true": classes[i], "predicted": classes[j], "count": n}
                          for n, i, j in sorted(off_diagonal, key=lambda t: (-t[0], t[1], t[2]))[:10]],
    }


def roc_curves(probs: np.ndarray, labels: np.ndarray) -> dict:
    curves = {}
    for i in range(probs.shape[1]):
        if (labels == i).any() and (labels != i).any():
            fpr, tpr, _ = skm.roc_curve(labels == i, probs[:, i])
            curves[i] = (fpr, tpr, skm.auc(fpr, tpr))
    return curves


def predict_probs(model, images: torch.Tensor, device="cpu") -> np.ndarray:
    """Class probabilities (N, K) float32 for uint8 images (N, 28, 28)."""
    return torch.softmax(logits_of(model, pixels(images).to(device)), 1).cpu().numpy().astype(np.float32)


def evaluate(model_path, out_dir=None, data_dir=None, limit: int | None = None, device="cpu",
             data: Data | None = None) -> dict:
    """Evaluate a run folder or checkpoint on the test set; write metrics.json, probs.npy and figures."""
    model, meta = checkpoint.load_model(model_path, device)
    ckpt = checkpoint.resolve(model_path)
    out_dir = Path(out_dir) if out_dir else ckpt.parent
    if limit is not None and limit < 1:
        raise MnistlabError("--limit must be at least 1")
    if data is None or data.name != meta["dataset"]:
        data = load(meta["dataset"], data_dir)
    classes = tuple(meta["classes"])
    images, labels = data.test_images[:limit], data.test_labels[:limit].numpy()

    probs = predict_probs(model, images, device)
    result = {"checkpoint": str(ckpt), "model": meta["model"], "dataset": meta["dataset"],
              **compute_metrics(probs, labels, classes)}

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    with atomic_path(out_dir / "probs.npy") as tmp:
        buf = io.BytesIO()
        np.save(buf, probs)
        tmp.write_bytes(buf.getvalue())
    cm = np.array(result["confusion_matrix"])
    save_figure(plot_confusion(cm, classes), out_dir / "confusion_matrix.png")
    save_figure(plot_roc(roc_curves(probs, labels), classes), out_dir / "roc.png")
    pred = probs.argmax(1)
    wrong = np.nonzero(pred != labels)[0]
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:40]  # most confident mistakes first
    save_figure(plot_misclassified(images[wrong].numpy(), labels[wrong], pred[wrong], probs[wrong, pred[wrong]],
                                   classes), out_dir / "misclassified.png")
    return result
