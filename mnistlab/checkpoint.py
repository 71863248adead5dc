"""Checkpoints: weights in safetensors with a JSON description in the file's header; never pickled.

A model checkpoint (`model.safetensors`) holds everything needed to rebuild and use the model:
architecture name and arguments, input standardisation, class names, data set, seed, training
config, validation metrics and versions. A training state (`state.safetensors`) adds the optimiser
and RNG state so that `--resume` continues exactly where training stopped.

Every file carries a SHA-256 of its description (canonical JSON) and of its tensors, checked on every
load, so that a flipped byte anywhere is an error rather than a different answer. Files of the first
format ("mnistlab/1", whose SHA-256 covered the tensors only) still load; their description is
validated like any other, and rewriting them (`mnistlab calibrate`) brings them to the current format.
"""

import hashlib
import json
import math
import os
import platform
import stat
import time
from importlib import metadata
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .errors import MnistlabError
from .files import write_bytes
from .runfolder import MODEL, STATE
from .models import Classifier, build

FORMAT = "mnistlab/2"
OLD_FORMAT = "mnistlab/1"  # its SHA-256 covers the tensors but not the description
MODEL_FILE, STATE_FILE = MODEL, STATE  # the run folder's names (runfolder.py)


def versions() -> dict:
    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"mnistlab": version("mnistlab"), "torch": torch.__version__, "python": platform.python_version()}


