"""The run registry: every run folder already describes itself (config, history, metrics, weights);
this module reads them back into one row per run, for `mnistlab runs` and `mnistlab compare`."""

import json
from pathlib import Path

from . import checkpoint
from .errors import MnistlabError
from .train import best_epoch

COLUMNS = ("name", "dataset", "model", "params", "epochs", "train_seconds", "val_accuracy", "test_accuracy")


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: the row shows what is known


def summary(run) -> dict:
    """One row for a run folder: name, data set, model, parameters, epochs, training seconds, best
    validation accuracy and test accuracy (None where the run does not have them)."""
    run = Path(run)
    config, history, metrics = _json(run / "config.json"), _json(run / "history.json"), _json(run / "metrics.json")
    try:
        meta = checkpoint.read_meta(run / checkpoint.MODEL_FILE) if (run / checkpoint.MODEL_FILE).exists() else {}
    except MnistlabError:
        meta = {}
    model = meta.get("model") or (metrics or {}).get("model") or {"name": (config or {}).get("model")}
    best = best_epoch(history) if history else None
    return {
        "name": run.name,
        "path": str(run),
        "dataset": meta.get("dataset") or (metrics or {}).get("dataset") or (config or {}).get("dataset"),
        "model": model.get("name"),
        "recipe": (config or {}).get("recipe"),
        "params": model.get("params"),
        "epochs": len(history) if history else None,
        "train_seconds": sum(r["seconds"] for r in history) if history else None,
        "val_accuracy": best["val_accuracy"] if best else None,
        "test_accuracy": (metrics or {}).get("test_accuracy"),
        "history": history or [],
    }


def scan(root="runs") -> list[dict]:
    """A row per run folder under `root` (a folder holding a config, a model or metrics), by name."""
    root = Path(root)
    if not root.is_dir():
        raise MnistlabError(f"{root}: no such folder of runs")
    folders = {p.parent for pattern in ("*/config.json", "*/model.safetensors", "*/metrics.json")
               for p in root.glob(pattern)}
    return [summary(f) for f in sorted(folders)]


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
