"""Training: an explicit loop over tensors kept in memory.

`train` runs it: `setup` builds the training state (data on the device, model, optimiser, weight
average, augmentation RNG, resumed if asked), `train_epoch` runs one epoch's steps, and the loop
between them validates, keeps the best weights and saves the state after every epoch. The run
folder's files are named in runfolder.py; the options are declared in config.py.
"""

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint, distributed, glyphs, outliers, photocrops
from .augment import Augment
from .config import ConfigError, TrainConfig
from .data import Data, get_spec, load, split_indices
from .errors import MnistlabError
from .models import build, check_args, logits_of, pixels
from .runfolder import AUGMENTED, CONFIG, CURVES, HISTORY, MODEL, STATE, best_epoch, reached, read_json, write_json

__all__ = ["TrainConfig", "train", "setup", "train_epoch", "best_epoch", "reached"]


# fused=True: one kernel for all parameters rather than one per tensor, several times faster on CPU.
OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=True),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, fused=True),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=0.9, nesterov=True,
                                             weight_decay=c.weight_decay, fused=True),
}

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


def precision(name: str, device: torch.device) -> tuple[str, str]:
    """The precision `name` ("fp32", "bf16" or "auto") comes to on `device`, and why. bf16 autocast
    pays only where the hardware has bf16 arithmetic: on a CPU without AVX512-BF16 or AMX (an AVX2-only
    AMD EPYC, say) oneDNN emulates it and an epoch took about 10 times as long as in fp32."""
    if name != "auto":
        return name, "as asked"
    if device.type == "cuda":
        return ("bf16", "the GPU has bf16") if torch.cuda.is_bf16_supported() else ("fp32", "the GPU has no bf16")
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16", "the CPU runs bf16 natively, with AVX512-BF16 or AMX"
    return "fp32", f"no native bf16 on this {device.type.upper()}"


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


def check(cfg: TrainConfig):
    """What config.py's declarations cannot know (it does not import torch): that the model and the
    data set exist, and that the model takes the architecture arguments given."""
    spec = get_spec(cfg.dataset)
    check_args(cfg.model, cfg.model_args)
    if cfg.printed and spec.classes != tuple("0123456789"):
        raise ConfigError(f"--printed adds printed digits, but {cfg.dataset}'s classes are not the digits 0-9")


def check_run_dir(out_dir, resume: bool):
    """A new run must not overwrite a trained model; a resumed one needs its saved state, or at least
    its config (a run stopped in its first epoch starts again from the beginning)."""
    out_dir = Path(out_dir)
    if resume and not any((out_dir / f).exists() for f in (STATE, CONFIG)):
        raise MnistlabError(f"{out_dir}: nothing to resume (no {STATE} or {CONFIG})")
    if not resume and (out_dir / MODEL).exists():
        raise MnistlabError(f"{out_dir} already holds a trained model; use --resume or another --out")


def resumed_config(out_dir, epochs: int | None = None, device: str | None = None) -> TrainConfig:
    """A resumed run keeps its own config, except for the number of epochs (which may be extended;
    a schedule then stretches over the new total) and the device."""
    check_run_dir(out_dir, resume=True)
    path = Path(out_dir) / CONFIG
    if not path.exists():
        raise MnistlabError(f"{path}: missing; the run cannot be resumed")
    saved = TrainConfig.from_dict(read_json(path), source=str(path))
    return TrainConfig(**{**asdict(saved), "epochs": epochs or saved.epochs, "device": device or saved.device})


