"""Runs as a whole: `Run`, the Python view of one run folder (what `mnistlab.train` returns), and the
registry that summarises every run folder under runs/ in one row (`mnistlab runs`, `compare`)."""

import html
import os
from pathlib import Path

from .errors import MnistlabError
from .runfolder import CONFIG, CURVES, METRICS, MODEL, REPORT, best_epoch, is_run_folder, open_folder, read_dict, \
    read_history, train_seconds


class Run:
    """A run folder: `config`, `history` and `metrics` as plain Python data, its figures as matplotlib
    Figures, and a summary that Jupyter shows by itself."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise MnistlabError(f"{self.path}: no such run folder")
        open_folder(self.path)

    @property
    def config(self) -> dict | None:
        return read_dict(self.path / CONFIG)

    @property
    def history(self) -> list[dict]:
        return read_history(self.path)

    @property
    def metrics(self) -> dict | None:
        return read_dict(self.path / METRICS)

    @property
    def checkpoint(self) -> Path:
        return self.path / MODEL

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    @property
    def best_epoch(self) -> dict | None:
        history = self.history
        return best_epoch(history) if history else None

    @property
    def train_seconds(self) -> float:
        return train_seconds(self.history)

    def plot_curves(self):
        """Accuracy and loss per epoch, training against validation (a matplotlib Figure)."""
        from .plots import detached, plot_curves

        if not self.history:
            raise MnistlabError(f"{self.path}: no training history to plot")
        return detached(plot_curves(self.history))

    def confusion_matrix(self):
        """The test set's confusion matrix (a matplotlib Figure); needs an evaluated run."""
        import numpy as np

        from .plots import detached, plot_confusion

        metrics = self.metrics
        if not metrics:
            raise MnistlabError(f"{self.path}: not evaluated yet (no {METRICS}); run mnistlab.evaluate on it")
        return detached(plot_confusion(np.array(metrics["confusion_matrix"]), list(metrics["auroc"])))

    def summary(self) -> dict:
        return summary(self.path)

    def __repr__(self) -> str:
        s = self.summary()
        parts = [f"Run({str(self.path)!r}", f"model={s['model']}"]
        if s["val_accuracy"] is not None:
            parts.append(f"val_accuracy={s['val_accuracy']:.4f}")
        if s["test_accuracy"] is not None:
            parts.append(f"test_accuracy={s['test_accuracy']:.4f}")
        return ", ".join(parts) + ")"

    def _repr_html_(self) -> str:
        import base64

        s = self.summary()
        rows = [("model", (s["model"] or "?") + (f" ({s['recipe']})" if s["recipe"] else "")),
                ("data set", s["dataset"] or "?")]
        if s["params"]:
            rows.append(("parameters", f"{s['params']:,}"))
        if s["epochs"]:
            rows.append(("training", f"{s['epochs']} epoch{'s' * (s['epochs'] > 1)}, {s['train_seconds']:.1f} s"))
        if s["val_accuracy"] is not None:
            rows.append(("best validation accuracy", f"{s['val_accuracy']:.2%}"))
        if s["test_accuracy"] is not None:
            rows.append(("test accuracy", f"{s['test_accuracy']:.2%}"))
        table = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                        for k, v in rows)
        parts = [f"<b>mnistlab run</b> <code>{html.escape(str(self.path))}</code><table>{table}</table>"]
        curves = self.path / CURVES
        if curves.exists():
            data = base64.b64encode(curves.read_bytes()).decode()
            parts.append(f'<img src="data:image/png;base64,{data}" style="max-width:640px" alt="curves">')
        if self.report_path.exists():
            link = html.escape(os.path.relpath(self.report_path))
            parts.append(f'<p><a href="{link}" target="_blank">report.html</a></p>')
        return "".join(parts)


# --- The registry: one row per run folder ---------------------------------------------------------

COLUMNS = ("name", "dataset", "model", "params", "epochs", "train_seconds", "val_accuracy", "test_accuracy")


def summary(run) -> dict:
    """One row for a run folder: name, data set, model, parameters, epochs, training seconds, best
    validation accuracy and test accuracy (None where the run does not have them). A malformed file is
    an error naming it."""
    from . import checkpoint  # torch: only when a row is read, so that `import mnistlab` stays light

    run = Path(run)
    config, metrics, history = read_dict(run / CONFIG) or {}, read_dict(run / METRICS) or {}, read_history(run)
    meta = checkpoint.read_meta(run / MODEL) if (run / MODEL).exists() else {}
    model = meta.get("model") or metrics.get("model") or {"name": config.get("model")}
    if not isinstance(model, dict):
        raise MnistlabError(f"{run}: malformed model description")
    best = best_epoch(history) if history else None
    test_accuracy = metrics.get("test_accuracy")
    if test_accuracy is not None and not isinstance(test_accuracy, (int, float)):
        raise MnistlabError(f"{run / METRICS}: malformed test_accuracy {test_accuracy!r}")
    return {
        "name": run.name,
        "path": str(run),
        "dataset": meta.get("dataset") or metrics.get("dataset") or config.get("dataset"),
        "model": model.get("name"),
        "recipe": config.get("recipe"),
        "params": model.get("params"),
        "epochs": len(history) if history else None,
        "train_seconds": train_seconds(history) if history else None,
        "val_accuracy": best["val_accuracy"] if best else None,
        "test_accuracy": test_accuracy,
        "history": history,
    }


def scan(root="runs", warn=None) -> list[dict]:
    """A row per run folder under `root`, by name. A malformed run is skipped, and `warn(message)` says
    which and why."""
    root = Path(root)
    if not root.is_dir():
        raise MnistlabError(f"{root}: no such folder of runs")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and is_run_folder(p)):
        try:
            rows.append(summary(folder))
        except MnistlabError as e:
            if warn:
                warn(f"skipped {folder}: {e}")
    return rows


def select(rows: list[dict], where: dict, sort: str | None = None) -> list[dict]:
    """Rows whose fields contain the given text (e.g. {"model": "cnn"}), sorted by a column; accuracies
    and other numbers sort best first, missing values last."""
    for key, text in where.items():
        rows = [r for r in rows if text.lower() in str(r.get(key) or "").lower()]
    if sort:
        if sort not in COLUMNS:
            raise MnistlabError(f"cannot sort by {sort!r}; choose from {', '.join(COLUMNS)}")
        present = [r for r in rows if r[sort] is not None]
        descending = sort in ("val_accuracy", "test_accuracy", "params", "epochs")
        rows = sorted(present, key=lambda r: r[sort], reverse=descending) + [r for r in rows if r[sort] is None]
    return rows
