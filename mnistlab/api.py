"""The Python API: one function per `mnistlab` command, with the command's defaults.

    import mnistlab as ml
    run = ml.train(recipe="fast", data_dir="...")   # a Run: .metrics, .history, .plot_curves(), ...
    model = ml.load(run)                            # or a .safetensors or .onnx file
    model.predict("photo.png")                      # or a batch of 28x28 arrays

The command line (cli.py) parses its arguments and calls these functions; importing this module is
light (no torch until a function needs it).
"""

import sys
from pathlib import Path

from .config import SEED, TrainConfig
from .errors import MnistlabError
from .runfolder import CONFIG, METRICS, REPORT, check_out_file, check_out_folder
from .runs import Run


def console():
    """The rich Console every command prints through: a progress bar and colours on a terminal; plain
    lines elsewhere (a log file, CI, a Jupyter notebook), never escape codes."""
    from rich.console import Console

    # Piped output (logs, files) gets wide lines rather than rich's 80-column default. In Jupyter, plain
    # text on the cell's stdout: rich's own Jupyter output carries escape codes in its text/plain part,
    # and the kernel sets FORCE_COLOR, which would make rich draw a terminal's bar into the cell.
    jupyter = "ipykernel" in sys.modules
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160,
                   force_jupyter=False if jupyter else None, force_terminal=False if jupyter else None)


def _path(model) -> Path:
    """A Run, a loaded Model or a path -> the path of its run folder or checkpoint."""
    if isinstance(model, Run):
        return model.path
    if isinstance(model, Model):
        return model.source
    return Path(model)


def load_data(name: str = "mnist", data_dir=None, progress: bool = True):
    """A data set in memory (data.Data): uint8 images (N, 28, 28) and int64 labels, train and test.
    Found in `data_dir`, $MNISTLAB_DATA or the cache, downloaded if missing. The validation split is
    held out of the training images by data.split_indices (train does it, seeded)."""
    from .data import load

    return load(name, data_dir, progress)


def explore(dataset: str = "mnist", data_dir=None, out=None, force: bool = False, data=None) -> dict:
    """Shapes, class balance, sample grid, mean images and pixel statistics of a data set; writes the
    figures and data.json into `out` (default runs/explore-DATASET). Returns the numbers."""
    from .explore import write_overview

    out = check_out_folder(out or f"runs/explore-{dataset}", force)
    data = data if data is not None and data.name == dataset else load_data(dataset, data_dir)
    return write_overview(data, out)


def train(recipe: str | None = None, data_dir=None, out=None, resume: bool = False, evaluate: bool = True,
          data=None, mlflow: str | None = None, tensorboard: bool = False, force: bool = False, quiet: bool = False,
          **options) -> Run:
    """Train, calibrate, evaluate and report, as `mnistlab train` does; returns the Run.

    `recipe` and `options` are TrainConfig's fields (see `mnistlab train --help`), e.g.
    `train(recipe="fast", train_limit=2000, seed=1)`. `resume=True` continues the run in `out`
    (only `epochs` and `device` may change). `quiet` prints nothing."""
    from .pipeline import configure, run

    if resume:
        from .runfolder import newest_run

        out = out or newest_run()
    cfg = configure(recipe, out if resume else None, **options)
    return run(cfg, out, data=data, data_dir=data_dir, resume=resume, evaluate=evaluate,
               console=None if quiet else console(), mlflow=mlflow, tensorboard=tensorboard, force=force)


def sweep(recipe: str | None = None, trials: int = 20, params=(), timeout=None, study: str | None = None,
          storage: str | None = None, data_dir=None, dir="runs", data=None, show: str | None = None,
          quiet: bool = False, pruner=None, **options) -> dict:
    """Hyperparameter search on Optuna, as `mnistlab sweep` does (see sweep.py): `trials` runs of the
    recipe with `options` fixed and `params` searched (--param texts such as "lr=1e-4:1e-2:log"; none:
    the default space from the options' declarations), in study `study` (default: the recipe's name)
    of `storage` (default: sqlite:///runs/sweeps.db). Returns the summary: trials best first, "best".
    `show="NAME"` runs nothing: it adds the best trial's test accuracy and writes best.json and sweep.html."""
    from .sweep import parse_duration, search_space
    from .sweep import show as show_study
    from .sweep import sweep as run_sweep

    if show is not None:
        return show_study(show, storage, dir, data, data_dir)
    from .config import Option

    trials = Option("", int, 1).check("trials", trials)
    base = TrainConfig.from_recipe(recipe, **options)
    fixed = set(options) - {"model_args"} | set(options.get("model_args") or {})
    space = search_space(base, params, fixed)
    say = None if quiet else (lambda text, c=console(): c.print(text, markup=False))
    return run_sweep(base, trials, space, study or recipe or "default", storage, dir, data, data_dir,
                     parse_duration(timeout), say, pruner)


