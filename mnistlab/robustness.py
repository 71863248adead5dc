"""The robustness suite: a model's test error under each MNIST-C corruption (corruptions.py) next to
its clean error, and the mean corruption error; and the part of the images it gets wrong with a
calibrated probability of at least predict's MIN_CONFIDENCE (what `mnistlab predict` would claim, not
call unsure). Writes robustness.json, robustness.png and corruptions.png into the run folder; the
report shows them."""


import numpy as np
import torch

from . import checkpoint
from .corruptions import CORRUPTIONS, SEVERITY, corrupt
from .data import Data
from .errors import MnistlabError
from .evaluate import predict_probs
from .plots import plot_grid, plot_robustness, save_figure
from .predict import MIN_CONFIDENCE
from .runfolder import ROBUSTNESS, write_json


def robustness(model_path, data: Data, seed: int = 0, limit: int | None = None) -> dict:
    """Test error of a run's model on the clean test set and under each corruption; the results go
    beside its checkpoint."""
    if limit is not None and limit < 1:
        raise MnistlabError("--limit must be at least 1")
    model, meta = checkpoint.load_model(model_path)
    if data.name != meta["dataset"]:
        raise MnistlabError(f"{model_path}: trained on {meta['dataset']}, not {data.name}")
    images, labels = data.test_images[:limit].numpy(), data.test_labels[:limit].numpy()

    def error(x: np.ndarray) -> tuple[float, float]:
        """The test error, and the part of the images read wrong with at least MIN_CONFIDENCE."""
        probs = predict_probs(model, torch.from_numpy(x))
        wrong = probs.argmax(1) != labels
        return float(wrong.mean()), float((wrong & (probs.max(1) >= MIN_CONFIDENCE)).mean())

    errors, sure, samples = {}, {}, [images[:10]]
    for name in CORRUPTIONS:  # one corrupted copy of the test set at a time
        corrupted = corrupt(images, name, seed)
        errors[name], sure[name] = error(corrupted)
        samples.append(corrupted[:10])
    clean_error, clean_sure = error(images)
    result = {
        "checkpoint": str(checkpoint.resolve(model_path)),
        "model": meta["model"]["name"],
        "n": len(labels),
        "seed": seed,
        "clean_error": clean_error,
        "errors": errors,
        "mean_corruption_error": float(np.mean(list(errors.values()))),
        "min_confidence": MIN_CONFIDENCE,
        "clean_confidently_wrong": clean_sure,
        "confidently_wrong": sure,
        "mean_confidently_wrong": float(np.mean(list(sure.values()))),
        "severity": SEVERITY,
    }
    out = checkpoint.resolve(model_path).parent
    write_json(out / ROBUSTNESS, result)
    save_figure(plot_robustness(result), out / "robustness.png")
    grid = plot_grid(np.stack(samples), ["clean"] + list(CORRUPTIONS), "The first test digits under each corruption")
    save_figure(grid, out / "corruptions.png")
    return result