def evaluate_split(model, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on one split, in eval mode."""
    logits = logits_of(model, x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


HEARTBEAT = 15.0  # seconds: without a terminal, a line at least this often within an epoch


class Progress:
    """On a terminal, one bar per epoch while it runs; elsewhere (a log file, CI, a notebook) a plain
    line at least every HEARTBEAT seconds. Then one fixed-format line per epoch, like Keras's."""

    def __init__(self, console, epochs: int, steps: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.console, self.epochs, self.steps = console, epochs, steps
        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.fields[stats]}"), console=console, transient=True,
                       disable=console is None or not console.is_terminal)
        self.plain = console is not None and self.bar.disable

    def start(self, epoch: int, t0: float):
        self.epoch, self.t0, self.last = epoch, t0, time.perf_counter()
        self.bar.start()
        self.task = self.bar.add_task(f"Epoch {epoch}/{self.epochs}", total=self.steps, stats="")

    def step(self, done: int, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int):
        """After `done` steps; reads the running sums (a device sync) only when something is shown."""
        if not self.bar.disable and done % 20 == 1:
            stats = f"loss {loss_sum.item() / seen:.4f}  accuracy {correct.item() / seen:.4f}"
            self.bar.update(self.task, completed=done, stats=stats)
        elif self.plain and time.perf_counter() - self.last >= HEARTBEAT:
            self.last = time.perf_counter()
            self.console.print(f"Epoch {self.epoch}/{self.epochs}  {done}/{self.steps}  {self.last - self.t0:.0f}s"
                               f"  loss {loss_sum.item() / seen:.4f}  accuracy {correct.item() / seen:.4f}",
                               highlight=False)

    def stop(self):
        self.bar.stop()

    def end(self, row: dict, best: bool):
        self.bar.remove_task(self.task)
        self.bar.stop()
        if self.console is not None:
            self.console.print(
                f"Epoch {row['epoch']}/{self.epochs}  {self.steps}/{self.steps}  {row['seconds']:.1f}s"
                f"  loss {row['loss']:.4f}  accuracy {row['accuracy']:.4f}"
                f"  val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}"
                + ("  [green]best[/]" if best else ""), highlight=False)


@dataclass
class State:
    """Everything a training run carries from step to step and from epoch to epoch."""

    cfg: TrainConfig
    out_dir: Path
    device: torch.device
    rank: int
    world: int
    classes: tuple
    x_train: torch.Tensor  # (N, 1, 28, 28) float in [0, 1], channels_last, on the device
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    arch_args: dict
    model: torch.nn.Module
    step_model: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    ema: "EMA | None"
    augment: Augment
    augment_rng: torch.Generator
    x_clutter: torch.Tensor  # (M, 1, 28, 28) non-digits from the photos (cfg.photos), for outlier exposure
    history: list = field(default_factory=list)
    partial: dict | None = None  # where Ctrl-C stopped an epoch, with its running sums

    @property
    def main(self) -> bool:  # only the main process prints and writes
        return self.rank == 0

    @property
    def kept(self) -> torch.nn.Module:  # the weights validated and kept: the average, if there is one
        return self.ema.model if self.ema else self.model

    @property
    def steps(self) -> int:
        return (len(self.x_train) + self.cfg.batch_size - 1) // self.cfg.batch_size


