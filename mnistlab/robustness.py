"""The robustness suite: a model's test error under each MNIST-C corruption (corruptions.py) next to
its clean error, and the mean corruption error. Writes robustness.json, robustness.png and
corruptions.png into the run folder; the report shows them."""


import numpy as np
import torch

from . import checkpoint
from .corruptions import CORRUPTIONS, SEVERITY, corrupt
from .data import Data
from .errors import MnistlabError
from .evaluate import predict_probs
from .plots import plot_grid, plot_robustness, save_figure
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

    def error(x: np.ndarray) -> float:
        return float((predict_probs(model, torch.from_numpy(x)).argmax(1) != labels).mean())

    errors, samples = {}, [images[:10]]
    for name in CORRUPTIONS:  # one corrupted copy of the test set at a time
        corrupted = corrupt(images, name, seed)
        errors[name] = error(corrupted)
        samples.append(corrupted[:10])
    result = {
        "checkpoint": str(checkpoint.resolve(model_path)),
        "model": meta["model"]["name"],
        "n": len(labels),
        "seed": seed,
        "clean_error": error(images),
        "errors": errors,
        "mean_corruption_error": float(np.mean(list(errors.values()))),
        "severity": SEVERITY,
    }
    out = checkpoint.resolve(model_path).parent
    write_json(out / ROBUSTNESS, result)
    save_figure(plot_robustness(result), out / "robustness.png")
    grid = plot_grid(np.stack(samples), ["clean"] + list(CORRUPTIONS), "The first test digits under each corruption")
    save_figure(grid, out / "corruptions.png")
    return result
