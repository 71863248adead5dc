"""The training pipeline: train -> calibrate -> evaluate -> report, as one function.

`mnistlab train`, `mnistlab.train(...)` in Python and the benchmarks all call `run`, so a model
trained any of these ways is calibrated, evaluated and reported the same way.
"""

import os
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

from .config import TrainConfig
from .errors import MnistlabError
from .runfolder import MODEL, Lock, best_epoch, check_out_folder, default_folder, newest_run, reached, train_seconds
from .runs import Run


def configure(recipe: str | None = None, resume_from=None, **options) -> TrainConfig:
    """The config of a run: TrainConfig's defaults, then the recipe, then `options`. A resumed run keeps
    its saved config; only `epochs` (to extend it) and `device` may change, other options are ignored."""
    if resume_from is not None:
        from .train import resumed_config

        return resumed_config(resume_from, options.get("epochs"), options.get("device"))
    return TrainConfig.from_recipe(recipe, **options)


def run(config: TrainConfig | None = None, out=None, data=None, data_dir=None, resume: bool = False,
        evaluate: bool = True, console=None, loggers=(), mlflow: str | None = None, tensorboard: bool = False,
        force: bool = False) -> Run | None:
    """Train `config` (default: TrainConfig()) into the run folder `out` (default: runs/TIMESTAMP-MODEL;
    with `resume`, the newest run under runs/), fit the temperature on the validation split, evaluate
    on the test set (unless `evaluate` is False) and write report.html. Returns the Run (None in the
    non-main processes under torchrun).

    `data`: the data set already in memory (else loaded from `data_dir`); `console`: a rich Console for
    progress and results (None: silent); `loggers`: extra trackers (tracking.py), besides those that
    `mlflow` (a tracking URI) and `tensorboard` ask for; `force`: write into an existing folder that is
    not a run folder. The run folder is locked while this runs. Ctrl-C raises KeyboardInterrupt after
    saving the state, from which `resume=True` continues."""
    from .distributed import is_main

    from .train import check

    cfg = config or TrainConfig()
    check(cfg)
    workers = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
    if workers > 1 and out is None:
        raise MnistlabError("under torchrun, name the run folder with --out (every process must agree on it)")
    out = Path(out) if out is not None else (newest_run() if resume else default_folder(cfg.model))
    main = is_main()
    say = console.print if console is not None and main else (lambda *a, **k: None)
    if main:
        check_out_folder(out, force)
    with Lock(out) if main else nullcontext():
        from .train import check_run_dir, resumed_config, train

        check_run_dir(out, resume)
        if resume:
            cfg = resumed_config(out, cfg.epochs, cfg.device)
        say("config: " + "  ".join(f"{k}={v}" for k, v in asdict(cfg).items()))
        say(f"run folder: {out}" + (f" ({workers} processes)" if workers > 1 else ""))
        if cfg.precision == "auto":
            from .train import pick_device, precision

            chosen, why = precision("auto", pick_device(cfg.device))
            say(f"precision: {chosen} ({why})")
        if cfg.photos:
            # Measured on 2-core EPYCs: about 0.26 s per photo and core with AVX512, 0.34 with AVX2 only (2026-12-04)
            low, high = (seconds * cfg.photos / (os.cpu_count() or 1) / 60 for seconds in (0.25, 0.35))
            say(f"photos: training digits in {cfg.photos} synthetic photos, cut out as `mnistlab predict` reads "
                f"a photo (the first time, about {low:.0f}-{high:.0f} min here; then from the user cache)")
        loggers = list(loggers) + (_trackers(mlflow, tensorboard, out, cfg) if main else [])  # before the data:
        data = _data(cfg.dataset, data, data_dir, console)  # a bad tracking URI fails at once
        if not resume and main:
            from .explore import write_overview

            out.mkdir(parents=True, exist_ok=True)
            write_overview(data, out)
        history = train(cfg, out, data=data, resume=resume, console=console if main else None, loggers=loggers)
        if not main:
            return None  # the main process reports, evaluates and writes
        best = best_epoch(history)
        say(f"trained {len(history)} epoch{'s' * (len(history) > 1)} in {train_seconds(history):.1f} s; "
            f"kept epoch {best['epoch']} (val_loss {best['val_loss']:.4f}, "
            f"val_accuracy {best['val_accuracy']:.2%}) in {out / MODEL}")
        if cfg.target_accuracy is not None:
            hit = reached(history, cfg.target_accuracy)
            if hit:
                say(f"target validation accuracy {cfg.target_accuracy:.2%} reached in epoch {hit['epoch']} "
                    f"after {train_seconds(history[: hit['epoch']]):.1f} s of training")
            else:
                say(f"target validation accuracy {cfg.target_accuracy:.2%} not reached in {len(history)} epochs")
        calibrate(out, data, console)
        if cfg.line_reader:
            from .lines import train_for_run

            train_for_run(out, data, cfg, say)
        metrics = None
        if evaluate:
            from .evaluate import evaluate as evaluate_model

            metrics = evaluate_model(out, data=data)
            say(f"test accuracy {metrics['test_accuracy']:.2%}, test loss {metrics['test_loss']:.4f} "
                f"({metrics['misclassified']} of {metrics['n']:,} misclassified)")
        from .report import write_report

        say(f"report: {write_report(out)}")
        for log in loggers:
            log.finish(metrics)
    return Run(out)


def calibrate(model, data, console=None) -> dict:
    """Fit the temperature of a run's model on its validation split and store it; says what changed."""
    from .calibration import calibrate as fit

    c = fit(model, data)
    if console is not None:
        photos = (f", the {c['val_photo_digits']:,} digits and {c['val_photo_non_digits']:,} non-digits cut out of "
                  f"photos of them and {c['val_outliers']:,} made non-digits" if "val_photo_digits" in c else "")
        console.print(f"temperature {c['temperature']:.3f} fitted on {c['val_images']:,} validation images{photos}: "
                      f"ECE {c['val_ece_before']:.2%} -> {c['val_ece_after']:.2%}, "
                      f"NLL {c['val_nll_before']:.4f} -> {c['val_nll_after']:.4f}")
    return c


def _data(name: str, data, data_dir, console):
    from .data import load

    if data is not None and data.name == name:
        return data
    return load(name, data_dir, progress=console is not None)


def _trackers(mlflow: str | None, tensorboard: bool, out: Path, cfg: TrainConfig) -> list:
    from .tracking import MLflowLog, TensorBoardLog

    loggers = [MLflowLog(mlflow, out, asdict(cfg))] if mlflow else []
    return loggers + ([TensorBoardLog(out, asdict(cfg))] if tensorboard else [])
