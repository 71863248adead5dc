"""Hyperparameter search on Optuna: each trial a normal run folder, scored on the validation split only.

The search space comes from the options' own declarations (config.py, models.ARGS): every setting the
recipe gives a learning rate, weight decay, width or augmentation strength is searched around that
value, within the option's declared range. Each trial runs `pipeline.run` (as `mnistlab train` does,
without the test set) into runs/sweep-NAME/trial-K and reports its validation loss after every epoch,
so that Optuna's median pruner stops hopeless trials early. Trials live in an Optuna storage: a SQLite
file under runs/ by default, or a PostgreSQL database that workers on several machines share by
running the same command. Optuna is imported only when a sweep runs (`pip install 'mnistlab[sweep]'`).
"""

import base64
import io
import math
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, fields
from html import escape
from pathlib import Path

from .config import AUGMENTATION, ConfigError, Option, TrainConfig, spec
from .errors import MnistlabError
from .runfolder import read_dict, write_json

DEFAULT_STORAGE = "sqlite:///runs/sweeps.db"
HEARTBEAT = 30  # seconds between a running trial's heartbeats; a trial silent for 4 of them is marked failed
SETTINGS = "mnistlab.settings"  # the study's fixed config and search space, so that joining workers agree

# The default search space, relative to the recipe's value v and clipped to the option's declared range.
# Multiplicative knobs on a log scale; augmentation strengths from none to twice the recipe's.
# Label smoothing is left out: it changes the plain validation loss the pruner compares across trials.
AROUND = {"lr": (0.1, 3.0, True), "weight_decay": (0.1, 10.0, True), "width": (0.5, 2.0, True),
          **{name: (0.0, 2.0, False) for name in AUGMENTATION}}
# Options that make no sense to search (they change what is measured, or where it runs).
NOT_SEARCHED = ("recipe", "model_args", "dataset", "device", "val_fraction", "target_accuracy", "train_limit")


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise MnistlabError("mnistlab sweep needs Optuna: pip install 'mnistlab[sweep]'") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours to print (failures: the CLI)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --- The search space ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched option: a range (`low`..`high`, `log` scale) or a list of `choices`."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None
    integer: bool = False

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def __str__(self) -> str:
        if self.choices is not None:
            return ",".join(map(str, self.choices))
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")


def declaration(name: str) -> Option:
    """The declared Option of a searchable name: a TrainConfig field or a model argument."""
    from .models import ARGS

    if name in ARGS:
        return ARGS[name]
    if name in {f.name for f in fields(TrainConfig)} - set(NOT_SEARCHED):
        return spec(TrainConfig, name)
    names = sorted({f.name for f in fields(TrainConfig)} - set(NOT_SEARCHED) | set(ARGS))
    raise ConfigError(f"--param: unknown option {name!r}; searchable: {', '.join(names)}")


def current(base: TrainConfig, name: str):
    """The base config's value of an option or model argument (the model's own default if not given)."""
    import inspect

    from .models import ARGS, MODELS

    if name not in ARGS:
        return getattr(base, name)
    if name in base.model_args:
        return base.model_args[name]
    p = inspect.signature(MODELS[base.model]).parameters.get(name)
    return None if p is None else p.default


def around(name: str, value, opt: Option) -> Param | None:
    """The default range of `name` around the recipe's `value` (None: not searched by default)."""
    if name not in AROUND or value is None or isinstance(value, bool) or value <= 0:
        return None
    low, high, log = AROUND[name]
    lo, hi = value * low, value * high
    if opt.min is not None:
        lo = max(lo, opt.min)
    if opt.max is not None:
        hi = min(hi, opt.max if not opt.max_open else opt.max * 0.999)
    if opt.type is int:
        lo, hi = max(1, math.ceil(lo)), math.floor(hi)
    return Param(name, lo, hi, log, integer=opt.type is int) if lo < hi else None


