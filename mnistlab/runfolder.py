"""The run folder: its file names, reading and writing its JSON files, what its history means (best
epoch, training seconds), the lock that keeps one training process per folder, the guards that keep
mnistlab from writing over files it did not make, and the registry of runs (`mnistlab runs`).

A run folder (runs/TIMESTAMP-MODEL or --out) holds the files named below; `Run` is the Python view of
one (what `mnistlab.train` returns). Importing this module does not import torch.
"""

import html
import json
import os
import socket
import time
from pathlib import Path

from .errors import MnistlabError
from .files import remove_stale_temporaries, write_text

CONFIG = "config.json"  # the TrainConfig (config.py)
HISTORY = "history.json"  # one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds, lr
METRICS = "metrics.json"  # the test-set evaluation (evaluate.py)
DATA = "data.json"  # the data overview (explore.py)
ROBUSTNESS = "robustness.json"
MODEL = "model.safetensors"  # the kept weights and their description (checkpoint.py)
STATE = "state.safetensors"  # what --resume needs
PROBS = "probs.npy"
REPORT = "report.html"
CURVES = "curves.png"
AUGMENTED = "augmented.png"
LOCK = ".mnistlab.lock"

# Every file a run folder may hold, so that no command writes one kind of file over another.
ARTEFACTS = {CONFIG, HISTORY, METRICS, DATA, ROBUSTNESS, MODEL, STATE, PROBS, REPORT, CURVES, AUGMENTED,
             "class_counts.png", "samples.png", "mean_images.png", "pixel_histogram.png", "confusion_matrix.png",
             "roc.png", "misclassified.png", "reliability.png", "robustness.png", "corruptions.png", "model.onnx",
             "model.pt2"}
# Files whose presence makes a folder a run folder (config.json alone is too common a name).
MARKERS = (HISTORY, METRICS, DATA, MODEL, STATE, ROBUSTNESS)
HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def default_folder(model: str, root="runs") -> Path:
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{model}"


def newest_run(root="runs") -> Path:
    """The run under `root` whose training state was saved last (what a bare --resume continues)."""
    runs = sorted(Path(root).glob(f"*/{STATE}"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise MnistlabError(f"no run to resume under {root}/; name one with --out")
    return runs[-1].parent


# --- JSON files -----------------------------------------------------------------------------------


def read_json(path, default=None):
    """A JSON file's content, `default` when it does not exist; a malformed file is an error naming it."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise MnistlabError(f"{path}: unreadable ({e}); re-run the command that wrote it") from None


def write_json(path, value, indent: int = 2):
    write_text(path, json.dumps(value, indent=indent))


def read_history(folder) -> list[dict]:
    """history.json checked: a list of rows with every column (empty when there is none)."""
    path = Path(folder) / HISTORY
    history = read_json(path, [])
    if not isinstance(history, list) or not all(
            isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in HISTORY_KEYS) for r in history):
        raise MnistlabError(f"{path}: malformed (expected a list of epochs with {', '.join(HISTORY_KEYS)})")
    return history


def read_dict(path) -> dict | None:
    """A JSON file that must hold an object (config.json, metrics.json, ...), or None if absent."""
    value = read_json(path)
    if value is not None and not isinstance(value, dict):
        raise MnistlabError(f"{path}: malformed (expected a JSON object)")
    return value


# --- What a history means -------------------------------------------------------------------------


def best_epoch(history: list[dict]) -> dict:
    """The history row whose weights a run keeps: highest validation accuracy, then lowest validation
    loss, then the earliest. Accuracy first, because label smoothing makes later, better epochs look
    worse by plain cross-entropy (their predictions are deliberately less confident)."""
    return max(history, key=lambda r: (r["val_accuracy"], -r["val_loss"]))


def train_seconds(history: list[dict]) -> float:
    """Seconds spent in training steps (validation excluded)."""
    return sum(r["seconds"] for r in history)


def reached(history: list[dict], target: float | None) -> dict | None:
    """The first epoch whose validation accuracy reached `target`, if any."""
    return next((r for r in history if target is not None and r["val_accuracy"] >= target), None)


def seconds_to(history: list[dict], target: float) -> float | None:
    """Training seconds until the validation accuracy first reached `target` (None: never)."""
    hit = reached(history, target)
    return train_seconds(history[: hit["epoch"]]) if hit else None


# --- Guards: one writer per folder, never over what is not ours -----------------------------------


def open_folder(folder) -> Path:
    """A folder mnistlab is about to read or write: its stale temporaries (from a killed write) go."""
    folder = Path(folder)
    remove_stale_temporaries(folder)
    return folder


def is_run_folder(folder) -> bool:
    folder = Path(folder)
    if any((folder / name).exists() for name in MARKERS):
        return True
    config = folder / CONFIG
    try:
        saved = json.loads(config.read_text()) if config.is_file() else None
    except (ValueError, OSError):
        return False
    return isinstance(saved, dict) and {"model", "epochs"} <= set(saved)


def check_out_folder(folder, force: bool = False) -> Path:
    """A folder a command is about to write into: new, empty, or a run folder mnistlab made; any other
    folder only with `force` (the user's own files must not be mixed with or overwritten by results)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MnistlabError(f"{folder}: exists and is not a folder")
    if folder.is_dir():
        open_folder(folder)
        own = [p for p in folder.iterdir() if p.name != LOCK]
        if own and not force and not is_run_folder(folder):
            raise MnistlabError(f"{folder}: a folder of other files, not an mnistlab run folder; choose another "
                                "--out, or add --force to write into it anyway")
    return folder


def check_out_file(path, kind: str, suffix: str, own: str) -> Path:
    """A file a command is about to write (`kind`, e.g. "report"): it must end in `suffix`, and must not
    be another kind of run-folder file (a report over model.safetensors, a chart over state.safetensors)."""
    path = Path(path)
    if path.is_dir():
        raise MnistlabError(f"{path}: is a folder; give the {kind} file's name")
    if path.suffix.lower() != suffix:
        got = path.suffix or "a name without one"
        raise MnistlabError(f"{path}: a {kind} is written to a {suffix} file, not {got}")
    if path.name in ARTEFACTS and path.name != own:
        raise MnistlabError(f"{path}: that name is a run's own {path.name}; refusing to write a {kind} over it")
    return path


class Lock:
    """One training process per run folder: a lock file naming the holder (pid, host, start time).
    A lock whose process is gone on this host is stale and taken over."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False

    def holder(self) -> dict | None:
        try:
            info = json.loads(self.path.read_text())
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # being written this instant, or garbage

    def _stale(self, info: dict) -> bool:
        from .files import alive

        if not info:  # unreadable: stale once it is clearly not a lock being written
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        pid = info.get("pid")
        return info.get("host") == socket.gethostname() and isinstance(pid, int) and not alive(pid)

    def acquire(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self.holder()
                if info is None:
                    continue  # released meanwhile
                if not self._stale(info):
                    raise MnistlabError(
                        f"{self.folder} is in use: pid {info.get('pid', '?')} on {info.get('host', '?')} has held it "
                        f"since {info.get('since', '?')} (if that process is gone, delete {self.path})")
                # Take the dead holder's lock over: only one of several contenders wins the rename.
                aside = self.path.with_name(f"{LOCK}.{os.getpid()}.stale")
                try:
                    os.rename(self.path, aside)
                    aside.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise MnistlabError(f"{self.folder}: could not take the run folder's lock")

    def release(self):
        if self.held:
            info = self.holder()
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# --- A run, as Python sees it ---------------------------------------------------------------------


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
    from . import checkpoint

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