def evaluate(model, data_dir=None, out=None, limit: int | None = None, device: str = "cpu", tta: bool = False,
             report: bool = True, data=None, force: bool = False) -> dict:
    """Test-set metrics of a run or checkpoint: accuracy, loss, confusion matrix, classification report,
    ROC/AUROC, calibration; writes metrics.json, probs.npy and figures into `out` (default: beside
    the checkpoint), and report.html there unless `report` is False. Returns the metrics."""
    from .evaluate import evaluate as run_evaluation
    from .train import pick_device

    limit = _limit(limit)
    if out is not None:
        check_out_folder(out, force)
    m = run_evaluation(_path(model), out, data_dir, limit, pick_device(device), data=data, tta=tta)
    if report:
        write_report(m["out_dir"])
    return m


def ensemble(models, data_dir=None, out=None, limit: int | None = None, device: str = "cpu", tta: bool = False,
             report: bool = True, data=None, force: bool = False) -> dict:
    """The same evaluation for the mean of several models' class probabilities (default out:
    runs/TIMESTAMP-ensemble)."""
    from .evaluate import ensemble as run_ensemble
    from .train import pick_device

    limit = _limit(limit)
    if out is not None:
        check_out_folder(out, force)
    m = run_ensemble([_path(x) for x in models], out, data_dir, limit, pick_device(device), data=data, tta=tta)
    if report:
        write_report(m["out_dir"])
    return m


def write_report(run, out=None) -> Path:
    """Write a run's self-contained report.html (or `out`, an .html file); returns its path."""
    from .report import write_report as write

    path = _path(run)
    if out is not None:
        check_out_file(out, "report", ".html", REPORT)
    return write(path, out)


report = write_report


def load(path, backend: str = "pytorch") -> "Model":
    """A trained model from a run folder, a .safetensors checkpoint or an exported .onnx file."""
    return Model(_path(path), backend)


class Model:
    """A trained model ready to use. `predict` reads digits in image files, PIL images or arrays;
    `probabilities` gives the calibrated class probabilities of 28x28 arrays. `meta` is the
    checkpoint's description; `module` the PyTorch nn.Module (backend "pytorch")."""

    def __init__(self, source, backend: str = "pytorch"):
        from .export import open_model

        self.source = Path(source)
        self.runtime = open_model(source, backend)
        self.meta = self.runtime.meta
        self.classes = list(self.meta["classes"])

    @property
    def module(self):
        """The torch.nn.Module: (N, 1, 28, 28) pixels in [0, 1] -> logits; its `temperature` calibrates."""
        if not hasattr(self.runtime, "model"):
            raise MnistlabError(f"{self.source}: an ONNX model has no PyTorch module; load the run folder")
        return self.runtime.model

    def __repr__(self) -> str:
        return f"Model({str(self.source)!r}, {self.meta['model']['name']}, backend={self.runtime.backend})"

    def probabilities(self, images):
        """Class probabilities (N, C) float32 for 28x28 images in MNIST's convention (white ink on black):
        a numpy array or torch tensor (28, 28), (N, 28, 28) or (N, 1, 28, 28), uint8 0-255 or floats
        in [0, 1]."""
        return self.runtime.probabilities(_digits(images))

    def predict(self, images, single: bool = False, min_confidence: float | None = None):
        """For an image file, its bytes (a notebook's upload widget gives them) or a PIL image: what
        `mnistlab predict` reads in it, a dict with "text" (the
        digits read), "status" ("ok", "no_digit" or "unsure"), "confidence" and "digits" (each with its
        "box" in the image's pixels). For a list of those: a list of such dicts. `single` and
        `min_confidence` as in `mnistlab predict`. For an array or tensor of 28x28 images: the class
        names, one per image (one str for one image)."""
        from .predict import MIN_CONFIDENCE

        options = dict(single=single, min_confidence=MIN_CONFIDENCE if min_confidence is None else min_confidence)
        if _is_image(images):
            return self._read(images, **options)
        if isinstance(images, (list, tuple)) and images and all(_is_image(i) for i in images):
            return [self._read(i, **options) for i in images]
        single = _ndim(images) == 2
        names = [self.classes[i] for i in self.probabilities(images).argmax(1)]
        return names[0] if single else names

    def _read(self, image, **options) -> dict:
        from . import locate, predict

        if isinstance(image, memoryview):  # as ipywidgets' FileUpload gives a file's content
            image = image.tobytes()
        picture = image if not isinstance(image, (str, Path, bytes, bytearray)) else \
            predict.open_image(image, size=locate.WORK_SIZE)
        return predict.read(self.runtime, picture, **options)


def _is_image(x) -> bool:
    if isinstance(x, (str, Path, bytes, bytearray, memoryview)):
        return True
    return type(x).__module__.startswith("PIL.")


def _ndim(x) -> int:
    return len(getattr(x, "shape", ()))


