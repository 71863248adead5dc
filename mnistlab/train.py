"""Training: one config dataclass and an explicit loop over tensors kept in memory.

A run folder gets config.json, history.json (one row per epoch), model.safetensors (the weights that
did best on the validation split), state.safetensors (what --resume needs) and curves.png.
"""

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint
from .data import Data, get_spec, load, split_indices
from .errors import MnistlabError
from .files import write_text
from .models import MODELS, build, logits_of, pixels


@dataclass
class TrainConfig:
    """Every knob of a training run; defaults reproduce seed 000's Keras CNN (Adam, batch 128, 15 epochs,
    10% validation)."""

    model: str = "cnn-small"
    model_args: dict = field(default_factory=dict)
    dataset: str = "mnist"
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw | sgd (Nesterov momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    stratify: bool = False
    standardize: bool = True  # standardise inputs with the training split's mean and std
    patience: int | None = None  # early stopping: epochs without a better val_loss before stopping
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

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=0.9, nesterov=True,
                                             weight_decay=c.weight_decay),
}


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
    """A new run must not overwrite a trained model; a resumed one needs its saved state."""
    out_dir = Path(out_dir)
    if resume and not (out_dir / checkpoint.STATE_FILE).exists():
        raise MnistlabError(f"{out_dir}: nothing to resume (no {checkpoint.STATE_FILE})")
    if not resume and (out_dir / checkpoint.MODEL_FILE).exists():
        raise MnistlabError(f"{out_dir} already holds a trained model; use --resume or another --out")


def resumed_config(out_dir, cfg: TrainConfig) -> TrainConfig:
    """A resumed run keeps its own config, except for the number of epochs (which may be extended)
    and the device."""
    try:
        saved = TrainConfig.from_dict(json.loads((Path(out_dir) / "config.json").read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise MnistlabError(f"{out_dir}: cannot read the run's config.json ({e})") from None
    return TrainConfig(**{**asdict(saved), "epochs": cfg.epochs, "device": cfg.device})


def best_epoch(history: list[dict]) -> dict:
    """The history row whose weights a run keeps: lowest validation loss, the earliest on a tie."""
    return min(history, key=lambda r: r["val_loss"])


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
          data_dir=None) -> list[dict]:
    """Train per `cfg`, writing into `out_dir`. Returns the history, one dict per epoch.

    The test split is never touched here: model selection and early stopping use validation only.
    """
    cfg.check()
    check_run_dir(out_dir, resume)
    out_dir = Path(out_dir)
    state_path = out_dir / checkpoint.STATE_FILE
    if resume:
        cfg = resumed_config(out_dir, cfg)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if data is None or data.name != cfg.dataset:
        data = load(cfg.dataset, data_dir, progress=console is not None)

    train_idx, val_idx = split_indices(data.train_labels, cfg.val_fraction, cfg.seed, cfg.stratify)
    if cfg.train_limit:
        train_idx = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(cfg.seed))]
        train_idx = train_idx[: cfg.train_limit].sort().values
    x_train, y_train = pixels(data.train_images[train_idx]).to(device), data.train_labels[train_idx].to(device)
    x_val, y_val = pixels(data.train_images[val_idx]).to(device), data.train_labels[val_idx].to(device)

    mean, std = (x_train.mean().item(), x_train.std().item()) if cfg.standardize else (0.0, 1.0)
    arch_args = {"num_classes": len(data.classes), **cfg.model_args}
    model = build(cfg.model, arch_args, mean, std).to(device)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    meta = dict(seed=cfg.seed, config=asdict(cfg))

    history, best_loss, bad_epochs = [], float("inf"), 0
    if resume:
        info = checkpoint.load_state(state_path, model, optimizer)
        history, best_loss, bad_epochs = info["history"], info["best_val_loss"], info["bad_epochs"]
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "config.json", json.dumps(asdict(cfg), indent=2))

    n, bs = len(x_train), cfg.batch_size
    steps = (n + bs - 1) // bs
    progress = Progress(console, cfg.epochs, steps)
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        if cfg.patience and bad_epochs >= cfg.patience:
            break
        progress.start(epoch)
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for step in range(steps):
            idx = perm[step * bs:(step + 1) * bs]
            logits = model(x_train[idx])
            loss = F.cross_entropy(logits, y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y_train[idx]).sum()
            if step % 20 == 0 and not progress.bar.disable:
                seen = min((step + 1) * bs, n)
                progress.step(step + 1, loss_sum.item() / seen, correct.item() / seen)
        seconds = time.perf_counter() - t0
        if not torch.isfinite(loss_sum):
            raise MnistlabError(f"training diverged in epoch {epoch} (loss is not finite); lower the learning rate")
        val_loss, val_acc = evaluate_split(model, x_val, y_val)
        row = dict(epoch=epoch, loss=loss_sum.item() / n, accuracy=correct.item() / n, val_loss=val_loss,
                   val_accuracy=val_acc, seconds=seconds, lr=optimizer.param_groups[0]["lr"])
        history.append(row)
        improved = val_loss < best_loss
        if improved:
            best_loss, bad_epochs = val_loss, 0
            best = dict(epoch=epoch, val_loss=val_loss, val_accuracy=val_acc)
            checkpoint.save_model(out_dir / checkpoint.MODEL_FILE, model, checkpoint.model_meta(
                model, cfg.model, arch_args, data.classes, cfg.dataset, metrics=best, **meta))
        else:
            bad_epochs += 1
        # History first, then the state that points past it: a crash between the two loses nothing.
        write_text(out_dir / "history.json", json.dumps(history, indent=1))
        checkpoint.save_state(state_path, model, optimizer,
                              dict(history=history, best_val_loss=best_loss, bad_epochs=bad_epochs))
        progress.end(row, improved)

    from .plots import plot_curves, save_figure

    save_figure(plot_curves(history), out_dir / "curves.png")
    return history
