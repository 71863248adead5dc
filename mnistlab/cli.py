"""The `mnistlab` command: parses arguments and calls the package's functions, nothing more."""

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from .config import LIMIT, SEED, ConfigError, Option, TrainConfig
from .errors import MnistlabError, missing_extra
from .tracking import DEFAULT_MLFLOW_URI

POSITIVE, COUNT, PORT = Option("", int, 1), Option("", int, 0), Option("", int, 1, 65535)
PROBABILITY = Option("", float, 0, 1)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _model_arg(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _checked(name: str, spec):
    """argparse's `type` for an option: its declaration (config.Option) parses and checks the text."""
    def parse(text):
        try:
            return spec.parse(name, text)
        except ConfigError as e:  # argparse names the option itself
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{name} ")) from None

    parse.__name__ = spec.type.__name__  # argparse names the type in its own messages
    return parse


_positive, _count, _probability = _checked("", POSITIVE), _checked("", COUNT), _checked("", PROBABILITY)


def _add_train_options(p: argparse.ArgumentParser):
    """One option per TrainConfig field, built from its declaration (help, type, range). Options not
    given are left out of the namespace, so that a recipe's settings apply unless a flag overrides them."""
    for f in fields(TrainConfig):
        spec = f.metadata["option"]
        flag = "--" + f.name.replace("_", "-")
        shown = f.default if f.default is not MISSING and f.default not in (None, False) else None
        helptext = (spec.help + ("" if shown is None else f" (default: {shown})")).replace("%", "%%")
        kw = dict(default=argparse.SUPPRESS, help=helptext)
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", type=_model_arg, action="append", metavar="KEY=VALUE",
                           **kw)
        elif spec.type is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, type=_checked(f.name, spec), metavar=f.name.upper(), **kw)


def _port(text: str) -> int:
    try:
        return PORT.parse("port", text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}") from None


def _add_backend(p):
    p.add_argument("--backend", default="pytorch", choices=["pytorch", "onnxruntime"],
                   help="pytorch (default), or onnxruntime with the model.onnx that `mnistlab export` wrote")


def _workers(text: str) -> int | None:
    return None if text == "auto" else _positive(text)


def _add_force(p):
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it is a folder of other files, not an mnistlab run folder")


def _add_data_dir(p):
    p.add_argument("--data-dir", help="folder holding the data set's IDX files (default: $MNISTLAB_DATA, "
                                      "else ~/.cache/mnistlab/NAME, downloaded on first use)")