def _digits(images):
    """Arrays or tensors of 28x28 images -> uint8 (N, 28, 28)."""
    import numpy as np

    if hasattr(images, "detach"):  # a torch tensor
        images = images.detach().cpu().numpy()
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (28, 28):
        raise MnistlabError(f"expected 28x28 images, (N, 28, 28) or (N, 1, 28, 28); got shape {a.shape} "
                            "(for image files of any size, give their paths)")
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
            raise MnistlabError("pixel values must be finite, 0-255 (or floats in [0, 1])")
        a = np.round(a * 255 if a.max() <= 1 else a).astype(np.uint8)
    return np.ascontiguousarray(a)


def _limit(limit):
    from .config import LIMIT

    return LIMIT.check("limit", limit)


def robustness(model, data_dir=None, seed: int = 0, limit: int | None = None, report: bool = True,
               data=None) -> dict:
    """Test error under each of MNIST-C's 15 corruptions and the mean corruption error; writes
    robustness.json and figures beside the checkpoint and adds them to the run's report."""
    from .checkpoint import read_meta
    from .robustness import robustness as measure

    path, seed, limit = _path(model), SEED.check("seed", seed), _limit(limit)
    dataset = read_meta(path)["dataset"]
    data = data if data is not None and data.name == dataset else load_data(dataset, data_dir)
    result = measure(path, data, seed, limit)
    run = Path(result["checkpoint"]).parent
    if report and any((run / name).exists() for name in (CONFIG, METRICS)):  # a run, not a loose checkpoint
        result["report"] = str(write_report(run))
    return result


def calibrate(model, data_dir=None, data=None, quiet: bool = True) -> dict:
    """Fit the model's temperature on its validation split and store it in the checkpoint."""
    from .checkpoint import read_meta
    from .pipeline import calibrate as fit

    path = _path(model)
    dataset = read_meta(path)["dataset"]
    data = data if data is not None and data.name == dataset else load_data(dataset, data_dir)
    return fit(path, data, None if quiet else console())


def export(model, out=None, format: str = "onnx", check_images: int = 1000, data_dir=None, data=None) -> Path:
    """Write model.onnx (or model.pt2) beside the checkpoint, or to `out`, after checking it against
    PyTorch on `check_images` test images. Returns the file written."""
    return export_checked(model, out, format, check_images, data_dir, data)[0]


def export_checked(model, out=None, format: str = "onnx", check_images: int = 1000, data_dir=None, data=None):
    """export, also returning the largest difference from PyTorch (None if not checked) and the number
    of test images compared."""
    from .checkpoint import read_meta
    from .export import FORMATS
    from .export import export as write

    path = _path(model)
    if format not in FORMATS:
        raise MnistlabError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    if out is not None:
        check_out_file(out, f"{format} export", "." + format, FORMATS[format])
    if check_images and data is None:
        data = load_data(read_meta(path).get("dataset", "mnist"), data_dir)
    written, diff = write(path, format, out, data, check_images)
    return written, diff, min(check_images, len(data.test_images)) if data is not None else 0


def runs(dir="runs", sort: str | None = None, warn=None, **where) -> list[dict]:
    """One summary row per run folder under `dir` (see runfolder.summary), filtered by text in
    `where` (model, dataset, recipe, name) and sorted by a column. Malformed runs are skipped;
    `warn(message)` hears about each."""
    from .runs import scan, select

    return select(scan(dir, warn), {k: v for k, v in where.items() if v}, sort)


def compare(runs, out="runs/compare.png") -> tuple[list[dict], Path | None]:
    """The runs' summary rows, and their validation curves on one chart written to `out` (None when
    no run has a history)."""
    from .plots import plot_compare, save_figure
    from .runs import summary

    check_out_file(out, "comparison chart", ".png", "compare.png")
    rows = []
    for run in map(_path, runs):
        if not run.is_dir():
            raise MnistlabError(f"{run}: no such run folder")
        rows.append(summary(run))
    curves = {r["name"]: r["history"] for r in rows if r["history"]}
    if not curves:
        return rows, None
    save_figure(plot_compare(curves), out)
    return rows, Path(out)


def import_keras(file, weights=None, out=None, force: bool = False) -> Path:
    """Turn a Keras-saved model (.h5, .json + weights .h5, .keras) into an mnistlab checkpoint in `out`
    (default runs/keras-FILE_STEM); returns the checkpoint's path. Calibrate it next."""
    from .keras import import_model

    out = check_out_folder(out or Path("runs") / f"keras-{Path(file).stem}", force)
    return import_model(file, out, weights)


def list_models() -> dict:
    """{name: (parameters, description)} of the models `train` can build."""
    from .models import MODELS, build, count_params, describe

    return {name: (count_params(build(name)), describe(name)) for name in MODELS}


def list_recipes() -> dict:
    """{name: Recipe(summary, settings)}: the presets for `recipe=`."""
    from .recipes import RECIPES

    return dict(RECIPES)


def config(recipe: str | None = None, **options) -> TrainConfig:
    """The TrainConfig a `train(recipe, **options)` call would use, checked."""
    return TrainConfig.from_recipe(recipe, **options)
