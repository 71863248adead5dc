"""Figures: every chart mnistlab draws, as functions from numbers to a matplotlib Figure."""

import io
import os
import sys

import matplotlib

if "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")  # files only, no screen needed (a notebook keeps its inline backend)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .files import write_bytes  # noqa: E402

TRAIN, VAL = "#1f77b4", "#ff7f0e"


def save_figure(fig, path, dpi: int = 110):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def detached(fig):
    """A figure for a caller to show (a notebook displays it once) rather than for pyplot to keep."""
    plt.close(fig)
    return fig


def plot_curves(history: list[dict]):
    """Accuracy and loss per epoch, training vs validation (the seeds labelled validation 'test')."""
    epochs = [row["epoch"] for row in history]
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((acc, "accuracy", "Accuracy"), (loss, "loss", "Loss (cross-entropy)")):
        ax.plot(epochs, [r[key] for r in history], "o-", color=TRAIN, label="training")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], "o-", color=VAL, label="validation")
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if len(epochs) < 20:
        for ax in (acc, loss):
            ax.set_xticks(epochs)
    fig.tight_layout()
    return fig


def plot_compare(runs: dict[str, list[dict]]):
    """Validation accuracy and loss per epoch of several runs on shared axes."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in runs.items():
        epochs = [r["epoch"] for r in history]
        acc.plot(epochs, [r["val_accuracy"] for r in history], "o-", ms=3, label=name)
        loss.plot(epochs, [r["val_loss"] for r in history], "o-", ms=3, label=name)
    acc.set(title="Validation accuracy", xlabel="epoch")
    loss.set(title="Validation loss (cross-entropy)", xlabel="epoch")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
    acc.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_class_counts(counts: dict[str, list[int]], classes):
    """Bar chart of images per class, one group of bars per split."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(classes))
    width = 0.8 / len(counts)
    for i, (split, c) in enumerate(counts.items()):
        bars = ax.bar(x + (i - (len(counts) - 1) / 2) * width, c, width, label=split)
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, classes, rotation=30 if max(len(c) for c in classes) > 2 else 0)
    ax.set(xlabel="class", ylabel="images", title="Images per class")
    ax.legend()
    fig.tight_layout()
    return fig


def mosaic(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """(rows, cols, h, w) images -> one (rows*(h+gap), cols*(w+gap)) array; drawing one image is much
    faster than a hundred subplots."""
    rows, cols, h, w = images.shape
    out = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap), np.float32)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[r, c]
    return out


def plot_grid(images: np.ndarray, row_labels, title: str, col_titles=None):
    """A grid of 28x28 images (rows, cols, 28, 28), black ink on white like the seeds' sample grid."""
    rows, cols = images.shape[:2]
    fig, ax = plt.subplots(figsize=(cols * 0.6 + 0.6, rows * 0.6 + 0.8))
    ax.imshow(mosaic(images), cmap="gray_r", vmin=0, vmax=255)
    ax.set_yticks(np.arange(rows) * 30 + 13.5, row_labels)
    ax.set_xticks(np.arange(cols) * 30 + 13.5, col_titles if col_titles is not None else [""] * cols)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, pad=18 if col_titles is not None else 6)
    return fig


def plot_pixel_histogram(hist: np.ndarray):
    """Histogram of pixel values 0..255 over the training images (log scale: most pixels are 0)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.stairs(hist, np.arange(257), fill=True, color="#555")
    ax.set_yscale("log")
    ax.set(xlabel="pixel value", ylabel="count", title="Pixel values (training set)")
    fig.tight_layout()
    return fig


def plot_confusion(cm: np.ndarray, classes):
    """Annotated confusion-matrix heatmap: rows are true classes, columns predictions."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    shown = np.where(cm > 0, np.log1p(cm), 0)  # log colour scale, so errors are visible beside the diagonal
    im = ax.imshow(shown, cmap="Blues")
    threshold = shown.max() / 2
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > threshold else ("#b00" if i != j else "black"))
    ax.set_xticks(range(len(classes)), classes, rotation=45 if max(len(c) for c in classes) > 2 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="log(1 + count)")
    fig.tight_layout()
    return fig


