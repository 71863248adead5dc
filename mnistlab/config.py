"""Training configuration: every option declared once, with its default, help text and valid range.

The command line is built from these declarations (cli.py), the Python API takes the same names as
keyword arguments, recipes (recipes.py) are sets of them, and a run saves them as config.json. A value
is checked where it is declared, whichever way it came in (flag, keyword, recipe, config.json).
This module must not import torch: `mnistlab --help` builds its parser from it.
"""

import math
from dataclasses import asdict, dataclass, field, fields

from .errors import MnistlabError
from .recipes import RECIPES

MAX_SEED = 2**63 - 1  # torch.manual_seed takes at most a signed 64-bit integer


class ConfigError(MnistlabError):
    """A value outside what its option allows: a usage error (the command line exits with 2)."""


@dataclass(frozen=True)
class Option:
    """What one option accepts: its type, an inclusive range (`min_open`/`max_open`: that end excluded),
    fixed choices, and whether None (off) is allowed. `check` is the one validation every path uses."""

    help: str
    type: type = float
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple | None = None
    optional: bool = False  # None means "off"

    def check(self, name: str, value):
        """`value` as the option's type, or ConfigError naming the option."""
        if value is None and self.optional:
            return None
        bad = f"{name} must be {self.describe()}, got {value!r}"
        if self.type is bool:
            if not isinstance(value, bool):
                raise ConfigError(bad)
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(bad)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(bad)
            value = float(value)
        elif not isinstance(value, self.type):
            raise ConfigError(bad)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"unknown {name} {value!r}; choose from {', '.join(map(str, self.choices))}")
        low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        high = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if low or high:
            raise ConfigError(bad)
        return value

    def describe(self) -> str:
        kind = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text",
                dict: "a mapping"}[self.type]
        low = None if self.min is None else ("above " if self.min_open else "at least ") + _number(self.min)
        high = None if self.max is None else ("below " if self.max_open else "at most ") + _number(self.max)
        return kind + "".join(f" {part}" for part in (low, "and" if low and high else None, high) if part)

    def parse(self, name: str, text: str):
        """A command-line string -> the checked value (argparse's `type`)."""
        if self.type is int:
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"{name} must be {self.describe()}, got {text!r}") from None
        elif self.type is float:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"{name} must be {self.describe()}, got {text!r}") from None
        else:
            value = text
        return self.check(name, value)


def _number(x) -> str:
    if x == MAX_SEED:
        return "2**63 - 1"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def option(default, help: str, type=None, **limits):
    """A dataclass field carrying its Option (help, type, range) in its metadata."""
    kind = type or (dict if isinstance(default, dict) else default.__class__ if default is not None else float)
    spec = Option(help, kind, optional=default is None or limits.pop("optional", False), **limits)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


def spec(cls, name: str) -> Option:
    return next(f.metadata["option"] for f in fields(cls) if f.name == name)


# Shared by commands other than train, so that the same option means the same thing everywhere.
SEED = Option("random seed (same seed, same numbers on the same machine and library versions)", int, 0, MAX_SEED)
LIMIT = Option("use only the first N test images", int, 1, optional=True)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTATION = ("rotate", "scale", "shear", "translate", "elastic", "stroke", "light", "noise")


