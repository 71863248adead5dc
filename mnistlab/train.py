"""Training: one config dataclass and an explicit loop over tensors kept in memory.

A run folder gets config.json, history.json (one row per epoch), model.safetensors (the weights of
the best epoch on the validation split, see best_epoch), state.safetensors (what --resume needs),
curves.png and, when the run augments its data, augmented.png.
"""

import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint, distributed
from .augment import Augment
from .data import Data, get_spec, load, split_indices
from .errors import MnistlabError
from .files import write_text
from .models import MODELS, build, logits_of, pixels
from .recipes import RECIPES


@dataclass
class TrainConfig:
    """Every knob of a training run; defaults reproduce seed 000's Keras CNN (Adam, batch 128, 15 epochs,
    10% validation)."""

    recipe: str | None = None  # the preset these settings started from (see recipes.py)
    model: str = "cnn-small"
    model_args: dict = field(default_factory=dict)
    dataset: str = "mnist"
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw | sgd (Nesterov momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | onecycle | cosine: learning rate per step, see lr_factor
    warmup: float = 0.2  # fraction of the steps spent warming up (onecycle and cosine)
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, used for validation and kept
    rotate: float = 0.0  # augmentation strengths, see augment.Augment
    scale: float = 0.0
    shear: float = 0.0
    translate: float = 0.0
    elastic: float = 0.0
    light: float = 0.0
    noise: float = 0.0
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    target_accuracy: float | None = None  # stop once the validation accuracy reaches this
    val_fraction: float = 0.1
    stratify: bool = False
    standardize: bool = True  # standardise inputs with the training split's mean and std
    patience: int | None = None  # early stopping: epochs without a better epoch (see best_epoch) before stopping
    train_limit: int | None = None  # train on a seeded random subset of this many images
    seed: int = 0
    device: str = "auto"

    def check(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise MnistlabError("epochs, batch size and learning rate must be positive")
        if self.model not in MODELS:
            raise MnistlabError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        get_spec(self.dataset)
        pick_device(self.device)
        if self.optimizer not in OPTIMIZERS:
            raise MnistlabError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.patience is not None and self.patience < 1:
            raise MnistlabError("patience must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise MnistlabError(f"validation fraction must be between 0 and 1, got {self.val_fraction}")
        if self.train_limit is not None and self.train_limit < 1:
            raise MnistlabError("train limit must be at least 1")
        if self.schedule not in SCHEDULES:
            raise MnistlabError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup < 1 or not 0 <= self.label_smoothing < 1 or not 0 <= self.ema < 1:
            raise MnistlabError("warmup, label smoothing and ema must be in [0, 1)")
        if (min(self.rotate, self.scale, self.shear, self.translate, self.elastic, self.light, self.noise) < 0
                or self.scale >= 1 or self.light > 1 or self.noise >= 1):
            raise MnistlabError("augmentation strengths must be positive (scale and noise below 1, light at most 1)")
        if self.precision not in ("fp32", "bf16"):
            raise MnistlabError(f"unknown precision {self.precision!r}; use fp32 or bf16")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise MnistlabError(f"target accuracy must be in (0, 1], got {self.target_accuracy}")

    @property
    def augment(self) -> Augment:
        return Augment(self.rotate, self.scale, self.shear, self.translate, self.elastic, light=self.light,
                       noise=self.noise)

    @classmethod
    def from_recipe(cls, name: str | None, **overrides) -> "TrainConfig":
        """TrainConfig's defaults, then the recipe's settings, then `overrides`."""
        if name is not None and name not in RECIPES:
            raise MnistlabError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
        settings = RECIPES[name].settings if name else {}
        model_args = {**settings.get("model_args", {}), **overrides.get("model_args", {})}
        return cls(**{**settings, **overrides, "model_args": model_args, "recipe": name})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# fused=True: one kernel for all parameters; on CPU it cuts Adam's step from 2.5 ms to 0.4 ms for cnn-small.
OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=True),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, fused=True),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=0.9, nesterov=True,
                                             weight_decay=c.weight_decay, fused=True),
}

SCHEDULES = ("constant", "onecycle", "cosine")