def digest(tensors: dict, meta: dict | None = None) -> str:
    """SHA-256 over the description `meta` (as canonical JSON, without its own "sha256"), then every
    tensor's name, dtype, shape and bytes, in name order: safetensors itself checks only the layout,
    so this is what catches a flipped bit in the class names or the weights. Without `meta`: the
    tensors alone, as the first format had it."""
    h = hashlib.sha256()
    if meta is not None:
        description = {k: v for k, v in meta.items() if k != "sha256"}
        h.update(json.dumps(description, sort_keys=True, separators=(",", ":")).encode() + b"\0")
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{list(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_tensors(path, tensors: dict, meta: dict, fmt: str = FORMAT):
    """Tensors and their description `meta` (marked as `fmt`) with their SHA-256, written atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": fmt, **{k: v for k, v in meta.items() if k not in ("format", "sha256")}}
    meta["sha256"] = digest(tensors, meta)
    write_bytes(path, safetensors_bytes(tensors, metadata={"mnistlab": json.dumps(meta)}))


def _stat(path: Path) -> os.stat_result | None:
    """The file's status, or None when there is no such file; unreadable is an error of its own."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise MnistlabError(f"{path}: permission denied") from None


def _check_readable(path: Path):
    """A regular file we may read (a FIFO would block the reader, a device never end)."""
    status = _stat(path)
    if status is None:
        raise MnistlabError(f"{path}: no such checkpoint file")
    if not stat.S_ISREG(status.st_mode):
        raise MnistlabError(f"{path}: not a regular file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise MnistlabError(f"{path}: permission denied") from None


def _load(path, with_tensors: bool = True) -> tuple[dict, dict]:
    path = Path(path)
    _check_readable(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise MnistlabError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        meta = json.loads(header["mnistlab"])
        if meta.get("format") not in (FORMAT, OLD_FORMAT):
            raise KeyError
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError, RecursionError):
        raise MnistlabError(f"{path}: not an mnistlab checkpoint (no {FORMAT} metadata)") from None
    if meta["format"] == FORMAT and not isinstance(meta.get("sha256"), str):
        raise MnistlabError(f"{path}: corrupt checkpoint (no SHA-256 in its description)")
    if with_tensors and "sha256" in meta:  # the first format's earliest files had none
        if digest(tensors, meta if meta["format"] == FORMAT else None) != meta["sha256"]:
            raise MnistlabError(f"{path}: corrupt checkpoint (its description or weights do not match their SHA-256)")
    return tensors, meta


def model_meta(model: Classifier, name: str, args: dict, classes, dataset: str, **extra) -> dict:
    return {
        "model": {"name": name, "args": args, "params": sum(p.numel() for p in model.parameters())},
        # Consumers feed (N, 1, 28, 28) float pixels x/255, white ink on black; the model standardises.
        "input": {"shape": [1, 28, 28], "scale": 1 / 255, "mean": model.mean, "std": model.std},
        "classes": list(classes),
        "dataset": dataset,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def save_model(path, model: Classifier, meta: dict):
    save_tensors(path, model.net.state_dict(), meta)


def resolve(path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    path = Path(path)
    status = _stat(path)
    if status is None:
        raise MnistlabError(f"{path}: no such run folder or checkpoint")
    if stat.S_ISDIR(status.st_mode):
        if _stat(path / MODEL_FILE) is None:
            raise MnistlabError(f"{path}: no {MODEL_FILE} in this folder (is it a run folder?)")
        return path / MODEL_FILE
    return path


def read_meta(path) -> dict:
    """A checkpoint's description alone, without reading its weights."""
    return _load(resolve(path), with_tensors=False)[1]


def load_model(path, device="cpu") -> tuple[Classifier, dict]:
    """Rebuild a model from a run folder or checkpoint file. Returns (model in eval mode, metadata)."""
    tensors, meta = _load(resolve(path))
    try:
        spec = meta["model"]
        model = build(spec["name"], spec.get("args"), meta["input"]["mean"], meta["input"]["std"])
        model.net.load_state_dict(tensors, strict=True)
        model.temperature = float(meta.get("temperature", 1.0))
        with torch.no_grad():
            outputs = model.eval()(torch.zeros(1, 1, 28, 28)).shape[1]
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise MnistlabError(f"{path}: checkpoint does not match its architecture ({str(e).splitlines()[0]})") from None
    problem = _invalid(meta, tensors, outputs)
    if problem:
        raise MnistlabError(f"{path}: invalid checkpoint ({problem})")
    return model.to(device, memory_format=torch.channels_last).eval(), meta  # the fast layout on CPU


def _invalid(meta: dict, tensors: dict, outputs: int) -> str | None:
    """What is wrong with a checkpoint's description or weights that would change its answers
    (NaN probabilities, another class's name), or None. The SHA-256 catches corruption; this catches
    a file written wrong in the first place, or by hand."""
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    temperature = meta.get("temperature", 1.0)
    if not number(temperature) or temperature <= 0:
        return f"temperature {temperature!r} is not a positive number"
    mean, std = meta["input"].get("mean"), meta["input"].get("std")
    if not number(mean) or not number(std) or std <= 0:
        return f"input standardisation mean {mean!r}, std {std!r}: std must be a positive number"
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        return "classes must be a list of names"
    if len(set(classes)) != len(classes):
        return f"class names repeat: {', '.join(sorted({c for c in classes if classes.count(c) > 1}))}"
    if len(classes) != outputs:
        return f"{len(classes)} class names for a model with {outputs} outputs"
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        return f"weights that are not finite numbers in {', '.join(sorted(bad)[:3])}"
    return None


# --- Training state for --resume ------------------------------------------------------------------


def save_state(path, model: Classifier, optimizer: torch.optim.Optimizer, extra: dict, info: dict):
    """Model, optimiser and RNG state after an epoch. `extra` holds more named tensors (the augmentation
    RNG, the weight average); `info` (JSON) holds the history and the rest."""
    tensors = {f"model.{k}": v for k, v in model.net.state_dict().items()} | extra
    opt = optimizer.state_dict()
    scalars = {}
    for i, state in opt["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{i}.{k}"] = v
            else:
                scalars[f"{i}.{k}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}, **info}
    save_tensors(path, tensors, meta)


def load_state(path, model: Classifier, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Restore what save_state saved into `model`, `optimizer` and the torch RNG; returns (info, extra)."""
    tensors, meta = _load(path)
    if "optimizer" not in meta or "rng.torch" not in tensors:
        raise MnistlabError(f"{path}: not a training state (a model checkpoint, or from another tool)")
    state: dict = {}
    try:
        for key, v in tensors.items():
            kind, _, rest = key.partition(".")
            if kind == "optim":
                i, k = rest.split(".", 1)
                state.setdefault(int(i), {})[k] = v
        for key, v in meta["optimizer"]["scalars"].items():
            i, k = key.split(".", 1)
            state.setdefault(int(i), {})[k] = v
        model.net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
        # Saved tensors are contiguous; give moments the memory format (channels_last) of their
        # parameters again, as fused optimisers step over the raw memory of both.
        for param, param_state in optimizer.state.items():
            for k, v in param_state.items():
                if torch.is_tensor(v) and v.shape == param.shape:
                    param_state[k] = torch.empty_like(param).copy_(v)
        torch.set_rng_state(tensors["rng.torch"])
    except (ValueError, RuntimeError, TypeError, KeyError, AttributeError) as e:
        raise MnistlabError(f"{path}: training state does not match this model ({str(e).splitlines()[0]})") from None
    return meta, {k: v for k, v in tensors.items() if not k.startswith(("model.", "optim.", "rng.torch"))}