def _add_evaluate_options(p, default_out: str):
    _add_data_dir(p)
    p.add_argument("--out", help=f"folder for the results (default: {default_out})")
    p.add_argument("--limit", type=_checked("limit", LIMIT), help="evaluate only the first N test images")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    p.add_argument("--tta", action="store_true", help="average over one-pixel shifts (test-time augmentation)")
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write report.html")
    _add_force(p)
    p.set_defaults(func=cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnistlab", description="Train, judge and use handwritten-digit classifiers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("explore", help="look at a data set: shapes, class balance, samples, pixel statistics")
    p.add_argument("--dataset", default="mnist", help="data set name (default: mnist)")
    _add_data_dir(p)
    p.add_argument("--out", help="folder for the figures (default: runs/explore-DATASET)")
    _add_force(p)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("train", help="train a model, then evaluate it and write its report")
    _add_train_options(p)
    _add_data_dir(p)
    p.add_argument("--out", help="run folder (default: runs/TIMESTAMP-MODEL)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default: the newest run under runs/) from where it stopped")
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                   help="skip the test-set evaluation and report after training")
    p.add_argument("--mlflow", nargs="?", const=DEFAULT_MLFLOW_URI, metavar="URI",
                   help=f"also log to MLflow (default store: {DEFAULT_MLFLOW_URI}; needs mnistlab[tracking])")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files to RUN/tensorboard (needs mnistlab[tracking])")
    p.add_argument("--config", metavar="FILE", help="start from the settings in a JSON file (a run's config.json, "
                                                   "a sweep's best.json); options given as well override them")
    _add_force(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="hyperparameter search on Optuna: trials scored on validation accuracy")
    _add_train_options(p)  # given here, an option is fixed for every trial and not searched
    p.add_argument("--trials", type=_positive, default=20, help="trials in the study, all workers' (default: 20)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=LOW:HIGH[:log]|NAME=A,B|NAME",
                   help="search this option (repeatable); without any, the recipe's lr, weight decay, width and "
                        "augmentation, around its values within their declared ranges")
    p.add_argument("--timeout", help="start no trial after this long, e.g. 30m or 2h")
    p.add_argument("--study", help="study name (default: the recipe's name); workers with the same name and "
                                   "--storage share it")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/sweeps.db; postgresql://... "
                                     "for several machines)")
    p.add_argument("--dir", default="runs", help="trials go to DIR/sweep-STUDY/trial-K (default: runs)")
    p.add_argument("--show", metavar="STUDY", help="list the study's trials, best first; write best.json and "
                                                   "sweep.html into DIR/sweep-STUDY (runs no trial)")
    _add_data_dir(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("evaluate", help="test-set metrics, figures, metrics.json and probs.npy for a model")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    _add_evaluate_options(p, "the checkpoint's folder")

    p = sub.add_parser("ensemble", help="evaluate the mean of several models' probabilities on the test set")
    p.add_argument("models", nargs="+", metavar="RUN_OR_CHECKPOINT")
    _add_evaluate_options(p, "runs/TIMESTAMP-ensemble")

    p = sub.add_parser("report", help="write a run's self-contained HTML report")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", help="HTML file to write (default: RUN/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict",
                       help="read the digits in your own photos, scans and drawings (PNG, JPEG, WebP, AVIF, HEIC, BMP, TIFF)")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--single", action="store_true", help="each image holds one digit: read only the largest mark")
    p.add_argument("--min-confidence", type=_probability, default=0.9,
                   help="a digit read with a lower probability makes the reading 'unsure' (default: 0.9)")
    p.add_argument("--top", type=_positive, default=3, help="alternatives per digit in --json (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--debug", metavar="DIR", help="write per image the boxes found and rejected, and the 28x28 "
                                                   "images the model read")
    _add_backend(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("robustness", help="test error under MNIST-C's 15 corruptions, and how much of it is "
                                        "confidently wrong; adds it to the run's report")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--limit", type=_checked("limit", LIMIT), help="use only the first N test images")
    p.add_argument("--seed", type=_checked("seed", SEED), default=0,
                   help="seed of the random corruptions (default: 0)")
    p.add_argument("--no-report", dest="report", action="store_false", help="do not rewrite report.html")
    _add_data_dir(p)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("calibrate", help="fit a model's temperature on its validation split (train does this)")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    _add_data_dir(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("serve", help="serve a model: HTTP API, drawing page at /, Prometheus metrics")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    p.add_argument("--backend", default="auto", choices=["auto", "pytorch", "onnxruntime"],
                   help="auto (default: onnxruntime when installed, exporting the model to ONNX in the user cache "
                        "if it has no up-to-date model.onnx; else pytorch), pytorch or onnxruntime (with the "
                        "model.onnx that `mnistlab export` wrote)")
    p.add_argument("--max-body", type=_positive, default=8 << 20, help="largest request in bytes (default: 8 MiB)")
    p.add_argument("--max-pixels", type=_positive, default=4096 * 4096,
                   help="largest image in pixels, checked before decoding (default: 4096x4096)")
    p.add_argument("--max-batch", type=_positive, default=256, help="most images per request (default: 256)")
    p.add_argument("--max-total-pixels", type=_positive, default=2 * 4096 * 4096,
                   help="most pixels in one request's images together, checked before decoding (default: 2x4096x4096)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds for a request's body to arrive, else 408 (default: 30)")
    p.add_argument("--min-confidence", type=_probability, default=0.9,
                   help="a digit read with a lower probability makes the answer 'unsure' (default: 0.9)")
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="server processes sharing the port (default: auto, one per core)")
    p.add_argument("--threads", type=_positive,
                   help="inference threads, and requests worked on at once, per worker (default: one per core, "
                        "or 1 with several workers)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--docs", action="store_true",
                   help="serve the Swagger UI page at /docs (the browser loads its scripts from a CDN)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="export a model to ONNX (or torch.export .pt2), checked against PyTorch")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--format", default="onnx", choices=["onnx", "pt2"], help="onnx (default) or pt2")
    p.add_argument("--out", help="file to write (default: model.onnx or model.pt2 beside the checkpoint)")
    p.add_argument("--check-images", type=_count, default=1000,
                   help="test images to compare with PyTorch before writing (default: 1000; 0: no check)")
    _add_data_dir(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("runs", help="list the runs under runs/ as a table")
    p.add_argument("--dir", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--sort", help="column to sort by, e.g. test_accuracy (accuracies: best first)")
    for key in ("model", "dataset", "recipe", "name"):
        p.add_argument(f"--{key}", help=f"only runs whose {key} contains this text")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("compare", help="several runs' validation curves on one chart and their numbers side by side")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", default="runs/compare.png", help="chart to write (default: runs/compare.png)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("import-keras", help="turn a model saved by Keras (.h5, .json + weights .h5, .keras) into "
                                            "an mnistlab checkpoint")
    p.add_argument("file", metavar="FILE", help="model.save() .h5, to_json() .json, or Keras 3 .keras file")
    p.add_argument("--weights", help="the save_weights() .h5 file that goes with a .json architecture")
    p.add_argument("--out", help="run folder for the checkpoint (default: runs/keras-FILE_STEM)")
    _add_force(p)
    p.set_defaults(func=cmd_import_keras)

    p = sub.add_parser("models", help="list the models mnistlab can train")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("recipes", help="list the training presets for --recipe")
    p.set_defaults(func=cmd_recipes)
    return parser


def _console():
    from .api import console

    return console()


def cmd_explore(args):
    from rich.table import Table

    from . import api

    summary = api.explore(args.dataset, args.data_dir, args.out, args.force)
    console = _console()
    s, px = summary["shapes"], summary["pixels"]
    console.print(f"[bold]{summary['dataset']}[/]: train images {s['train_images']} {summary['dtypes']['images']}, "
                  f"labels {s['train_labels']}; test images {s['test_images']}, labels {s['test_labels']}")
    console.print(f"pixels: min {px['min']}, max {px['max']}, mean {px['mean']:.4f} and std {px['std']:.4f} "
                  f"(scaled to [0, 1]), {px['fraction_zero']:.1%} zero")
    table = Table("class", "train", "test", title="Images per class")
    for i, c in enumerate(summary["classes"]):
        table.add_row(c, f"{summary['counts']['train'][i]:,}", f"{summary['counts']['test'][i]:,}")
    console.print(table)
    console.print(f"figures in {args.out or f'runs/explore-{args.dataset}'}/")


def _given(args) -> dict:
    """The training options given on the command line (model_args as a dict)."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "model_args" in given:
        given["model_args"] = dict(given["model_args"])
    return given


def cmd_train(args):
    from .pipeline import configure, run
    from .runfolder import newest_run

    given = _given(args)
    if args.config:
        given = _from_file(args.config, given)
    if args.resume:
        args.out = args.out or newest_run()
    cfg = configure(given.pop("recipe", None), args.out if args.resume else None, **given)
    try:
        run(cfg, args.out, data_dir=args.data_dir, resume=args.resume, evaluate=args.evaluate, console=_console(),
            mlflow=args.mlflow, tensorboard=args.tensorboard, force=args.force)
    except KeyboardInterrupt:
        print(f"mnistlab: interrupted; {args.out} holds the training state as it stopped: continue with "
              f"`mnistlab train --resume --out {args.out}`", file=sys.stderr)
        return 130


def _from_file(path, given: dict) -> dict:
    """A config file's settings with the options given on the command line over them."""
    from .runfolder import read_json

    if "recipe" in given:
        raise ConfigError("give --recipe or --config, not both")
    if not Path(path).is_file():
        raise MnistlabError(f"{path}: no such config file")
    saved = TrainConfig.from_dict(read_json(path), source=str(path)).to_dict()
    return {**saved, **given, "model_args": {**saved["model_args"], **given.get("model_args", {})}}


def cmd_sweep(args):
    from rich.table import Table

    from . import api
    from .sweep import percent, value_text

    if args.show:
        s = api.sweep(show=args.show, storage=args.storage, dir=args.dir, data_dir=args.data_dir)
    else:
        given = _given(args)
        s = api.sweep(given.pop("recipe", None), args.trials, args.param, args.timeout, args.study, args.storage,
                      args.data_dir, args.dir, **given)
    names = sorted({k for r in s["trials"] for k in r["params"]})
    table = Table("trial", "state", "val acc", "test acc", "epochs", "s", *names,
                  title=f"study {s['study']}: " + ", ".join(f"{n} {k}" for k, n in s["counts"].items() if n))
    for r in s["trials"]:
        table.add_row(str(r["number"]), r["state"], percent(r["val_accuracy"]), percent(r.get("test_accuracy")),
                      str(r["epochs"] or ""), "" if r["seconds"] is None else f"{r['seconds']:.0f}",
                      *(value_text(r["params"].get(k)) for k in names))
    console = _console()
    console.print(table)
    best = s["best"]
    if best is None:
        console.print("no completed trial yet")
    elif args.show:
        where = "" if best.get("test_accuracy") is not None else f" (test accuracy: its run folder {best['run']} " \
                                                                   "is on another machine)"
        console.print(f"best: trial {best['number']}, val accuracy {best['val_accuracy']:.2%}{where}; "
                      f"settings in {s['best_config']} (mnistlab train --config {s['best_config']}); "
                      f"plots in {s['page']}", markup=False)
    else:
        console.print(f"best: trial {best['number']}, val accuracy {best['val_accuracy']:.2%}, {best['run']}; "
                      f"`mnistlab sweep --show {s['study']}` for its test accuracy and the plots", markup=False)


def cmd_robustness(args):
    from rich.table import Table

    from . import api

    r = api.robustness(args.model, args.data_dir, args.seed, args.limit, args.report)
    sure = f"confidently wrong (p >= {r['min_confidence']:g})"
    title = f"{r['model']} on MNIST-C corruptions ({r['n']:,} test images)"
    table = Table("corruption", "test error", sure, title=title)
    table.add_row("clean", f"{r['clean_error']:.2%}", f"{r['clean_confidently_wrong']:.2%}")
    for name, e in r["errors"].items():
        table.add_row(name, f"{e:.2%}", f"{r['confidently_wrong'][name]:.2%}")
    table.add_row("[bold]mean corruption error[/]", f"[bold]{r['mean_corruption_error']:.2%}[/]",
                  f"[bold]{r['mean_confidently_wrong']:.2%}[/]")
    console = _console()
    console.print(table)
    if "report" in r:
        console.print(f"report: {r['report']}")


def cmd_calibrate(args):
    from . import api

    api.calibrate(args.model, args.data_dir, quiet=False)


def cmd_evaluate(args):
    from rich.table import Table

    from . import api

    console = _console()
    options = dict(data_dir=args.data_dir, out=args.out, limit=args.limit, device=args.device, tta=args.tta,
                   report=args.report, force=args.force)
    if args.command == "ensemble":
        m = api.ensemble(args.models, **options)
        for member in m["members"]:
            console.print(f"member {member['checkpoint']}: test accuracy {member['test_accuracy']:.2%}")
    else:
        m = api.evaluate(args.model, **options)
    macro = "n/a" if m["auroc_macro"] is None else f"{m['auroc_macro']:.5f}"  # n/a: no class both seen and unseen
    console.print(f"test accuracy {m['test_accuracy']:.2%}  top-2 {m['top2_accuracy']:.2%}  "
                  f"loss {m['test_loss']:.4f}  AUROC macro {macro} micro {m['auroc_micro']:.5f}  "
                  f"({m['misclassified']} of {m['n']:,} misclassified)")
    table = Table("class", "precision", "recall", "F1", "support", title="Classification report")
    report = m["classification_report"]
    for name in list(m["auroc"]) + ["macro avg", "weighted avg"]:
        r = report[name]
        table.add_row(name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1-score']:.4f}", f"{r['support']:,}")
    console.print(table)
    pairs = ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})" for p in m["most_confused"][:5])
    console.print(f"most confused: {pairs or 'none'}")
    console.print(f"results in {m['out_dir']}/")
    if args.report:
        console.print(f"report: {Path(m['out_dir']) / 'report.html'}")


def cmd_report(args):
    from . import api

    print(f"report: {api.report(args.run, args.out)}")


def cmd_predict(args):
    from .export import open_model
    from .predict import read_files

    model = open_model(args.model, args.backend)
    results = read_files(model, args.images, args.single, args.min_confidence, args.top, args.debug)
    for r in results:
        if "error" in r:
            print(f"mnistlab: error: {r['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" not in r:
                print(f"{r['file']}: {describe(r)}")
    if args.debug:
        print(f"debug pictures in {args.debug}/", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


def describe(reading: dict) -> str:
    """One line for a reading: "4071 (96.2%)", "no digit" or "unsure: maybe 7 (43.0%)"; the lines of a
    page of numbers with " / " between them ("12 / 345 (91.0%)")."""
    if reading["status"] == "no_digit":
        return "no digit"
    text = (reading["text"] or reading["guess"]).replace("\n", " / ")
    if reading["status"] == "unsure":
        return f"unsure: maybe {text} ({reading['confidence']:.1%})"
    return f"{text} ({reading['confidence']:.1%})"


def cmd_serve(args):
    from .serve import Limits, serve

    if not 0 < args.body_timeout < float("inf"):
        raise MnistlabError(f"--body-timeout must be a positive number of seconds, got {args.body_timeout}")
    limits = Limits(max_body=args.max_body, max_pixels=args.max_pixels, max_batch=args.max_batch,
                    min_confidence=args.min_confidence, max_total_pixels=args.max_total_pixels,
                    body_timeout=args.body_timeout)
    serve(args.model, args.backend, args.host, args.port, limits, args.workers, args.threads, args.access_log,
          args.docs)


def cmd_export(args):
    from . import api

    out, diff, n = api.export_checked(args.model, args.out, args.format, args.check_images, args.data_dir)
    if diff is None:
        print(f"wrote {out} (not checked against PyTorch)")
    else:
        print(f"wrote {out}: largest difference from PyTorch on {n:,} test images {diff:.1e}")


def _runs_table(rows, title):
    from rich.table import Table

    table = Table("run", "data set", "model", "params", "epochs", "train s", "best val acc", "test acc", title=title)

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        model = r["model"] or "-"
        table.add_row(r["name"], r["dataset"] or "-", model + (f" ({r['recipe']})" if r["recipe"] else ""),
                      fmt(r["params"], ","), fmt(r["epochs"], "d"), fmt(r["train_seconds"], ".1f"),
                      fmt(r["val_accuracy"], ".2%"), fmt(r["test_accuracy"], ".2%"))
    return table


def cmd_runs(args):
    from . import api

    def warn(message):
        print(f"mnistlab: warning: {message}", file=sys.stderr)

    rows = api.runs(args.dir, args.sort, warn, model=args.model, dataset=args.dataset, recipe=args.recipe,
                    name=args.name)
    _console().print(_runs_table(rows, f"{len(rows)} run{'s' * (len(rows) != 1)} in {args.dir}/"))


def cmd_compare(args):
    from . import api

    rows, chart = api.compare(args.runs, args.out)
    console = _console()
    console.print(_runs_table(rows, "Runs compared"))
    if chart:
        console.print(f"curves: {chart}")


def cmd_import_keras(args):
    from .checkpoint import read_meta
    from . import api

    path = api.import_keras(args.file, args.weights, args.out, args.force)
    meta = read_meta(path)
    layers = " ".join(s["kind"] for s in meta["model"]["args"]["layers"])
    print(f"imported {args.file}: {meta['model']['params']:,} parameters ({layers}), input x/255 -> {path}")


def cmd_models(args):
    from . import api

    for name, (params, description) in api.list_models().items():
        print(f"{name:10} {params:>10,} params  {description}")


def cmd_recipes(args):
    from . import api

    for name, recipe in api.list_recipes().items():
        print(f"{name:9} {recipe.summary}")
        print(" " * 10 + "  ".join(f"{k}={json.dumps(v)}" for k, v in recipe.settings.items()))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except ConfigError as e:  # a value outside its option's range: a usage error, like argparse's
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return 2
    except MnistlabError as e:
        print(f"mnistlab: error: {e}", file=sys.stderr)
    except ModuleNotFoundError as e:  # an optional part that is not installed
        print(f"mnistlab: error: {missing_extra(e)}", file=sys.stderr)
    except KeyboardInterrupt:
        hint = "; the trial under way is marked failed: run the same command to continue the study" \
            if args.command == "sweep" else ""
        print(f"mnistlab: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (`head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # disk full, permission denied, ...: the user's environment, not a bug
        print(f"mnistlab: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
