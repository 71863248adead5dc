"""Calibration: does a model's confidence match how often it is right? Expected calibration error
(ECE, Guo et al. 2017, "On Calibration of Modern Neural Networks"), and temperature scaling, which
divides the logits by one number T fitted on the validation split. T changes no prediction, only
how sure the model says it is; it is stored in the checkpoint and every consumer (evaluate, predict,
serve, export) applies it.
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from . import checkpoint
from .data import Data, split_indices
from .models import logits_of, pixels

BINS = 15


def bins_of(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict:
    """Confidence (top probability) in equal-width bins (lo, hi]: per bin its count, mean confidence
    and accuracy (NaN where empty)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, bins) / count
        acc = np.bincount(index, correct, bins) / count
    return {"count": count, "confidence": conf, "accuracy": acc}


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the mean |accuracy - confidence| over bins, weighted by their counts."""
    b = bins_of(probs, labels, bins)
    used = b["count"] > 0
    return float((b["count"][used] * np.abs(b["accuracy"][used] - b["confidence"][used])).sum() / len(labels))


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return F.cross_entropy(logits / temperature, labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood of softmax(logits / T)."""
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(np.log(0.05), np.log(20)),
                             method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def validation_split(meta: dict, data: Data):
    """The validation images and labels of the run that made a checkpoint (its config's split); a
    checkpoint without one (an imported model) gets the default split, 10% with seed 0."""
    config = meta.get("config") or {}
    _, val = split_indices(data.train_labels, config.get("val_fraction", 0.1), config.get("seed", 0),
                           config.get("stratify", False))
    return data.train_images[val], data.train_labels[val]


def calibrate(path, data: Data) -> dict:
    """Fit the temperature of a run's model on its validation split and store it in the checkpoint.
    Returns the temperature and the validation NLL and ECE before and after."""
    model, meta = checkpoint.load_model(path)
    images, labels = validation_split(meta, data)
    logits = logits_of(model, pixels(images))
    t = fit_temperature(logits, labels)
    y = labels.numpy()
    result = {
        "temperature": t,
        "val_images": len(labels),
        "val_nll_before": nll(logits, labels), "val_nll_after": nll(logits, labels, t),
        "val_ece_before": ece(torch.softmax(logits, 1).numpy(), y),
        "val_ece_after": ece(torch.softmax(logits / t, 1).numpy(), y),
    }
    checkpoint.save_model(checkpoint.resolve(path), model, {**meta, "temperature": t, "calibration": result})
    return result