def parse_param(text: str, base: TrainConfig) -> Param:
    """`--param` text -> Param, checked against the option's declaration:
    NAME=LOW:HIGH[:log] (a range), NAME=A,B,... (choices) or NAME (its declared choices, or its default range)."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    opt = declaration(name)
    bad = f"--param {text!r}: expected NAME=LOW:HIGH[:log], NAME=A,B,... or NAME"
    if not sep:
        if opt.type is bool:
            return Param(name, choices=(False, True))
        if opt.choices is not None:
            return Param(name, choices=tuple(opt.choices))
        p = around(name, current(base, name), opt)
        if p is None:
            raise ConfigError(f"--param {name}: no default range (the recipe leaves it at "
                              f"{current(base, name)!r}); give one, e.g. {name}=LOW:HIGH")
        return p
    parts = value.split(":")
    if ":" in value:
        if len(parts) not in (2, 3) or len(parts) == 3 and parts[2] != "log" or opt.type not in (int, float):
            raise ConfigError(bad)
        low, high = (opt.parse(name, part.strip()) for part in parts[:2])
        log = len(parts) == 3
        if not low < high:
            raise ConfigError(f"--param {text!r}: the low end must be below the high end")
        if log and low <= 0:
            raise ConfigError(f"--param {text!r}: a log range must start above 0")
        return Param(name, low, high, log, integer=opt.type is int)
    items = [v.strip() for v in value.split(",")]
    if len(items) < 2 or not all(items):
        raise ConfigError(bad + " (two choices or more; to fix an option, give it as --" + name.replace("_", "-")
                          + " VALUE)")
    if opt.type is bool:
        table = {"true": True, "false": False}
        if any(v.lower() not in table for v in items):
            raise ConfigError(f"--param {text!r}: {name} takes true or false")
        return Param(name, choices=tuple(table[v.lower()] for v in items))
    return Param(name, choices=tuple(opt.parse(name, v) for v in items))


def search_space(base: TrainConfig, params=(), fixed=()) -> dict[str, Param]:
    """The searched options: those of `params` (--param texts), or without any, every option the base
    config sets that has a default range; options in `fixed` (given on the command line) are not searched."""
    from .train import check

    check(base)  # the model and data set exist, the fixed model arguments fit the model
    space = {}
    for text in params:
        p = parse_param(text, base)
        if p.name in fixed:
            raise ConfigError(f"--param {p.name}: also fixed by --{p.name.replace('_', '-')}; give one of them")
        space[p.name] = p
    if not params:
        for name in AROUND:
            p = None if name in fixed else around(name, current(base, name), declaration(name))
            if p is not None:
                space[name] = p
    if not space:
        raise ConfigError("nothing to search: the recipe sets none of " + ", ".join(AROUND) + "; add --param")
    for p in space.values():  # every choice must make a valid config (a model that exists, ...)
        for value in p.choices or (p.low, p.high):
            trial_config(base, {p.name: value})
    return space


def trial_config(base: TrainConfig, values: dict) -> TrainConfig:
    """The base config with a trial's values (model arguments go into model_args), checked."""
    from .models import ARGS
    from .train import check

    args = {k: v for k, v in values.items() if k in ARGS}
    options = {k: v for k, v in values.items() if k not in ARGS}
    cfg = TrainConfig(**{**asdict(base), **options, "model_args": {**base.model_args, **args}})
    check(cfg)
    return cfg


# --- Storage and study -----------------------------------------------------------------------------


