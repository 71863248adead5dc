"""Looking at a data set before training: shapes, class balance, sample grid, mean images, pixel statistics."""

from pathlib import Path

import numpy as np
import torch

from .data import Data
from .plots import plot_class_counts, plot_grid, plot_pixel_histogram, save_figure
from .runfolder import DATA, write_json

FIGURES = ("class_counts.png", "samples.png", "mean_images.png", "pixel_histogram.png")


def summarize(data: Data, hist: np.ndarray | None = None) -> dict:
    """Numbers about the data set: shapes, dtypes, images per class, pixel statistics (on [0, 1]).
    The pixel statistics come from the training images' histogram of values 0..255 (`hist`, from
    pixel_histogram), exactly and without a float copy of the 47 million pixels."""
    hist = pixel_histogram(data) if hist is None else hist
    values = np.arange(256) / 255
    n = hist.sum()
    mean = (hist * values).sum() / n
    std = np.sqrt((hist * (values - mean) ** 2).sum() / (n - 1))  # unbiased, as torch.std
    inked = np.nonzero(hist)[0]
    return {
        "dataset": data.name,
        "classes": list(data.classes),
        "shapes": {
            "train_images": list(data.train_images.shape), "train_labels": list(data.train_labels.shape),
            "test_images": list(data.test_images.shape), "test_labels": list(data.test_labels.shape),
        },
        "dtypes": {"images": str(data.train_images.dtype).removeprefix("torch."),
                   "labels": str(data.train_labels.dtype).removeprefix("torch.")},
        "counts": {
            "train": torch.bincount(data.train_labels, minlength=len(data.classes)).tolist(),
            "test": torch.bincount(data.test_labels, minlength=len(data.classes)).tolist(),
        },
        "pixels": {
            "mean": float(mean), "std": float(std), "min": int(inked[0]), "max": int(inked[-1]),
            "fraction_zero": float(hist[0] / n),
        },
    }


def pixel_histogram(data: Data) -> np.ndarray:
    """How many training pixels have each value 0..255 (torch.bincount: ten times faster than NumPy's,
    which first copies the uint8 pixels to int64)."""
    return torch.bincount(data.train_images.flatten(), minlength=256).numpy()


def examples_per_class(images: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int = 10) -> np.ndarray:
    """The first k images of each class, as an array (num_classes, k, 28, 28)."""
    return np.stack([images[(labels == c).nonzero().squeeze(1)[:k]].numpy() for c in range(num_classes)])


def write_overview(data: Data, out_dir) -> dict:
    """Write data.json and the overview figures into `out_dir`; returns the summary."""
    out_dir = Path(out_dir)
    hist = pixel_histogram(data)
    summary = summarize(data, hist)
    write_json(out_dir / DATA, summary)
    classes = data.classes
    save_figure(plot_class_counts(summary["counts"], classes), out_dir / "class_counts.png")
    grid = examples_per_class(data.train_images, data.train_labels, len(classes))
    save_figure(plot_grid(grid, classes, "Ten training examples of each class"), out_dir / "samples.png")
    means = np.stack([data.train_images[data.train_labels == c].float().mean(0).numpy()
                      for c in range(len(classes))])
    save_figure(plot_grid(means[None], [""], "Mean image per class", col_titles=classes), out_dir / "mean_images.png")
    save_figure(plot_pixel_histogram(hist), out_dir / "pixel_histogram.png")
    return summary
