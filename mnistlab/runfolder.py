"""The run folder: its file names, reading and writing its JSON files, what its history means (best
epoch, training seconds), the lock that keeps one training process per folder, and the guards that
keep mnistlab from writing over files it did not make.

A run folder (runs/TIMESTAMP-MODEL or --out) holds the files named below; runs.py reads whole runs
back (the `Run` object and the registry). This module does not import torch.
"""

import json
import os
import socket
import time
from pathlib import Path

from .errors import MnistlabError
from .files import alive, remove_stale_temporaries, write_text

CONFIG = "config.json"  # the TrainConfig (config.py)
HISTORY = "history.json"  # one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds, lr
METRICS = "metrics.json"  # the test-set evaluation (evaluate.py)
DATA = "data.json"  # the data overview (explore.py)
ROBUSTNESS = "robustness.json"
MODEL = "model.safetensors"  # the kept weights and their description (checkpoint.py)
STATE = "state.safetensors"  # what --resume needs
LINES = "lines.safetensors"  # the line reader (lines.py)
PROBS = "probs.npy"
REPORT = "report.html"
CURVES = "curves.png"
AUGMENTED = "augmented.png"
LOCK = ".mnistlab.lock"

# Every file a run folder may hold, so that no command writes one kind of file over another.
ARTEFACTS = {CONFIG, HISTORY, METRICS, DATA, ROBUSTNESS, MODEL, STATE, PROBS, REPORT, CURVES, AUGMENTED,
             "class_counts.png", "samples.png", "mean_images.png", "pixel_histogram.png", "confusion_matrix.png",
             "roc.png", "misclassified.png", "reliability.png", "robustness.png", "corruptions.png", "model.onnx",
             "model.pt2", LINES}
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
                        f"since {info.get('since', '?')} (if that process is gone, delete {self.path})") from None
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