@dataclass
class TrainConfig:
    """Every knob of a training run; defaults reproduce seed 000's Keras CNN (Adam, batch 128, 15 epochs,
    10% validation)."""

    recipe: str | None = option(None, "start from a named preset (see `mnistlab recipes`); other flags override it",
                                str, choices=tuple(RECIPES))
    model: str = option("cnn-small", "model name (see `mnistlab models`)")
    model_args: dict = option({}, "architecture argument KEY=VALUE, repeatable (e.g. width=64)")
    dataset: str = option("mnist", "data set: mnist, fashion-mnist, kmnist, qmnist or emnist-digits")
    epochs: int = option(15, "number of epochs", min=1, max=100_000)
    batch_size: int = option(128, "images per training step", min=1, max=1 << 20)
    optimizer: str = option("adam", "adam, adamw or sgd (Nesterov momentum 0.9)", choices=("adam", "adamw", "sgd"))
    lr: float = option(1e-3, "learning rate", min=0, min_open=True)
    weight_decay: float = option(0.0, "weight decay", min=0, max=1)
    schedule: str = option("constant", "learning rate per step: constant, onecycle (linear warm-up and decay) or "
                           "cosine", choices=("constant", "onecycle", "cosine"))
    warmup: float = option(0.2, "fraction of the steps spent warming up the learning rate", min=0, max=1,
                           max_open=True)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy targets", min=0, max=1, max_open=True)
    ema: float = option(0.0, "keep an exponential moving average of the weights with this decay (e.g. 0.999; "
                        "0: off)", min=0, max=1, max_open=True)
    rotate: float = option(0.0, "augmentation: random rotation up to this many degrees either way", min=0, max=180)
    scale: float = option(0.0, "augmentation: random zoom up to this fraction either way (0.1: 90%-110%)", min=0,
                          max=1, max_open=True)
    shear: float = option(0.0, "augmentation: random shear up to this many degrees either way", min=0, max=60)
    translate: float = option(0.0, "augmentation: random shift up to this many pixels along each axis", min=0, max=28)
    elastic: float = option(0.0, "augmentation: elastic distortion, typical displacement in pixels", min=0, max=28)
    stroke: float = option(0.0, "augmentation: strokes up to this much (0-1) thicker or thinner (a marker, a "
                           "fine pen)", min=0, max=1)
    light: float = option(0.0, "augmentation: smooth background light up to this level (0-1) on a random half of "
                          "the images", min=0, max=1)
    noise: float = option(0.0, "augmentation: salt-and-pepper noise on up to this fraction of pixels, on a random "
                          "half", min=0, max=1, max_open=True)
    printed: float = option(0.0, "add printed digits (OpenCV's Hershey fonts and matplotlib's TrueType faces), "
                            "this fraction of the training split, to it (0.05 in the robust recipe)", min=0, max=1)
    photos: int = option(0, "add the crops of this many synthetic phone photos of training digits, cut out as "
                         "`mnistlab predict` reads a photo: the digits to the training split, the clutter to the "
                         "outliers (made once per training split and count, kept in the user cache; 3000 in the "
                         "robust recipe); the temperature is then fitted on photos of the validation digits too",
                         int, min=0, max=1_000_000)
    outliers: float = option(0.0, "outlier exposure: add this many non-digits per digit to each batch "
                             "(scribbles, letters, pieces and pairs of digits), trained towards even "
                             "probabilities, so that the model is unsure of them (0.2 in the robust recipe)",
                             min=0, max=1)
    line_reader: int = option(0, "then train a line reader (lines.py) for this many steps, to read digits written "
                              "into each other in photos as a whole, with `photos` also on lines cut out of as many "
                              "photos of numbers (6000 in the robust recipe; 0: none)", int,
                              min=0, max=1_000_000)
    precision: str = option("fp32", "fp32; bf16 (autocast: faster on CPUs with AVX512-BF16 or AMX, about 10x "
                            "slower on those without); or auto: bf16 where the CPU runs it natively, else fp32",
                            choices=("fp32", "bf16", "auto"))
    target_accuracy: float | None = option(None, "stop once the validation accuracy reaches this (e.g. 0.99) and "
                                           "report the time taken", min=0, min_open=True, max=1)
    val_fraction: float = option(0.1, "fraction of the training set held out for validation", min=0, max=1,
                                 min_open=True, max_open=True)
    stratify: bool = option(False, "stratify the validation split by class")
    standardize: bool = option(True, "standardise inputs with the training split's mean and std "
                               "(--no-standardize: x/255 only)")
    patience: int | None = option(None, "early stopping: stop after this many epochs without a better validation "
                                  "accuracy", int, min=1)
    train_limit: int | None = option(None, "train on a seeded random subset of this many images (quick runs)", int,
                                     min=1)
    seed: int = option(0, SEED.help, min=0, max=MAX_SEED)
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")

    def __post_init__(self):
        for f in fields(self):
            setattr(self, f.name, f.metadata["option"].check(f.name, getattr(self, f.name)))
        for key in self.model_args:
            if not isinstance(key, str):
                raise ConfigError(f"model_args keys must be text, got {key!r}")
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")

    @property
    def augmentation(self) -> dict:
        return {name: getattr(self, name) for name in AUGMENTATION}

    @classmethod
    def from_recipe(cls, name: str | None, **overrides) -> "TrainConfig":
        """TrainConfig's defaults, then the recipe's settings, then `overrides`."""
        spec(cls, "recipe").check("recipe", name)
        settings = RECIPES[name].settings if name else {}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; see `mnistlab train --help`")
        model_args = {**settings.get("model_args", {}), **(overrides.get("model_args") or {})}
        return cls(**{**settings, **overrides, "model_args": model_args, "recipe": name})

    @classmethod
    def from_dict(cls, d, source: str = "config") -> "TrainConfig":
        """A saved config (config.json) back into a TrainConfig, every value checked; keys this version
        does not know are ignored (a newer mnistlab may add some)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object of settings, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)
