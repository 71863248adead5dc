"""Export a trained model for use outside mnistlab, and run an exported ONNX model.

Both formats take `pixels`, float32 (N, 1, 28, 28) scaled to [0, 1] (the input standardisation is
part of the graph), for any N, and return `logits` and `probabilities` (with the checkpoint's
temperature, see calibration.py), each (N, C):

- onnx: for onnxruntime and every other ONNX runtime. The checkpoint's description (classes, data
  set, input scaling, ...) is stored in the file's metadata under "mnistlab", so the file describes
  itself.
- pt2: torch.export's ExportedProgram, for `torch.export.load(path).module()`.

Before a file is written, its outputs on real test images are compared with PyTorch's; a difference
above 1e-4 is an error and nothing is written.
"""

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, lines
from .data import default_cache_dir
from .errors import MnistlabError
from .files import write_bytes
from .models import pixels

FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
TOLERANCE = 1e-4
METADATA_KEY = "mnistlab"


class WithProbabilities(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return logits, torch.softmax(logits / self.model.temperature, 1)


def export(source, fmt: str = "onnx", out=None, data=None, check_images: int = 1000) -> tuple[Path, float | None]:
    """Export the model of a run folder or checkpoint; by default to model.onnx / model.pt2 beside
    its checkpoint. `data` supplies the test images for the check (None with check_images=0: no check).
    Returns the file written and the largest difference from PyTorch (None if not checked)."""
    if fmt not in FORMATS:
        raise MnistlabError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if check_images and data is None:
        raise MnistlabError("checking an export needs the test images (or check_images=0)")
    path = checkpoint.resolve(source)
    model, meta = checkpoint.load_model(path)
    graph = WithProbabilities(model.to(memory_format=torch.contiguous_format)).eval()
    example = torch.zeros(2, 1, 28, 28)
    batch = ({0: torch.export.Dim("batch", min=1, max=1 << 20)},)
    out = Path(out) if out else path.parent / FORMATS[fmt]

    if fmt == "onnx":
        import onnx  # noqa: F401 - the exporter needs both; importing them first names a missing one
        import onnxscript  # noqa: F401

        # The exporter reports its progress on stdout, and warns that torchvision's operators are absent.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(graph, (example,), input_names=["pixels"], dynamo=True, verbose=False,
                                        output_names=["logits", "probabilities"], dynamic_shapes=batch)
        proto = program.model_proto
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        blob = proto.SerializeToString()
        run = OnnxModel(blob).run
    else:
        program = torch.export.export(graph, (example,), dynamic_shapes=batch)
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        blob = buffer.getvalue()
        exported = program.module()

        def run(x):
            with torch.inference_mode():
                return [t.numpy() for t in exported(torch.from_numpy(x))]

    diff = None
    if check_images:
        x = pixels(data.test_images[:check_images])
        with torch.inference_mode():
            expected = [t.numpy() for t in graph(x)]
        diff = max(float(np.abs(got - want).max()) for got, want in zip(run(x.numpy()), expected))
        if diff > TOLERANCE:
            raise MnistlabError(f"exported {fmt} model differs from PyTorch by {diff:.2e} (> {TOLERANCE}); "
                                "nothing written")
    write_bytes(out, blob)
    return out, diff