def _redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(url: str | None = None):
    """An Optuna RDB storage (SQLite or PostgreSQL) with heartbeats: a trial whose process died is marked
    failed by the next worker, and retried once with the same settings."""
    optuna = _require_optuna()
    url = url or DEFAULT_STORAGE
    engine = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}  # workers sharing the file wait for each other's writes
    elif url.startswith(("postgresql", "postgres:")):
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the sweep extra installs psycopg2.
    driver_url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)
    from sqlalchemy.exc import DBAPIError

    try:
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(
                    driver_url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT, grace_period=4 * HEARTBEAT,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
            except DBAPIError as e:  # workers starting together on an empty database both create its tables
                if attempt == 2 or not re.search(r"already exists|unique|duplicate key|locked", str(e), re.I):
                    raise
                time.sleep(1 + attempt)
    except ModuleNotFoundError as e:
        raise MnistlabError(f"storage {_redacted(url)} needs the Python module {e.name}: "
                            "pip install 'mnistlab[sweep]'") from None
    except Exception as e:  # SQLAlchemy raises several unrelated types for a bad URL or an unreachable server
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise MnistlabError(f"storage {_redacted(url)}: {first.strip()}") from None


def open_study(name: str, storage, settings: dict):
    """Create the study, or join it if it exists; a study made with other settings is refused."""
    optuna = _require_optuna()
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    saved = study.user_attrs.get(SETTINGS)
    if saved is None:
        study.set_user_attr(SETTINGS, settings)
    elif saved != settings:
        diff = [k for k in sorted(set(saved["config"]) | set(settings["config"]))
                if saved["config"].get(k) != settings["config"].get(k)]
        what = f"options {', '.join(diff)}" if diff else f"search space {saved['space']}"
        raise MnistlabError(f"study {name!r} was started with other settings ({what} differ); "
                            "run it with the same options, or name another --study")
    return study


def load_study(name: str, storage):
    optuna = _require_optuna()
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise MnistlabError(f"no study {name!r} in this storage; it has: {', '.join(names) or 'none'}") from None


def folder(name: str, root="runs") -> Path:
    return Path(root) / f"sweep-{name}"


# --- Running trials ---------------------------------------------------------------------------------


class Pruning:
    """A training logger (see tracking.py) that reports each epoch's validation loss to the trial and
    stops the run, by raising TrialPruned after the epoch's state is saved, when the pruner says so."""

    def __init__(self, trial):
        self.trial, self.best = trial, 0.0

    def epoch(self, row: dict):
        import optuna

        self.best = max(self.best, row["val_accuracy"])
        self.trial.set_user_attr("val_accuracy", self.best)
        self.trial.set_user_attr("epochs", row["epoch"])
        self.trial.report(row["val_loss"], row["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} (val_loss {row['val_loss']:.4f})")

    def finish(self, metrics):
        pass


class Surplus(Exception):
    """Raised in a trial that is not needed: other workers already run or ran the trials asked for."""


def objective(base: TrainConfig, space: dict, sweep_dir: Path, data, trials: int):
    """Optuna's objective: one run through `pipeline.run` (no test set), scored by the validation error
    of the kept epoch, 1 - val_accuracy (minimised, as the validation loss it reports is)."""

    def run_trial(trial) -> float:
        import optuna

        from .pipeline import run

        # Two workers may both see one trial missing and both start one: the later number stands down
        # (it is closed as failed, marked surplus, and left out of the results).
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
        if sum(t.number < trial.number for t in trial.study.get_trials(deepcopy=False, states=states)) >= trials:
            trial.set_user_attr("surplus", True)
            raise Surplus
        values = {name: p.suggest(trial) for name, p in space.items()}
        cfg = trial_config(base, values)
        out = sweep_dir / f"trial-{trial.number}"
        for key, value in dict(run=str(out.resolve()), host=socket.gethostname(), pid=os.getpid(),
                               config=asdict(cfg)).items():
            trial.set_user_attr(key, value)
        try:
            result = run(cfg, out, data=data, evaluate=False, loggers=[Pruning(trial)])
        except MnistlabError as e:
            if "diverged" not in str(e):
                raise
            raise optuna.TrialPruned(str(e)) from None  # a learning rate too high: hopeless, like a pruned trial
        best = result.best_epoch
        trial.set_user_attr("val_accuracy", best["val_accuracy"])
        trial.set_user_attr("seconds", result.train_seconds)
        return 1.0 - best["val_accuracy"]

    return run_trial


def counted(study) -> int:
    """Trials that count towards --trials: finished (complete or pruned) or running now. Failed ones
    (a crash, Ctrl-C) do not: a rerun makes up for them."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def parse_duration(text) -> float | None:
    """'90', '90s', '30m', '2h' -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m or float(m[1]) <= 0:
        raise ConfigError(f"--timeout must be a duration such as 90s, 30m or 2h, got {text!r}")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]]