def setup(cfg: TrainConfig, out_dir, data: Data, resume: bool = False) -> State:
    """The training state for `cfg`: splits on the device, a fresh model and optimiser, or those saved
    in `out_dir` when resuming."""
    out_dir = Path(out_dir)
    device = pick_device(cfg.device)
    rank, world = distributed.setup(device)
    torch.manual_seed(cfg.seed)
    train_idx, val_idx = split_indices(data.train_labels, cfg.val_fraction, cfg.seed, cfg.stratify)
    if cfg.train_limit:
        train_idx = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(cfg.seed))]
        train_idx = train_idx[: cfg.train_limit].sort().values
    # channels_last: oneDNN's fast layout for convolutions and pooling on CPU (2x faster steps for cnn-small).
    cl = torch.channels_last
    x_train = pixels(data.train_images[train_idx]).to(device, memory_format=cl)
    y_train = data.train_labels[train_idx].to(device)
    mean, std = (x_train.mean().item(), x_train.std().item()) if cfg.standardize else (0.0, 1.0)
    if cfg.printed:  # printed digits beside the handwriting (glyphs.py)
        images, labels = glyphs.printed_digits(round(cfg.printed * len(train_idx)), cfg.seed)
        x_train = torch.cat([x_train, pixels(images).to(device, memory_format=cl)]).contiguous(memory_format=cl)
        y_train = torch.cat([y_train, labels.to(device)])
    x_clutter = torch.zeros(0, 1, 28, 28, device=device)
    if cfg.photos:  # the training split's digits as a photo shows them, and the clutter found beside them
        crops, labels = photocrops.cached(data.train_images[train_idx].numpy(), data.train_labels[train_idx].numpy(),
                                          cfg.photos, cfg.seed)
        crops, labels = torch.from_numpy(crops), torch.from_numpy(labels)
        digit = labels >= 0
        x_train = torch.cat([x_train, pixels(crops[digit]).to(device, memory_format=cl)]).contiguous(memory_format=cl)
        y_train = torch.cat([y_train, labels[digit].to(device)])
        x_clutter = pixels(crops[~digit]).to(device, memory_format=cl)
    arch_args = {"num_classes": len(data.classes), **cfg.model_args}
    model = build(cfg.model, arch_args, mean, std).to(device, memory_format=cl)
    s = State(cfg, out_dir, device, rank, world, data.classes, x_train, y_train,
              pixels(data.train_images[val_idx]).to(device, memory_format=cl), data.train_labels[val_idx].to(device),
              arch_args, model, distributed.wrap(model, world), OPTIMIZERS[cfg.optimizer](model.parameters(), cfg),
              EMA(model, cfg.ema) if cfg.ema else None, Augment(**cfg.augmentation),
              torch.Generator(device).manual_seed(cfg.seed + rank), x_clutter)
    if resume:
        info, extra = checkpoint.load_state(out_dir / STATE, s.model, s.optimizer)
        s.history = info["history"]
        if info.get("in_progress"):  # set when Ctrl-C stopped the run inside an epoch
            s.partial = dict(info["in_progress"], loss_sum=extra["partial.loss_sum"][0],
                             correct=extra["partial.correct"][0])
        if "rng.augment" in extra:  # absent in states saved before augmentation existed
            s.augment_rng.set_state(extra["rng.augment"])
        if s.ema:
            s.ema.model.load_state_dict({k[4:]: v for k, v in extra.items() if k.startswith("ema.")})
            s.ema.updates = info["ema_updates"]
    elif s.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / CONFIG, asdict(cfg))
        if s.augment.active:
            save_augmented(x_train[:8].cpu(), s.y_train[:8].tolist(), s.augment, out_dir / AUGMENTED)
    return s


def save_state(s: State, in_progress: dict | None = None):
    """state.safetensors: what --resume needs, after an epoch or (`in_progress`) within one."""
    extra = {"rng.augment": s.augment_rng.get_state()}
    if s.ema:
        extra |= {f"ema.{k}": v for k, v in s.ema.model.state_dict().items()}
    if in_progress:
        extra |= {"partial.loss_sum": in_progress.pop("loss_sum").reshape(1),
                  "partial.correct": in_progress.pop("correct").reshape(1)}
    checkpoint.save_state(s.out_dir / STATE, s.model, s.optimizer, extra,
                          dict(history=s.history, ema_updates=s.ema.updates if s.ema else 0, in_progress=in_progress))