class OnnxModel:
    """An exported .onnx model through onnxruntime, with the same `meta`, `probabilities(digits)` and
    `lines` as predict.TorchModel."""

    backend = "onnxruntime"

    def __init__(self, source, threads: int | None = None, run=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            model = source if isinstance(source, bytes) else str(source)
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            self.meta = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except KeyError:
            raise MnistlabError(f"{source}: an ONNX model without mnistlab's description; export it with "
                                "`mnistlab export`") from None
        except Exception as e:  # onnxruntime raises its own types for missing, corrupt and invalid files
            name = "ONNX model" if isinstance(source, bytes) else source
            raise MnistlabError(f"{name}: cannot load ONNX model ({str(e).strip().splitlines()[0]})") from None
        # The line reader of its run (lines.py; on PyTorch), or the one beside an .onnx file in a run folder.
        beside = run if run is not None else None if isinstance(source, bytes) else source
        self.lines = lines.load(beside) if beside is not None else None

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """logits and probabilities for pixels (N, 1, 28, 28) float32 in [0, 1]."""
        return self.session.run(["logits", "probabilities"], {"pixels": x})

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) float32 for preprocessed digits (N, 28, 28) uint8."""
        x = digits[:, None].astype(np.float32) / np.float32(255)
        return self.session.run(["probabilities"], {"pixels": x})[0]


def open_model(source, backend: str = "pytorch", threads: int | None = None):
    """The model to predict and serve with: an .onnx file runs on onnxruntime; a run folder or
    checkpoint on PyTorch, or with backend "onnxruntime" through the model.onnx exported beside it.
    Backend "auto": see choose_backend. `threads`: the backend's threads (default: its own choice,
    one per core)."""
    from .predict import TorchModel

    if threads:
        torch.set_num_threads(threads)
    if backend not in BACKENDS:
        raise MnistlabError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    if Path(source).suffix == ".onnx":
        return OnnxModel(source, threads)
    if backend == "auto":
        backend, _ = choose_backend(source)
        if backend == "onnxruntime":
            return OnnxModel(onnx_for(source), threads, run=source)
    if backend == "pytorch":
        return TorchModel(source)
    onnx_path = checkpoint.resolve(source).parent / FORMATS["onnx"]
    if not onnx_path.exists():
        raise MnistlabError(f"{onnx_path}: not exported yet; run `mnistlab export {source}` first")
    if onnx_path.stat().st_mtime < checkpoint.resolve(source).stat().st_mtime:
        raise MnistlabError(f"{onnx_path} is older than its checkpoint; run `mnistlab export {source}` again")
    return OnnxModel(onnx_path, threads, run=source)


BACKENDS = ("auto", "pytorch", "onnxruntime")


def _installed(*modules) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def choose_backend(source) -> tuple[str, str]:
    """What backend "auto" runs `source` on, and why: onnxruntime when it is installed (on one image
    at a time, the serving case, it takes a fraction of PyTorch's overhead per call) and the model
    is in ONNX or can be exported to it; else PyTorch."""
    if Path(source).suffix == ".onnx":
        return "onnxruntime", "an ONNX model"
    if not _installed("onnxruntime"):
        return "pytorch", "onnxruntime is not installed"
    if _fresh_export(checkpoint.resolve(source)):
        return "onnxruntime", "installed; the model.onnx beside the checkpoint"
    if not _installed("onnx", "onnxscript"):
        return "pytorch", "onnxruntime is installed but not the exporter (onnx, onnxscript)"
    return "onnxruntime", "installed; the checkpoint exported to ONNX in the user cache"


def _fresh_export(path: Path) -> Path | None:
    beside = path.parent / FORMATS["onnx"]
    return beside if beside.exists() and beside.stat().st_mtime >= path.stat().st_mtime else None


def onnx_for(source) -> Path:
    """An ONNX export of a checkpoint for onnxruntime: the model.onnx that `mnistlab export` wrote
    beside it when it is newer than the checkpoint, else one exported once into the user cache
    (~/.cache/mnistlab/onnx/SHA256.onnx, by the checkpoint's digest) and checked against PyTorch on
    random images. The checkpoint is verified first, as PyTorch would load it: a flipped byte keeps the
    digest its description claims, and would otherwise be served from the export of the file it was.
    The user's own files are never written."""
    from .predict import TorchModel

    path = checkpoint.resolve(source)
    _, meta = checkpoint.load_model(path)  # a corrupt or invalid checkpoint is refused here
    if beside := _fresh_export(path):
        return beside
    key = meta.get("sha256") or hashlib.sha256(path.read_bytes()).hexdigest()
    out = default_cache_dir() / "onnx" / f"{key}.onnx"
    if not out.exists():
        export(path, "onnx", out, check_images=0)
        digits = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
        diff = float(np.abs(OnnxModel(out).probabilities(digits) - TorchModel(path).probabilities(digits)).max())
        if diff > TOLERANCE:
            out.unlink()
            raise MnistlabError(f"{path}: its ONNX export differs from PyTorch by {diff:.2e} (> {TOLERANCE})")
    return out
