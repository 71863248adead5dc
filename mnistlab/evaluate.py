"""Judging a model, or an ensemble of models, on the test set: scikit-learn's metrics, ROC curves,
confusion and mistakes."""

import io
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from . import checkpoint
from .calibration import bins_of, ece
from .data import Data, load
from .errors import MnistlabError
from .files import atomic_path
from .models import logits_of, pixels
from .plots import plot_confusion, plot_misclassified, plot_reliability, plot_roc, save_figure
from .runfolder import METRICS, PROBS, write_json

FIGURES = ("confusion_matrix.png", "roc.png", "misclassified.png", "reliability.png")


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


# Test-time augmentation: the image itself and its one-pixel shifts (dx, dy), probabilities averaged.
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move images (N, C, H, W) by whole pixels, filling with zeros (background)."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


def view_logits(model, images: torch.Tensor, device="cpu", tta: bool = False) -> torch.Tensor:
    """Logits (V, N, K) for uint8 images (N, 28, 28): V = 1 view, or with `tta` each of TTA_SHIFTS."""
    x = pixels(images).to(device)
    views = [shift(x, dx, dy) for dx, dy in TTA_SHIFTS] if tta else [x]
    return torch.stack([logits_of(model, v) for v in views]).cpu()


def probs_from(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities (N, K) float32 from view_logits: the mean over views of softmax(logits / T)."""
    return torch.softmax(logits / temperature, -1).mean(0).numpy().astype(np.float32)


def predict_probs(model, images: torch.Tensor, device="cpu", tta: bool = False) -> np.ndarray:
    """Class probabilities (N, K) float32 for uint8 images (N, 28, 28), with the model's temperature;
    with `tta`, the mean over TTA_SHIFTS."""
    return probs_from(view_logits(model, images, device, tta), model.temperature)


def _data_for(meta: dict, data: Data | None, data_dir, limit: int | None) -> Data:
    """`data` if it is the checkpoint's data set, else that data set loaded."""
    if limit is not None and limit < 1:
        raise MnistlabError("--limit must be at least 1")
    return data if data is not None and data.name == meta["dataset"] else load(meta["dataset"], data_dir)


def evaluate(model_path, out_dir=None, data_dir=None, limit: int | None = None, device="cpu",
             data: Data | None = None, tta: bool = False) -> dict:
    """Evaluate a run folder or checkpoint on the test set; write metrics.json, probs.npy and figures."""
    model, meta = checkpoint.load_model(model_path, device)
    ckpt = checkpoint.resolve(model_path)
    data = _data_for(meta, data, data_dir, limit)
    images, labels = data.test_images[:limit], data.test_labels[:limit].numpy()
    classes = tuple(meta["classes"])
    logits = view_logits(model, images, device, tta)
    probs, uncalibrated = probs_from(logits, model.temperature), probs_from(logits)
    loss_uncalibrated = float(skm.log_loss(labels, uncalibrated, labels=range(len(classes))))
    result = {"checkpoint": str(ckpt), "model": meta["model"], "dataset": meta["dataset"], "tta": tta,
              **compute_metrics(probs, labels, classes),
              "calibration": {"temperature": model.temperature, "ece": ece(probs, labels),
                              "ece_uncalibrated": ece(uncalibrated, labels),
                              "loss_uncalibrated": loss_uncalibrated}}
    write_results(result, probs, images, labels, classes, Path(out_dir) if out_dir else ckpt.parent, uncalibrated)
    return result


def ensemble(model_paths: list, out_dir=None, data_dir=None, limit: int | None = None, device="cpu",
             data: Data | None = None, tta: bool = False) -> dict:
    """Evaluate the mean of several models' class probabilities on the test set; the members must
    share their data set and classes. Writes the same files as `evaluate` into `out_dir`."""
    if len(model_paths) < 2:
        raise MnistlabError("an ensemble needs at least two models")
    members, member_probs = [], []
    for path in model_paths:
        model, meta = checkpoint.load_model(path, device)
        if members and (meta["dataset"], meta["classes"]) != (members[0]["dataset"], members[0]["classes"]):
            raise MnistlabError(f"{path}: trained on {meta['dataset']}, unlike {members[0]['checkpoint']}")
        data = _data_for(meta, data, data_dir, limit)  # loaded once, for the first member
        images, labels = data.test_images[:limit], data.test_labels[:limit].numpy()
        probs = predict_probs(model, images, device, tta)
        members.append({"checkpoint": str(checkpoint.resolve(path)), "model": meta["model"]["name"],
                        "dataset": meta["dataset"], "classes": meta["classes"],
                        "test_accuracy": float((probs.argmax(1) == labels).mean())})
        member_probs.append(probs)
    classes = tuple(members[0]["classes"])
    probs = np.mean(member_probs, axis=0).astype(np.float32)
    result = {"checkpoint": None, "model": {"name": "ensemble", "members": len(members)},
              "dataset": members[0]["dataset"], "tta": tta,
              "members": [{k: m[k] for k in ("checkpoint", "model", "test_accuracy")} for m in members],
              **compute_metrics(probs, labels, classes), "calibration": {"ece": ece(probs, labels)}}
    out_dir = Path(out_dir) if out_dir else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-ensemble"
    write_results(result, probs, images, labels, classes, out_dir)
    return result


def write_results(result: dict, probs: np.ndarray, images: torch.Tensor, labels: np.ndarray, classes, out_dir: Path,
                  uncalibrated: np.ndarray | None = None):
    """metrics.json, probs.npy (float32, in test order) and the FIGURES; notes out_dir in `result`.
    `uncalibrated`: the probabilities before temperature scaling, for the reliability diagram."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result["out_dir"] = str(out_dir)
    write_json(out_dir / METRICS, result)
    with atomic_path(out_dir / PROBS) as tmp:
        buf = io.BytesIO()
        np.save(buf, probs)
        tmp.write_bytes(buf.getvalue())
    cm = np.array(result["confusion_matrix"])
    save_figure(plot_confusion(cm, classes), out_dir / "confusion_matrix.png")
    save_figure(plot_roc(roc_curves(probs, labels), classes), out_dir / "roc.png")
    before = None if uncalibrated is None else bins_of(uncalibrated, labels)
    save_figure(plot_reliability(bins_of(probs, labels), before, result["calibration"]), out_dir / "reliability.png")
    pred = probs.argmax(1)
    wrong = np.nonzero(pred != labels)[0]
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:40]  # most confident mistakes first
    save_figure(plot_misclassified(images[wrong].numpy(), labels[wrong], pred[wrong], probs[wrong, pred[wrong]],
                                   classes), out_dir / "misclassified.png")