def sweep(base: TrainConfig, trials: int, space: dict, name: str, storage=None, root="runs", data=None,
          data_dir=None, timeout: float | None = None, say=None, pruner=None) -> dict:
    """Run trials of `space` on `base` in study `name` until the study holds `trials` finished or running
    trials (other workers' included) or `timeout` seconds have passed. Returns the summary (see `summary`)."""
    optuna = _require_optuna()
    from .data import load

    say = say or (lambda text: None)
    url = storage or DEFAULT_STORAGE
    rdb = open_storage(url)
    settings = {"config": asdict(base), "space": {k: str(p) for k, p in space.items()}}
    study = open_study(name, rdb, settings)
    if pruner is not None:
        study.pruner = pruner
    data = data if data is not None and data.name == base.dataset else load(base.dataset, data_dir, progress=False)
    sweep_dir = folder(name, root)
    say(f"study {name!r} in {_redacted(url)}: {counted(study)} of {trials} trials so far; searching "
        + "  ".join(f"{k}={p}" for k, p in space.items()))

    def tell(study, t):
        say(trial_line(t))

    deadline = None if timeout is None else time.monotonic() + timeout
    run_trial = objective(base, space, sweep_dir, data, trials)
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is failed (and retried) first
        if counted(study) >= trials or deadline is not None and time.monotonic() >= deadline:
            break
        try:
            study.optimize(run_trial, n_trials=1, callbacks=[tell])
        except Surplus:
            break
    return summary(study)


def trial_line(t) -> str:
    """One fixed-format line per finished trial."""
    a = t.user_attrs
    params = "  ".join(f"{k}={value_text(v)}" for k, v in t.params.items())
    acc = f"val_accuracy {a['val_accuracy']:.2%}" if "val_accuracy" in a else "no epoch finished"
    return f"trial {t.number:3d}  {t.state.name.lower():8}  {acc}  epochs {a.get('epochs', 0)}  {params}"


def summary(study) -> dict:
    """The study's trials as plain rows, best first: completed by validation accuracy, then pruned, then
    failed or running. The best is the completed trial with the highest validation accuracy."""
    from optuna.trial import TrialState

    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3,
             TrialState.FAIL: 4}
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if a.get("surplus"):
            continue
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else None
        rows.append(dict(number=t.number, state=t.state.name.lower(), val_accuracy=a.get("val_accuracy"),
                         epochs=a.get("epochs"), seconds=seconds, params=dict(t.params), run=a.get("run"),
                         host=a.get("host"), pid=a.get("pid"), config=a.get("config"), _order=order[t.state]))
    rows.sort(key=lambda r: (r.pop("_order"), -(r["val_accuracy"] or 0), r["number"]))
    best = rows[0] if rows and rows[0]["state"] == "complete" else None
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")}
    return dict(study=study.study_name, trials=rows, best=best, counts=counts)


# --- Results ----------------------------------------------------------------------------------------

BEST_CONFIG = "best.json"
PAGE = "sweep.html"