def lr_factor(schedule: str, step: int, total: int, warmup: float) -> float:
    """Learning-rate multiplier at `step` of `total`: constant; or a linear warm-up over the first
    `warmup` fraction of the steps, then a linear (onecycle, as in fast CIFAR trainers) or cosine
    decay to zero at the last step."""
    if schedule == "constant":
        return 1.0
    warm = warmup * total
    if step < warm:
        return (step + 1) / warm
    done = (step - warm) / max(total - warm, 1)
    return 1 - done if schedule == "onecycle" else 0.5 * (1 + math.cos(math.pi * done))


class EMA:
    """An exponential moving average of a model's weights (floating-point parameters and buffers).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates, as in TensorFlow's
    ExponentialMovingAverage, so that early averages are not dominated by the random initial weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.model, self.decay, self.updates = copy.deepcopy(model).eval(), decay, 0
        # (average, live) tensor pairs, looked up once: this runs after every training step.
        self.pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, new in self.pairs:
            if avg.is_floating_point():
                avg.lerp_(new, 1 - d)
            else:
                avg.copy_(new)


def pick_device(name: str = "auto") -> torch.device:
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise MnistlabError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    try:
        if kind == "cuda" and not torch.cuda.is_available() or kind == "mps" and not mps:
            raise RuntimeError
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):
        raise MnistlabError(f"device {name!r} is not available on this machine; use auto or cpu") from None
    return device


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}"


def check_run_dir(out_dir, resume: bool):
    """A new run must not overwrite a trained model; a resumed one needs its saved state, or at least
    its config (a run stopped in its first epoch starts again from the beginning)."""
    out_dir = Path(out_dir)
    if resume and not any((out_dir / f).exists() for f in (checkpoint.STATE_FILE, "config.json")):
        raise MnistlabError(f"{out_dir}: nothing to resume (no {checkpoint.STATE_FILE} or config.json)")
    if not resume and (out_dir / checkpoint.MODEL_FILE).exists():
        raise MnistlabError(f"{out_dir} already holds a trained model; use --resume or another --out")


def resumed_config(out_dir, epochs: int | None = None, device: str | None = None) -> TrainConfig:
    """A resumed run keeps its own config, except for the number of epochs (which may be extended;
    a schedule then stretches over the new total) and the device."""
    try:
        saved = TrainConfig.from_dict(json.loads((Path(out_dir) / "config.json").read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise MnistlabError(f"{out_dir}: cannot read the run's config.json ({e})") from None
    return TrainConfig(**{**asdict(saved), "epochs": epochs or saved.epochs, "device": device or saved.device})


def best_epoch(history: list[dict]) -> dict:
    """The history row whose weights a run keeps: highest validation accuracy, then lowest validation
    loss, then the earliest. Accuracy first, because label smoothing makes later, better epochs look
    worse by plain cross-entropy (their predictions are deliberately less confident)."""
    return max(history, key=lambda r: (r["val_accuracy"], -r["val_loss"]))


def evaluate_split(model, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on one split, in eval mode."""
    logits = logits_of(model, x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


class Progress:
    """One bar per epoch while it runs (on a terminal), then one fixed-format line, like Keras's."""

    def __init__(self, console, epochs: int, steps: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.console, self.epochs, self.steps = console, epochs, steps
        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.fields[stats]}"), console=console, transient=True,
                       disable=console is None or not console.is_terminal)

    def start(self, epoch: int):
        self.bar.start()
        self.task = self.bar.add_task(f"Epoch {epoch}/{self.epochs}", total=self.steps, stats="")

    def step(self, done: int, loss: float, acc: float):
        self.bar.update(self.task, completed=done, stats=f"loss {loss:.4f}  accuracy {acc:.4f}")

    def end(self, row: dict, best: bool):
        self.bar.remove_task(self.task)
        self.bar.stop()
        if self.console is not None:
            self.console.print(
                f"Epoch {row['epoch']}/{self.epochs}  {self.steps}/{self.steps}  {row['seconds']:.1f}s"
                f"  loss {row['loss']:.4f}  accuracy {row['accuracy']:.4f}"
                f"  val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}"
                + ("  [green]best[/]" if best else ""), highlight=False)


