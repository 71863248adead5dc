"""The model registry: the seed notebooks' three networks and a modern batch-normalised CNN.

Every network takes images of shape (B, 1, 28, 28) and returns logits (B, num_classes).
`Classifier` wraps one with the input standardisation it was trained with, so that every consumer
(evaluate, predict, serve, export) feeds plain pixels scaled to [0, 1].
"""

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfigError, Option
from .errors import MnistlabError


def keras_init(module: nn.Module, kernel: str = "glorot_uniform"):
    """Initialise like the seeds' Keras layers: Glorot-uniform kernels (or N(0, 0.05) for
    kernel_initializer='normal'), zero biases. PyTorch's defaults train noticeably differently."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if kernel == "normal":
                nn.init.normal_(m.weight, std=0.05)
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn by `rand` instead of `bernoulli_`, which is slower on CPU; same
    distribution, same scaling."""

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return x * (torch.rand_like(x) >= self.p) * (1 / (1 - self.p))


class FNN(nn.Module):
    """Seed 001's feed-forward net: 784-784-128-10 with ReLU (717,210 parameters)."""

    def __init__(self, num_classes: int = 10, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(784, 784)
        self.fc2 = nn.Linear(784, hidden)
        self.head = nn.Linear(hidden, num_classes)
        keras_init(self, "normal")

    def forward(self, x):
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.head(x)


class CNNSmall(nn.Module):
    """Seed 000's CNN: Conv32-Pool-Conv64-Pool-Dropout-Dense10 (34,826 parameters)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)  # 28 -> 26, pooled to 13
        self.conv2 = nn.Conv2d(32, 64, 3)  # 13 -> 11, pooled to 5
        self.drop = Dropout(dropout)
        self.head = nn.Linear(64 * 5 * 5, num_classes)
        keras_init(self)

    def forward(self, x):
        # Pool, then ReLU: the same function as Keras's ReLU-then-pool (max and ReLU commute), with the
        # ReLU on a quarter of the values. Together with channels_last this halves the CPU step time.
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.head(self.drop(x.flatten(1)))


class CNN(nn.Module):
    """Seed 001's CNN: Conv64-Pool-Dropout-Dense128-Dense10 (1,386,506 parameters)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.5, hidden: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3)  # 28 -> 26, pooled to 13
        self.drop = Dropout(dropout)
        self.fc1 = nn.Linear(64 * 13 * 13, hidden)
        self.head = nn.Linear(hidden, num_classes)
        keras_init(self)

    def forward(self, x):
        x = self.drop(F.relu(F.max_pool2d(self.conv1(x), 2)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.head(x)


class ConvBlock(nn.Sequential):
    """3x3 convolution, batch norm, ReLU: the unit of most fast CIFAR/MNIST trainers (e.g. airbench)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BNCNN(nn.Module):
    """A modern VGG-style CNN with batch norm (288,170 parameters at width 32).

    Three stages of two conv blocks, each stage max-pooled (28 -> 14 -> 7 -> 3), then global max
    pooling and a linear head."""

    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.0):
        super().__init__()
        w = [width, 2 * width, 4 * width]
        self.stage1 = nn.Sequential(ConvBlock(1, w[0]), ConvBlock(w[0], w[0]))
        self.stage2 = nn.Sequential(ConvBlock(w[0], w[1]), ConvBlock(w[1], w[1]))
        self.stage3 = nn.Sequential(ConvBlock(w[1], w[2]), ConvBlock(w[2], w[2]))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(w[2], num_classes)

    def forward(self, x):
        x = F.max_pool2d(self.stage1(x), 2)
        x = F.max_pool2d(self.stage2(x), 2)
        x = F.max_pool2d(self.stage3(x), 2)
        x = torch.amax(x, dim=(2, 3))
        return self.head(self.drop(x))


class PoolBlock(nn.Sequential):
    """3x3 convolution, 2x2 max pool, batch norm, ReLU. Pooling straight after the convolution, as in
    KellerJordan/cifar10-airbench, lets batch norm and ReLU work on a quarter of the values."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class FastCNN(nn.Module):
    """The time-to-accuracy CNN: three conv-pool-norm blocks and a linear head (29,178 parameters).

    The blocks take 28x28 maps to 14, 7 and 3; `width` is the first block's channels, doubled per block.
    About 1.9 M multiply-adds per image, against cnn-small's 2.4 M. The head sees the whole 3x3 map:
    0.1 points better after one epoch than global max pooling, at no cost."""

    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.0):
        super().__init__()
        w = [width, 2 * width, 4 * width]
        self.block1, self.block2, self.block3 = PoolBlock(1, w[0]), PoolBlock(w[0], w[1]), PoolBlock(w[1], w[2])
        self.drop = Dropout(dropout)
        self.head = nn.Linear(w[2] * 3 * 3, num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(x)))
        return self.head(self.drop(x.flatten(1)))


MODELS = {"fnn": FNN, "cnn-small": CNNSmall, "cnn": CNN, "bn-cnn": BNCNN, "fast-cnn": FastCNN}

class KerasSequential(nn.Module):
    """A Sequential Keras model imported from its layer list (see mnistlab.keras)."""

    def __init__(self, layers: list | None = None, num_classes: int = 10):
        super().__init__()
        self.specs = layers or []
        self.layers = nn.ModuleList()
        for spec in self.specs:
            kind = spec["kind"]
            if kind == "conv":
                self.layers.append(nn.Conv2d(spec["in"], spec["out"], spec["kernel"], padding=spec["padding"]))
            elif kind == "dense":
                self.layers.append(nn.Linear(spec["in"], spec["out"]))
            else:
                self.layers.append(nn.Identity())  # pooling, flatten, dropout: no weights
        if not self.specs or self.specs[-1].get("out") != num_classes:
            raise ValueError(f"the last layer must have {num_classes} outputs")

    def forward(self, x):
        for spec, layer in zip(self.specs, self.layers):
            if spec["kind"] == "pool":
                x = F.max_pool2d(x, spec["size"], spec["stride"])
            elif spec["kind"] == "flatten":
                x = x.flatten(1)
            elif spec["kind"] in ("conv", "dense"):
                x = layer(x)
                if spec["relu"]:
                    x = F.relu(x)
        return x  # logits: a final softmax is left to the consumer, like every mnistlab model


# Architectures that checkpoints can hold but `mnistlab train` does not build: models brought in by
# `mnistlab import-keras` (their layer list is their architecture argument).
IMPORTED = {"keras-sequential": KerasSequential}


class Classifier(nn.Module):
    """A network plus its input standardisation: (B, 1, 28, 28) pixels in [0, 1] -> logits.

    `mean` and `std` are architecture facts stored in the checkpoint's metadata, not weights.
    """

    def __init__(self, net: nn.Module, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.net = net
        self.mean, self.std = mean, std
        self.temperature = 1.0  # probabilities are softmax(logits / temperature); set from the checkpoint

    def forward(self, x):
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        return self.net(x)


# Architecture arguments a user may set (--model-arg), declared once with their ranges. num_classes is
# not among them: it comes from the data set.
ARGS = {
    "width": Option("channels of the first block, doubled per block", int, 1, 1024),
    "hidden": Option("units of the hidden dense layer", int, 1, 1 << 16),
    "dropout": Option("dropout probability", float, 0, 1, max_open=True),
}


def check_args(name: str, args: dict):
    """Refuse an unknown model, an argument its class does not take, or a value outside ARGS's range."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    takes = [p for p in inspect.signature(MODELS[name]).parameters if p in ARGS]
    for key, value in args.items():
        if key == "num_classes":
            raise ConfigError("num_classes comes from the data set's classes; it is not a model argument")
        if key not in takes:
            raise ConfigError(f"model {name!r} has no argument {key!r}; it takes {', '.join(takes) or 'none'}")
        ARGS[key].check(f"model argument {key}", value)


def build(name: str, args: dict | None = None, mean: float = 0.0, std: float = 1.0) -> Classifier:
    architectures = MODELS | IMPORTED
    if name not in architectures:
        raise MnistlabError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    try:
        net = architectures[name](**(args or {}))
    except (TypeError, ValueError, KeyError) as e:
        raise MnistlabError(f"bad arguments for model {name!r}: {e}") from None
    return Classifier(net, mean, std)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(name: str) -> str:
    """First line of a model's docstring, for --help and `mnistlab models`."""
    return (MODELS[name].__doc__ or "").strip().splitlines()[0]


def pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float model input (N, 1, 28, 28) in [0, 1]."""
    return images.unsqueeze(1).float().div_(255)


CHUNK = 128  # images per forward pass: small enough for the activations to stay in the CPU's caches


@torch.inference_mode()
def logits_of(model: nn.Module, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """Run `model` in eval mode over x (N, 1, 28, 28); returns float32 logits (N, num_classes), N may be 0.

    Work goes in chunks of CHUNK images in channels_last layout: one NCHW batch of 1,000 overflows the
    caches and runs several times slower. `bf16` runs under bfloat16 autocast (probabilities then
    differ by up to about 1%)."""
    was_training = model.training
    model.eval()
    chunk = CHUNK
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = [model(x[i:i + chunk].contiguous(memory_format=torch.channels_last)).float()
               for i in range(0, max(len(x), 1), chunk)]  # an empty x still gives its (0, num_classes)
    model.train(was_training)
    return torch.cat(out)