def show(name: str, storage=None, root="runs", data=None, data_dir=None) -> dict:
    """The study's summary, with the test accuracy of the best trial only (evaluated once, on the
    machine that holds its run folder, and kept in the study); writes runs/sweep-NAME/best.json (its
    config, for `mnistlab train --config`) and sweep.html (the table and Optuna's plots)."""
    study = load_study(name, open_storage(storage))
    s = summary(study)
    sweep_dir = folder(name, root)
    best = s["best"]
    if best is not None:
        key = f"test_accuracy.trial-{best['number']}"
        best["test_accuracy"] = study.user_attrs.get(key)
        run = Path(best["run"]) if best["run"] else None
        if best["test_accuracy"] is None and run is not None and run.is_dir():
            metrics = read_dict(run / "metrics.json")
            if metrics is None:
                from .api import evaluate

                metrics = evaluate(run, data_dir=data_dir, data=data)
            best["test_accuracy"] = metrics["test_accuracy"]
            study.set_user_attr(key, best["test_accuracy"])
        write_json(sweep_dir / BEST_CONFIG, best["config"])
        s["best_config"] = str(sweep_dir / BEST_CONFIG)
    s["page"] = str(write_page(study, s, sweep_dir / PAGE))
    return s


def _png(ax) -> str:
    import matplotlib.pyplot as plt

    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(study) -> list[tuple[str, str | None, str]]:
    """Optuna's standard plots as (title, base64 PNG or None, note); a plot the study cannot have yet
    (too few finished trials) is None with the reason."""
    import matplotlib

    from . import plots as _backend  # noqa: F401  (selects matplotlib's file backend outside notebooks)

    _require_optuna()
    from optuna.visualization import matplotlib as vis

    out = []
    with matplotlib.rc_context():  # Optuna switches pyplot to its ggplot style: keep that to these figures
        for title, draw in (("Optimisation history (validation error, lower is better)",
                             vis.plot_optimization_history),
                            ("Parameter importances (fANOVA)", vis.plot_param_importances),
                            ("Parallel coordinates", vis.plot_parallel_coordinate),
                            ("Validation loss per epoch (what the pruner sees)", vis.plot_intermediate_values)):
            try:
                out.append((title, _png(draw(study)), ""))
            except Exception as e:  # Optuna refuses plots that need more completed trials or parameters
                out.append((title, None, str(e).splitlines()[0] if str(e) else type(e).__name__))
    return out


def write_page(study, s: dict, path: Path) -> Path:
    """sweep.html: one self-contained page (PNG figures inline, no scripts, nothing fetched)."""
    from .files import write_text
    from .report import CSS, _table

    best = s["best"]
    names = sorted({k for r in s["trials"] for k in r["params"]})
    rows = [[r["number"], r["state"], percent(r["val_accuracy"]),
             percent(r.get("test_accuracy")) if r is best else "", r["epochs"] or "",
             "" if r["seconds"] is None else f"{r['seconds']:.0f}"] + [value_text(r["params"].get(k)) for k in names]
            for r in s["trials"]]
    counts = ", ".join(f"{n} {state}" for state, n in s["counts"].items() if n)
    head = (f"<h1>Sweep {escape(s['study'])}</h1><p class='sub'>{len(s['trials'])} trials ({escape(counts)}); "
            "chosen by validation accuracy; test accuracy of the best trial only.</p>")
    if best:
        head += (f"<p>Best: trial {best['number']}, validation accuracy {percent(best['val_accuracy'])}"
                 + (f", test accuracy {percent(best['test_accuracy'])}" if best.get("test_accuracy") else "")
                 + f". Train it again with <code>mnistlab train --config {escape(BEST_CONFIG)}</code>.</p>")
    table = _table(["trial", "state", "val accuracy", "test accuracy", "epochs", "seconds"] + names, rows,
                   ["best" if r is best else "" for r in s["trials"]])
    figures = "".join(f"<h2>{escape(t)}</h2>" + (f'<img src="data:image/png;base64,{png}" alt="{escape(t)}">'
                                                if png else f"<p class='note'>{escape(note)}</p>")
                      for t, png, note in plots(study))
    write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {escape(s['study'])}</title>"
                     f"<style>{CSS}</style></head><body>{head}<h2>Trials</h2>{table}{figures}</body></html>")
    return path


def percent(v) -> str:
    return "" if v is None else f"{v:.2%}"


def value_text(v) -> str:
    return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