def train_epoch(s: State, epoch: int, progress: Progress, interrupt: "Interrupt") -> dict:
    """One epoch of training steps, then validation; returns its history row."""
    cfg, device = s.cfg, s.device
    n, bs, steps = len(s.x_train), cfg.batch_size, s.steps
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(cfg.precision, device)[0] == "bf16")
    s.model.train()
    t0 = time.perf_counter()
    # The epoch's order depends on the seed and the epoch alone, so that every process draws the
    # same one and a resumed run continues it exactly.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, first_step = 0, 0  # images this process has trained on this epoch; where the epoch starts
    if s.partial and s.partial["epoch"] == epoch:  # continue exactly where Ctrl-C stopped it
        loss_sum += s.partial["loss_sum"].to(device)
        correct += s.partial["correct"].to(device)
        seen, first_step, t0 = s.partial["seen"], s.partial["step"], t0 - s.partial["seconds"]
    progress.start(epoch, t0)
    for step in range(first_step, steps):
        for group in s.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg.schedule, (epoch - 1) * steps + step, cfg.epochs * steps, cfg.warmup)
        idx = perm[step * bs:(step + 1) * bs][s.rank::s.world]  # this process's shard of the global batch
        x, y = s.x_train[idx], s.y_train[idx]
        if cfg.outliers:  # non-digits, trained towards even probabilities (outliers.py), and the photos' clutter
            k = round(cfg.outliers * len(x))
            x = torch.cat([x, outliers.make(x[:k], s.augment_rng)]
                          + ([s.x_clutter[torch.randint(len(s.x_clutter), (k // 2,), device=device,
                                                        generator=s.augment_rng)]] if len(s.x_clutter) else []))
        x = s.augment(x, s.augment_rng)
        with autocast:
            logits = s.step_model(x)
            loss = F.cross_entropy(logits[: len(y)], y, label_smoothing=cfg.label_smoothing)
            if len(logits) > len(y):  # a last batch of one or two digits has no outliers
                loss = loss + outliers.WEIGHT * outliers.loss(logits[len(y):].float())
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        if s.ema:
            s.ema.update()
        loss_sum += loss.detach() * len(idx)
        correct += (logits[: len(y)].argmax(1) == y).sum()
        seen += len(idx)
        progress.step(step + 1, loss_sum, correct, seen)
        if interrupt.requested:  # Ctrl-C (single process only): save this step's state, then stop
            save_state(s, dict(epoch=epoch, step=step + 1, seen=seen, seconds=time.perf_counter() - t0,
                               loss_sum=loss_sum, correct=correct))
            progress.stop()
            raise KeyboardInterrupt
    seconds = time.perf_counter() - t0
    loss_sum, correct = distributed.all_sum(loss_sum), distributed.all_sum(correct)
    if not torch.isfinite(loss_sum):
        raise MnistlabError(f"training diverged in epoch {epoch} (loss is not finite); lower the learning rate")
    val_loss, val_acc = evaluate_split(s.kept, s.x_val, s.y_val)
    return dict(epoch=epoch, loss=loss_sum.item() / n, accuracy=correct.item() / n, val_loss=val_loss,
                val_accuracy=val_acc, seconds=seconds, lr=s.optimizer.param_groups[0]["lr"])


def stopping(cfg: TrainConfig, history: list[dict]) -> bool:
    """Early stopping (patience) or the target accuracy reached."""
    if cfg.patience and history and history[-1]["epoch"] - best_epoch(history)["epoch"] >= cfg.patience:
        return True
    return reached(history, cfg.target_accuracy) is not None


def train(cfg: TrainConfig, out_dir, data: Data | None = None, resume: bool = False, console=None,
          loggers=()) -> list[dict]:
    """Train per `cfg`, writing into `out_dir`. Returns the history, one dict per epoch, which also goes
    to each of `loggers` (see tracking.py) as it is made.

    The test split is never touched here: model selection and early stopping use validation only.
    Under torchrun, every process runs this with the same arguments (see distributed.py).
    """
    check(cfg)
    check_run_dir(out_dir, resume)
    out_dir = Path(out_dir)
    if resume:
        cfg = resumed_config(out_dir, cfg.epochs, cfg.device)
        resume = (out_dir / STATE).exists()  # else it stopped before its first epoch ended: start that again
    if data is None or data.name != cfg.dataset:
        data = load(cfg.dataset, progress=console is not None)
    s = setup(cfg, out_dir, data, resume)
    progress = Progress(console if s.main else None, cfg.epochs, s.steps)
    meta = dict(seed=cfg.seed, config=asdict(cfg))
    with Interrupt(enabled=s.world == 1) as interrupt:
        for epoch in range(len(s.history) + 1, cfg.epochs + 1):
            if stopping(cfg, s.history):
                break
            row = train_epoch(s, epoch, progress, interrupt)
            s.history.append(row)
            improved = best_epoch(s.history) is row
            if s.main:
                if improved:
                    best = dict(epoch=epoch, val_loss=row["val_loss"], val_accuracy=row["val_accuracy"])
                    checkpoint.save_model(out_dir / MODEL, s.kept, checkpoint.model_meta(
                        s.kept, cfg.model, s.arch_args, s.classes, cfg.dataset, metrics=best, **meta))
                # History first, then the state that points past it: a crash between the two loses nothing.
                write_json(out_dir / HISTORY, s.history, indent=1)
                save_state(s)
                for log in loggers:
                    log.epoch(row)
            progress.end(row, improved)
    if s.main:
        from .plots import plot_curves, save_figure

        save_figure(plot_curves(s.history), out_dir / CURVES)
    distributed.teardown()
    return s.history


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
