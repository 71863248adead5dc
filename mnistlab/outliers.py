"""Things that are not digits, for outlier exposure (Hendrycks, Mazeika & Dietterich 2019, "Deep anomaly
detection with outlier exposure"): trained to spread its probability evenly over the ten classes on
them, a model gives a scribble, a letter, a smudge, the remains of a ruling, half a digit or two
digits run together a low confidence, and mnistlab reports them as unsure instead of reading them.

`make(digits, generator)` builds one such image per training digit it is given, as batched tensor
ops on the training device, in MNIST's convention (white on black, the ink's longer side fitted to
20 of the 28 pixels). Letters come from OpenCV's built-in Hershey fonts, so nothing is downloaded;
letters and signs that are written like a digit (O, l, I, S, Z, B, G, q, g, b, /) are left out.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .glyphs import fit, render

LETTERS = "ACEFHKMNPRUVWXYacefhkmnprtuvwxy+=#%&?@*$"
WEIGHT = 0.5  # of the outliers' loss against the digits' in training (Hendrycks et al. 2019 use 0.5)
_letters: dict = {}  # device -> (N, 1, 28, 28) rendered letters, made once


def loss(logits: torch.Tensor) -> torch.Tensor:
    """Outlier exposure's loss: the cross-entropy of softmax(logits) against even probabilities."""
    return -F.log_softmax(logits, 1).mean()


def make(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, 28, 28) non-digits in [0, 1], about as many of each kind, from `digits` (B, 1, 28, 28)."""
    b, device = len(digits), digits.device
    makers = (piece, pair, scribble, letter, ruling, smudge)
    kind = torch.randint(len(makers), (b,), device=device, generator=generator)
    out = torch.zeros_like(digits, memory_format=torch.contiguous_format)
    for k, maker in enumerate(makers):
        chosen = (kind == k).nonzero()[:, 0]
        if len(chosen):
            out[chosen] = maker(digits[chosen], generator)
    return out.contiguous(memory_format=torch.channels_last)


def _uniform(b: int, lo: float, hi: float, device, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, device=device, generator=generator)


def piece(x: torch.Tensor, generator) -> torch.Tensor:
    """A digit cut by a random straight line, less than half of it kept: what a digit broken by a
    ruling or by faint pencil leaves. A piece as narrow as a "1" is turned on its side: a bar."""
    b, device = len(x), x.device
    angle = _uniform(b, 0, 2 * np.pi, device, generator)
    offset = _uniform(b, 0.0, 0.3, device, generator)
    v, u = torch.meshgrid(torch.linspace(-1, 1, 28, device=device), torch.linspace(-1, 1, 28, device=device),
                          indexing="ij")
    side = torch.cos(angle)[:, None, None] * u + torch.sin(angle)[:, None, None] * v > offset[:, None, None]
    kept = x * side[:, None]
    height = (kept.amax(dim=(1, 3)) > 0.1).sum(1)
    width = (kept.amax(dim=(1, 2)) > 0.1).sum(1)
    narrow = (width < 0.45 * height)[:, None, None, None]
    return fit(torch.where(narrow, kept.transpose(-1, -2), kept))


def pair(x: torch.Tensor, generator) -> torch.Tensor:
    """Two digits side by side, touching or overlapping, squeezed into one box."""
    b, device = len(x), x.device
    other = x[torch.randperm(b, device=device, generator=generator)]
    shift = torch.randint(12, 22, (1,), device=device, generator=generator).item()
    wide = torch.zeros(b, 1, 28, 28 + shift, device=device)
    wide[..., :28] = x
    wide[..., shift:] = torch.maximum(wide[..., shift:], other)
    return fit(wide)


def _draw(points: torch.Tensor, width: torch.Tensor, size: int = 28) -> torch.Tensor:
    """(B, P, 2) points in [-1, 1] joined by straight strokes about `width` (B,) pixels wide: (B, 1, size, size)."""
    b = len(points)
    grid = torch.linspace(-1, 1, size, device=points.device)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    p = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)[None, None]  # (1, 1, size*size, 2)
    a, ab = points[:, :-1, None], (points[:, 1:] - points[:, :-1])[:, :, None]  # (B, S, 1, 2)
    t = (((p - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-8)).clamp(0, 1)
    d2 = ((p - a - t * ab) ** 2).sum(-1).amin(1)  # (B, size*size): squared distance to the nearest stroke
    sigma = width[:, None] / size
    return torch.exp(-d2 / (2 * sigma**2)).reshape(b, 1, size, size)


def scribble(x: torch.Tensor, generator) -> torch.Tensor:
    """A random zigzag of 6 to 10 strokes."""
    b, device = len(x), x.device
    n = torch.randint(6, 11, (1,), device=device, generator=generator).item()
    points = torch.rand(b, n, 2, device=device, generator=generator) * 1.6 - 0.8
    return fit(_draw(points, _uniform(b, 0.8, 1.6, device, generator)))


def letter(x: torch.Tensor, generator) -> torch.Tensor:
    """A letter or sign in one of OpenCV's Hershey fonts, upright or italic, thin or bold."""
    bank = _letters.get(x.device)
    if bank is None:
        bank = _letters[x.device] = fit(render(LETTERS).to(x.device))
    return bank[torch.randint(len(bank), (len(x),), device=x.device, generator=generator)]


def ruling(x: torch.Tensor, generator) -> torch.Tensor:
    """What a ruling or a grid leaves: two or three parallel lines, or a corner of a grid."""
    b, device = len(x), x.device
    gap = torch.randint(6, 12, (b,), device=device, generator=generator)
    start = torch.randint(2, 8, (b,), device=device, generator=generator)
    idx = torch.arange(28, device=device)
    lines = ((idx[None] - start[:, None]) % gap[:, None] == 0) & (idx[None] >= start[:, None])  # (B, 28)
    horizontal = lines[:, None, :, None].float().expand(b, 1, 28, 28)
    vertical = lines[:, None, None, :].float().expand(b, 1, 28, 28)
    grid = torch.rand(b, 1, 1, 1, device=device, generator=generator) < 0.4
    out = torch.where(grid, torch.maximum(horizontal, vertical), horizontal)
    angle = _uniform(b, -np.pi / 2, np.pi / 2, device, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
    out = F.grid_sample(out, F.affine_grid(theta, [b, 1, 28, 28], align_corners=False), align_corners=False)
    return fit(out)


def smudge(x: torch.Tensor, generator) -> torch.Tensor:
    """A blot: a soft, roundish blob."""
    b, device = len(x), x.device
    grid = torch.linspace(-1, 1, 28, device=device)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    sx, sy = _uniform(b, 0.2, 0.4, device, generator), _uniform(b, 0.2, 0.4, device, generator)
    blob = torch.exp(-(xx[None] / sx[:, None, None]) ** 2 - (yy[None] / sy[:, None, None]) ** 2)
    return fit(blob[:, None])