def plot_roc(curves: dict, classes):
    """One-vs-rest ROC curve per class; `curves[i] = (fpr, tpr, auc)`. Inset zooms on the top-left."""
    fig, ax = plt.subplots(figsize=(7, 6))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    zoom = ax.inset_axes([0.45, 0.12, 0.5, 0.5])
    for i, (fpr, tpr, auc) in curves.items():
        for a in (ax, zoom):
            a.plot(fpr, tpr, lw=1.5, color=colors[i % 10], label=f"{classes[i]} (AUROC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    zoom.set(xlim=(0, 0.05), ylim=(0.9, 1.0))
    zoom.tick_params(labelsize=7)
    zoom.grid(alpha=0.3)
    ax.indicate_inset_zoom(zoom, edgecolor="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curves, one class vs rest",
           xlim=(-0.01, 1), ylim=(0, 1.01))
    if curves:  # none when no class has both positives and negatives (e.g. evaluate --limit 1)
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.99), fontsize=7, ncol=2, framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_misclassified(images: np.ndarray, true, pred, conf, classes, cols: int = 10):
    """Gallery of misclassified images, each labelled 'true→predicted' and the model's confidence."""
    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    grid = np.zeros((rows * cols, 28, 28), np.float32)
    grid[:n] = images
    fig, ax = plt.subplots(figsize=(cols * 0.95, rows * 1.1 + 0.5))
    ax.imshow(mosaic(grid.reshape(rows, cols, 28, 28), gap=14)[:, :], cmap="gray_r", vmin=0, vmax=255,
              extent=None)
    for k in range(n):
        r, c = divmod(k, cols)
        ax.text(c * 42 + 14, r * 42 + 28, f"{classes[true[k]]}→{classes[pred[k]]} {conf[k]:.0%}",
                ha="center", va="top", fontsize=7, color="#b00")
    ax.set_ylim(rows * 42, -1)
    ax.axis("off")
    ax.set_title("Misclassified test images: true→predicted (confidence), most confident first", fontsize=10)
    return fig


def plot_reliability(after: dict, before: dict | None, calibration: dict):
    """Reliability diagram: accuracy against confidence per bin (calibration.bins_of), before and after
    temperature scaling; a calibrated model follows the diagonal. Below it, how many images per bin."""
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    n = len(after["count"])
    centres = (np.arange(n) + 0.5) / n
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    t = calibration.get("temperature")
    series = [(before, f"before (ECE {calibration.get('ece_uncalibrated', 0):.2%})", "#9ca3af")] if before else []
    label = f"after, T = {t:.3f} (ECE {calibration['ece']:.2%})" if before else f"ECE {calibration['ece']:.2%}"
    series.append((after, label, "#2563eb"))
    width = 1 / n / (len(series) + 0.5)
    for k, (b, name, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        used = b["count"] > 0
        ax.bar(centres[used] + offset, b["accuracy"][used], width=width, color=color, label=name)
        counts.bar(centres + offset, b["count"], width=width, color=color)
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="Reliability: accuracy per confidence bin")
    ax.legend(loc="upper left", fontsize=8)
    counts.set(xlabel="confidence (top probability)", ylabel="images", yscale="log")
    fig.tight_layout()
    return fig


def plot_robustness(result: dict):
    """Test error under each corruption (robustness.json), sorted, with the clean error as a line and,
    where measured, the part of it read with confidence (what `predict` would claim) darker."""
    errors = sorted(result["errors"].items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 5.5))
    names = [name.replace("_", " ") for name, _ in errors]
    sure = result.get("confidently_wrong")
    ax.barh(names, [100 * e for _, e in errors], color="#2563eb",
            label=f"wrong, read with less than {result['min_confidence']:g}" if sure else None)
    if sure:
        ax.barh(names, [100 * sure[name] for name, _ in errors], color="#b91c1c",
                label=f"wrong, read with at least {result['min_confidence']:g}")
    ax.axvline(100 * result["clean_error"], color="#111", lw=1.2, ls="--",
               label=f"clean {result['clean_error']:.2%}")
    ax.axvline(100 * result["mean_corruption_error"], color="#b45309", lw=1.2,
               label=f"mean corruption error {result['mean_corruption_error']:.2%}")
    for i, (_, e) in enumerate(errors):
        ax.text(100 * e, i, f" {e:.1%}", va="center", fontsize=8)
    ax.set(xlabel="test error (%)", title=f"{result['model']} on MNIST-C corruptions ({result['n']:,} test images)")
    ax.set_xlim(0, max(100 * errors[-1][1] * 1.15, 1))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