def train(cfg: TrainConfig, out_dir, data: Data | None = None, resume: bool = False, console=None,
          data_dir=None, loggers=()) -> list[dict]:
    """Train per `cfg`, writing into `out_dir`. Returns the history, one dict per epoch, which also goes
    to each of `loggers` (see tracking.py) as it is made.

    The test split is never touched here: model selection and early stopping use validation only.
    Under torchrun, every process runs this with the same arguments (see distributed.py).
    """
    cfg.check()
    check_run_dir(out_dir, resume)
    out_dir = Path(out_dir)
    state_path = out_dir / checkpoint.STATE_FILE
    if resume:
        cfg = resumed_config(out_dir, cfg.epochs, cfg.device)
        resume = state_path.exists()  # else it stopped before its first epoch ended: start that again
    device = pick_device(cfg.device)
    rank, world = distributed.setup(device)
    main = rank == 0  # only the main process prints and writes
    if not main:
        console = None
    torch.manual_seed(cfg.seed)
    if data is None or data.name != cfg.dataset:
        data = load(cfg.dataset, data_dir, progress=console is not None)

    train_idx, val_idx = split_indices(data.train_labels, cfg.val_fraction, cfg.seed, cfg.stratify)
    if cfg.train_limit:
        train_idx = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(cfg.seed))]
        train_idx = train_idx[: cfg.train_limit].sort().values
    # channels_last: oneDNN's fast layout for convolutions and pooling on CPU (2x faster steps for cnn-small).
    cl = torch.channels_last
    x_train = pixels(data.train_images[train_idx]).to(device, memory_format=cl)
    x_val = pixels(data.train_images[val_idx]).to(device, memory_format=cl)
    y_train, y_val = data.train_labels[train_idx].to(device), data.train_labels[val_idx].to(device)

    mean, std = (x_train.mean().item(), x_train.std().item()) if cfg.standardize else (0.0, 1.0)
    arch_args = {"num_classes": len(data.classes), **cfg.model_args}
    model = build(cfg.model, arch_args, mean, std).to(device, memory_format=cl)
    step_model = distributed.wrap(model, world)  # DistributedDataParallel under torchrun
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    augment = cfg.augment
    augment_rng = torch.Generator(device).manual_seed(cfg.seed + rank)
    meta = dict(seed=cfg.seed, config=asdict(cfg))

    history, partial = [], None
    if resume:
        info, extra = checkpoint.load_state(state_path, model, optimizer)
        history = info["history"]
        partial = info.get("in_progress")  # set when Ctrl-C stopped the run inside an epoch
        if "rng.augment" in extra:  # absent in states saved before augmentation existed
            augment_rng.set_state(extra["rng.augment"])
        if ema:
            ema.model.load_state_dict({k[4:]: v for k, v in extra.items() if k.startswith("ema.")})
            ema.updates = info["ema_updates"]
    elif main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "config.json", json.dumps(asdict(cfg), indent=2))
        if augment.active:
            save_augmented(x_train[:8].cpu(), y_train[:8].tolist(), augment, out_dir / "augmented.png")

    n, bs = len(x_train), cfg.batch_size
    steps = (n + bs - 1) // bs
    progress = Progress(console, cfg.epochs, steps)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    def save_state(in_progress: dict | None = None):
        extra = {"rng.augment": augment_rng.get_state()}
        if ema:
            extra |= {f"ema.{k}": v for k, v in ema.model.state_dict().items()}
        if in_progress:
            extra |= {"partial.loss_sum": loss_sum.reshape(1), "partial.correct": correct.reshape(1)}
        checkpoint.save_state(state_path, model, optimizer, extra,
                              dict(history=history, ema_updates=ema.updates if ema else 0, in_progress=in_progress))

    with Interrupt(enabled=world == 1) as interrupt:
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            if cfg.patience and history and history[-1]["epoch"] - best_epoch(history)["epoch"] >= cfg.patience:
                break
            if reached(history, cfg.target_accuracy):
                break
            progress.start(epoch)
            model.train()
            t0 = time.perf_counter()
            # The epoch's order depends on the seed and the epoch alone, so that every process draws the
            # same one and a resumed run continues it exactly.
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, first_step = 0, 0  # images this process has trained on this epoch; where the epoch starts
            if partial and partial["epoch"] == epoch:  # continue exactly where Ctrl-C stopped it
                loss_sum += extra["partial.loss_sum"].to(device)[0]
                correct += extra["partial.correct"].to(device)[0]
                seen, first_step, t0 = partial["seen"], partial["step"], t0 - partial["seconds"]
            for step in range(first_step, steps):
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * lr_factor(cfg.schedule, (epoch - 1) * steps + step, cfg.epochs * steps,
                                                     cfg.warmup)
                idx = perm[step * bs:(step + 1) * bs][rank::world]  # this process's shard of the global batch
                x, y = augment(x_train[idx], augment_rng), y_train[idx]
                with autocast:
                    logits = step_model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema:
                    ema.update()
                loss_sum += loss.detach() * len(idx)
                correct += (logits.argmax(1) == y).sum()
                seen += len(idx)
                if step % 20 == 0 and not progress.bar.disable:
                    progress.step(step + 1, loss_sum.item() / seen, correct.item() / seen)
                if interrupt.requested:  # Ctrl-C (single process only): save this step's state, then stop
                    save_state(dict(epoch=epoch, step=step + 1, seen=seen, seconds=time.perf_counter() - t0))
                    progress.bar.stop()
                    raise KeyboardInterrupt
            seconds = time.perf_counter() - t0
            loss_sum, correct = distributed.all_sum(loss_sum), distributed.all_sum(correct)
            if not torch.isfinite(loss_sum):
                raise MnistlabError(f"training diverged in epoch {epoch} (loss is not finite); lower the learning rate")
            kept = ema.model if ema else model
            val_loss, val_acc = evaluate_split(kept, x_val, y_val)
            row = dict(epoch=epoch, loss=loss_sum.item() / n, accuracy=correct.item() / n, val_loss=val_loss,
                       val_accuracy=val_acc, seconds=seconds, lr=optimizer.param_groups[0]["lr"])
            history.append(row)
            improved = best_epoch(history) is row
            if main:
                if improved:
                    best = dict(epoch=epoch, val_loss=val_loss, val_accuracy=val_acc)
                    checkpoint.save_model(out_dir / checkpoint.MODEL_FILE, kept, checkpoint.model_meta(
                        kept, cfg.model, arch_args, data.classes, cfg.dataset, metrics=best, **meta))
                # History first, then the state that points past it: a crash between the two loses nothing.
                write_text(out_dir / "history.json", json.dumps(history, indent=1))
                save_state()
                for log in loggers:
                    log.epoch(row)
            progress.end(row, improved)

    if main:
        from .plots import plot_curves, save_figure

        save_figure(plot_curves(history), out_dir / "curves.png")
    distributed.teardown()
    return history


class Interrupt:
    """Ctrl-C during training, deferred to the end of the current step so that the state saved then is
    whole; a second Ctrl-C stops at once. Only for a single process in the main thread, and only when
    SIGINT is not ignored; otherwise Ctrl-C behaves as usual."""

    def __init__(self, enabled: bool = True):
        self.requested = False
        self.previous = None
        if (enabled and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.requested and kind is None:  # pressed after the last step: the state is saved, so stop now
            raise KeyboardInterrupt


def save_augmented(x: torch.Tensor, labels: list, augment: Augment, path):
    """A picture of what augmentation does: each row one training image, then seven random warps of it."""
    from .plots import plot_grid, save_figure

    g = torch.Generator().manual_seed(0)
    views = torch.stack([x] + [augment(x, g) for _ in range(7)], 1)  # (8, 8, 1, 28, 28)
    images = (views[:, :, 0] * 255).round().to(torch.uint8).numpy()
    save_figure(plot_grid(images, [f"label {y}" for y in labels], "Augmented training images",
                          ["original"] + [""] * 7), path)


def reached(history: list[dict], target: float | None) -> dict | None:
    """The first epoch whose validation accuracy reached `target`, if any."""
    return next((r for r in history if target is not None and r["val_accuracy"] >= target), None)
