"""Reading a run of touching digits as one sequence: a small CRNN trained with CTC on lines of MNIST digits.

Two digits written into each other make one mark, and no vertical cut parts strokes that overlap;
cutting and classifying (predict's reading by recognition) then reads them unsure or not at all. A
sequence reader reads the mark whole: convolutions turn the line into columns of features, dilated
convolutions along the line give each column its neighbours' context, and connectionist temporal
classification (Graves et al. 2006) trains it from the digits' text alone, without knowing where one
digit ends and the next begins (Shi, Bai & Yao 2015, "An end-to-end trainable neural network for
image-based sequence recognition": CRNN, with a recurrent layer where this has convolutions).

The lines are made of training digits, batched as tensor ops (`synthesize`): 1 to 6 digits of
varying size along a drifting baseline, apart or pushed into each other; now and then a line of
non-digits whose text is empty, or a non-digit at one end of the line left out of its text
(scribbles, letters, blots, and the clutter the photo reader cut out of the robust recipe's training
photos), so that the reader does not find digits in them. A line is read in MNIST's convention
(`predict.line_input`): white ink on black, the ink 20 of 28 pixels high. With the robust recipe's
photos, PHOTO_SHARE of each batch is lines cut out of synthetic photos of numbers as the photo reader
cuts them (photocrops.scene_lines): digits pushed into each other by a real hand's spacing, thinned,
blurred and broken by the camera and the clean-up, which the made lines do not show.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from . import outliers
from .checkpoint import digest, save_tensors
from .errors import MnistlabError
from .runfolder import LINES

HEIGHT = 28  # pixels: a line's height in MNIST's convention, its ink 20 of them
WIDTH = 160  # pixels: the training lines' width (a line is read at any width)
BLANK = 0  # CTC's blank; digit d is class d + 1
MAX_DIGITS = 6
FILE = LINES  # the reader's weights in a run folder, beside the digit model's
FORMAT = "mnistlab-lines/1"
ARGS = {"width": 32, "hidden": 96}
PHOTO_SHARE = 0.4  # of each training batch: lines cut out of photos, when there are any


class LineReader(nn.Module):
    """(B, 1, 28, W) lines -> (W // 2, B, 11) log-probabilities: blank, then the digits 0-9, one
    column of output for every two pixels of the line."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w // 2, 3, padding=1), nn.BatchNorm2d(w // 2), nn.ReLU(), nn.MaxPool2d(2),  # 14 x W/2
            nn.Conv2d(w // 2, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d((2, 1)),  # 7 x W/2
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, (7, 3), padding=(0, 1)), nn.BatchNorm2d(2 * w), nn.ReLU(),  # 1 x W/2
        )
        # Along the line: dilated 1-d convolutions, each output column seeing 29 columns (58 pixels,
        # a digit and its neighbours on both sides); with a bidirectional GRU instead, a training step
        # took 1.3 times as long on a 2-core AMD EPYC.
        self.context = nn.Sequential(*(layer for d in (1, 2, 4) for layer in (
            nn.Conv1d(2 * w if d == 1 else hidden, hidden, 5, padding=2 * d, dilation=d), nn.BatchNorm1d(hidden),
            nn.ReLU())))
        self.head = nn.Conv1d(hidden, 11, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.context(self.features(x).squeeze(2))  # (B, C, T)
        return F.log_softmax(self.head(f), 1).permute(2, 0, 1)  # (T, B, 11)

    @torch.no_grad()
    def log_probabilities(self, lines: np.ndarray) -> torch.Tensor:
        """(T, B, 11) log-probabilities for lines (B, 1, 28, W) float32 in [0, 1]."""
        return self(torch.from_numpy(lines))


def _ink_columns(digits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last column with ink of each (N, 1, 28, 28) image: (N,), (N,)."""
    cols = digits.amax(dim=(1, 2)) > 0.2  # (N, 28)
    idx = torch.arange(28, device=digits.device).float()
    left = torch.where(cols, idx, torch.full_like(idx, 99.0)).amin(1)
    right = torch.where(cols, idx, torch.full_like(idx, -1.0)).amax(1)
    return left, right


def _grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """F.affine_grid(theta, (N, 1, height, width), align_corners=False) by broadcasting: the same
    sampling grid, without affine_grid's batched matrix product over every pixel (63% of the lines'
    making time)."""
    xs = (2 * torch.arange(width) + 1) / width - 1  # pixel centres in [-1, 1]
    ys = (2 * torch.arange(height) + 1) / height - 1
    t = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    gx = t[:, 0, 0] * xs + t[:, 0, 1] * ys[:, None] + t[:, 0, 2]  # (N, height, width)
    gy = t[:, 1, 0] * xs + t[:, 1, 1] * ys[:, None] + t[:, 1, 2]
    return torch.stack([gx, gy], -1)


def synthesize(images: torch.Tensor, labels: torch.Tensor, batch: int, generator: torch.Generator,
               clutter: torch.Tensor | None = None, negatives: float = 0.1, beside: float = 0.15
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`batch` lines of 1 to MAX_DIGITS of the digits `images` (N, 28, 28) uint8 with `labels`:
    lines (B, 1, 28, WIDTH) float in [0, 1], targets (B, MAX_DIGITS) (class d + 1, 0 past the end),
    and lengths (B,). Gaps between neighbours' ink run from a third of a digit's height of overlap
    to two fifths of it apart; in half of the lines the digits touch or overlap. A `negatives` part
    of the lines holds no digit, and a `beside` part has a non-digit at one end, left out of the
    text: scribbles, letters and blots (outliers.py), or `clutter` (M, 28, 28) uint8 when given (what
    the photo reader cut out beside digits in photos: photocrops.py)."""
    g, n = generator, len(images)
    k = torch.randint(1, MAX_DIGITS + 1, (batch,), generator=g)
    pick = torch.randint(n, (batch, MAX_DIGITS), generator=g)
    digits = images[pick.reshape(-1)].float()[:, None] / 255  # (B*6, 1, 28, 28)
    target = labels[pick] + 1
    present = torch.arange(MAX_DIGITS)[None] < k[:, None]  # (B, 6)
    blank = torch.rand(batch, generator=g) < negatives
    side = torch.where(torch.rand(batch, generator=g) < 0.5, torch.zeros_like(k), k - 1)  # first or last
    junk = blank[:, None] & present | ((torch.arange(MAX_DIGITS)[None] == side[:, None])
                                        & (torch.rand(batch, 1, generator=g) < beside) & (k[:, None] > 1))
    swapped = junk.reshape(-1)
    if swapped.any():
        count = int(swapped.sum())
        made = torch.cat([maker(digits[swapped], g) for maker in (outliers.scribble, outliers.letter, outliers.smudge)])
        if clutter is not None and len(clutter):
            chosen = clutter[torch.randint(len(clutter), (3 * count,), generator=g)]
            made = torch.cat([made, chosen.float()[:, None] / 255])
        digits[swapped] = made[torch.randperm(len(made), generator=g)[:count]].float()
    # The text: the digits present, the non-digits left out, in order.
    kept = present & ~junk
    order = torch.argsort((~kept).int(), dim=1, stable=True)
    target = torch.where(kept, target, torch.zeros_like(target)).gather(1, order)

    # Each digit's size (its height relative to 20 pixels), width, slant and place on the line.
    u = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*shape, generator=g)  # noqa: E731
    scale = u(0.75, 1.1, batch, MAX_DIGITS)
    stretch = u(0.8, 1.25, batch, MAX_DIGITS) * torch.where(k[:, None] == 1, u(1.0, 1.5, batch, 1), torch.ones(1))
    shear = u(-0.3, 0.3, batch)  # of the whole line
    left, right = (c.reshape(batch, MAX_DIGITS) for c in _ink_columns(digits))
    sx = scale * stretch
    touching = torch.rand(batch, 1, generator=g) < 0.5
    gap = torch.where(touching, u(-0.35, 0.02, batch, MAX_DIGITS), u(-0.05, 0.4, batch, MAX_DIGITS)) * 20
    ink_width = (right - left + 1) * sx
    start = torch.zeros(batch, MAX_DIGITS)  # where each digit's ink begins
    start[:, 1:] = torch.cumsum(ink_width[:, :-1] + gap[:, 1:], 1)
    start = start + 8
    baseline = torch.cumsum(torch.randn(batch, MAX_DIGITS, generator=g) * 1.0, 1) + u(-2, 2, batch, 1)
    # Each digit's 28x28 box maps into the wide canvas: its column `left` to `start`.
    cx = start - left * sx + 14 * sx  # where the digit's centre (column 14) goes
    tall, wide = 44, 3 * WIDTH // 2  # the canvas the digits are written on, room for a drifting baseline
    cy = tall / 2 + baseline + 10 * (1 - scale)  # bottoms roughly level: a smaller digit sits lower
    theta = torch.zeros(batch, MAX_DIGITS, 2, 3)
    # affine_grid maps output coordinates in [-1, 1] to input ones: the inverse of the placement.
    theta[..., 0, 0] = wide / (28 * sx)
    theta[..., 0, 2] = (wide / 2 - cx) / (14 * sx)
    theta[..., 1, 1] = tall / (28 * scale)
    theta[..., 1, 2] = (tall / 2 - cy) / (14 * scale)
    grid = _grid(theta.reshape(-1, 2, 3), tall, wide)
    placed = F.grid_sample(digits, grid, align_corners=False).reshape(batch, MAX_DIGITS, tall, wide)
    placed = placed * present[..., None, None]
    line = placed.amax(1, keepdim=True)  # (B, 1, tall, wide)

    # MNIST's convention for the line: its ink 20 pixels high from row 4, from column 4, slanted a little.
    rows, cols = line.amax(3)[:, 0] > 0.2, line.amax(2)[:, 0] > 0.2  # (B, tall), (B, wide)
    top = torch.where(rows, torch.arange(tall).float(), torch.full((tall,), 99.0)).amin(1)
    bottom = torch.where(rows, torch.arange(tall).float(), torch.full((tall,), -1.0)).amax(1)
    first = torch.where(cols, torch.arange(wide).float(), torch.full((wide,), 1e4)).amin(1)
    zoom = 20 / (bottom - top + 1).clamp_min(1)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = WIDTH / (wide * zoom)
    theta[:, 0, 1] = shear * HEIGHT / (wide * zoom)
    theta[:, 0, 2] = (first - 4 / zoom + WIDTH / (2 * zoom)) * 2 / wide - 1
    theta[:, 1, 1] = HEIGHT / (tall * zoom)
    theta[:, 1, 2] = (top - 4 / zoom + HEIGHT / (2 * zoom)) * 2 / tall - 1
    grid = _grid(theta, HEIGHT, WIDTH)
    line = F.grid_sample(line, grid, align_corners=False)
    line = line / line.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    # A line too long for the canvas is left out: an empty canvas with an empty text (still a fair example).
    end = (start + ink_width - first[:, None]) * zoom[:, None] + 4  # each digit's right edge on the canvas
    keep = ((end <= WIDTH - 2) | ~present).all(1)
    target = torch.where(keep[:, None], target, torch.zeros_like(target))
    line = torch.where(keep[:, None, None, None], line, torch.zeros_like(line))
    lengths = (target > 0).sum(1)
    return line, target, lengths


def decode(log_probs: torch.Tensor) -> list[tuple[list[int], list[int], list[float]]]:
    """Best-path decoding of (T, B, 11) log-probabilities: per line the digits, the column where each
    is surest, and its probability there."""
    probs = log_probs.exp()
    best = probs.argmax(-1)  # (T, B)
    out = []
    for b in range(best.shape[1]):
        digits, where, sure = [], [], []
        prev = BLANK
        for t, c in enumerate(best[:, b].tolist()):
            if c != BLANK and c != prev:
                digits.append(c - 1)
                where.append(t)
                sure.append(float(probs[t, b, c]))
            elif c != BLANK and c == prev and float(probs[t, b, c]) > sure[-1]:
                where[-1], sure[-1] = t, float(probs[t, b, c])
            prev = c
        out.append((digits, where, sure))
    return out


def sequence_probability(log_probs: torch.Tensor, digits: list[int]) -> float:
    """P(text | line) for one line's (T, 1, 11) log-probabilities: the sum over every alignment (CTC)."""
    if not digits:
        return float(log_probs[:, 0, BLANK].sum().exp())
    target = torch.tensor([[d + 1 for d in digits]])
    nll = F.ctc_loss(log_probs, target, torch.tensor([log_probs.shape[0]]), torch.tensor([len(digits)]),
                     blank=BLANK, reduction="sum", zero_infinity=True)
    return float(torch.exp(-nll))


def train_reader(images: torch.Tensor, labels: torch.Tensor, steps: int = 6000, batch: int = 64, seed: int = 0,
                 lr: float = 2e-3, bf16: bool = False, clutter: torch.Tensor | None = None,
                 photo_lines: tuple[torch.Tensor, torch.Tensor] | None = None, log=print) -> LineReader:
    """A LineReader trained on lines of `images` (N, 28, 28) uint8 and their `labels` (and non-digits,
    `clutter` among them: see synthesize), one fresh batch of lines per step (AdamW, one-cycle
    schedule), PHOTO_SHARE of it drawn from `photo_lines` when given: (lines uint8 (M, 28, WIDTH),
    texts (M, MAX_DIGITS)) as photocrops.make cuts them out. Channels-last, and bf16 autocast if asked:
    1.6x and 2.6x faster steps than plain fp32 on a 2-core AMD EPYC with AVX512-BF16 (one thread)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = LineReader(**ARGS).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    photos = round(PHOTO_SHARE * batch) if photo_lines is not None and len(photo_lines[0]) else 0
    start, total = time.perf_counter(), 0.0
    model.train()
    for step in range(steps):
        x, target, lengths = synthesize(images, labels, batch - photos, g, clutter)
        if photos:
            pick = torch.randint(len(photo_lines[0]), (photos,), generator=g)
            texts = photo_lines[1][pick]
            x = torch.cat([x, photo_lines[0][pick, None].float() / 255])
            target, lengths = torch.cat([target, texts]), torch.cat([lengths, (texts > 0).sum(1)])
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            log_probs = model(x.contiguous(memory_format=torch.channels_last)).float()
        frames = torch.full((batch,), log_probs.shape[0], dtype=torch.long)
        loss = F.ctc_loss(log_probs, target, frames, lengths, blank=BLANK, zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        total += loss.item()
        if (step + 1) % 500 == 0 and log:
            seconds = time.perf_counter() - start
            log(f"line reader: step {step + 1}/{steps}  ctc loss {total / 500:.3f}  {seconds:.0f} s")
            total = 0.0
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def accuracy(model: LineReader, images: torch.Tensor, labels: torch.Tensor, count: int = 2000, seed: int = 1,
             sure: float = 0.9) -> dict:
    """Exact-line accuracy on `count` fresh lines of these digits, overall and among the lines whose
    text the reader gives a probability of `sure` or more (as predict takes a reading to be sure),
    and the share of lines so read."""
    g = torch.Generator().manual_seed(seed)
    x, target, lengths = synthesize(images, labels, count, g)
    log_probs = model(x)
    got = [digits for digits, _, _ in decode(log_probs)]
    right = np.array([digits == (target[b, :lengths[b]] - 1).tolist() for b, digits in enumerate(got)])
    texts = torch.zeros(count, MAX_DIGITS + 1, dtype=torch.long)
    for b, digits in enumerate(got):
        texts[b, :len(digits)] = torch.tensor(digits[:MAX_DIGITS + 1], dtype=torch.long) + 1
    frames = torch.full((count,), log_probs.shape[0], dtype=torch.long)
    nll = F.ctc_loss(log_probs, texts, frames, torch.tensor([min(len(d), MAX_DIGITS + 1) for d in got]),
                     blank=BLANK, reduction="none", zero_infinity=True)
    confident = (torch.exp(-nll) >= sure).numpy()
    return {"lines": count, "exact": float(right.mean()), "sure": float(confident.mean()),
            "exact_when_sure": float(right[confident].mean()) if confident.any() else 0.0}


def save(path, reader: LineReader, meta: dict):
    """The reader's weights with `meta` and their SHA-256 (as checkpoint.py writes a model), atomically."""
    save_tensors(path, reader.state_dict(), meta, FORMAT)


def load(run) -> LineReader | None:
    """The line reader saved in a run folder (or beside its checkpoint file), or None if it has none.
    A damaged one is an error, not a reader left out without a word."""
    run = Path(run)
    path = (run if run.is_dir() else run.parent) / FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["mnistlab"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != FORMAT or digest(tensors, meta) != meta.get("sha256"):
            raise ValueError("its description or weights do not match their SHA-256")
        reader = LineReader(**meta["args"])
        reader.load_state_dict(tensors)
        reader.meta = meta  # how it was trained, and how well it read lines of validation digits
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as e:
        raise MnistlabError(f"{path}: not a readable line reader ({str(e).splitlines()[0]})") from None
    return reader.eval()


def train_for_run(out, data, cfg, say=lambda *a: None, measure: int = 2000) -> dict:
    """Train the line reader of a run on its training split's digits (the digit model's split), measure
    it on `measure` lines of its validation digits, and save it in the run folder beside the digit model."""
    from .data import split_indices
    from .train import pick_device, precision

    train_idx, val_idx = split_indices(data.train_labels, cfg.val_fraction, cfg.seed, cfg.stratify)
    bf16 = precision(cfg.precision, pick_device("cpu"))[0] == "bf16"  # the line reader trains on the CPU
    clutter = photo_lines = None
    if cfg.photos:  # what the photo reader cut out beside the digits of the photos the digit model saw,
        from . import photocrops  # and the lines it cut out of as many photos of numbers

        images, labels = data.train_images[train_idx].numpy(), data.train_labels[train_idx].numpy()
        crops, kinds = photocrops.cached(images, labels, cfg.photos, cfg.seed)
        clutter = torch.from_numpy(crops[kinds < 0])
        cut = photocrops.cached(images, labels, cfg.photos, cfg.seed, cut_lines=True)
        photo_lines = tuple(map(torch.from_numpy, cut))
        say(f"line reader: {len(photo_lines[0]):,} lines cut out of {cfg.photos:,} photos of numbers")
    start = time.perf_counter()
    reader = train_reader(data.train_images[train_idx], data.train_labels[train_idx], cfg.line_reader, seed=cfg.seed,
                          bf16=bf16, clutter=clutter, photo_lines=photo_lines, log=say)
    seconds = time.perf_counter() - start
    measured = accuracy(reader, data.train_images[val_idx], data.train_labels[val_idx], measure)
    save(Path(out) / FILE, reader, {"args": ARGS, "steps": cfg.line_reader, "seed": cfg.seed,
                                    "photo_lines": len(photo_lines[0]) if photo_lines else 0,
                                    "train_seconds": round(seconds, 1), "validation": measured})
    say(f"line reader: {cfg.line_reader} steps in {seconds:.0f} s; lines of validation digits read exactly "
        f"{measured['exact']:.1%}, {measured['sure']:.1%} of them sure, and {measured['exact_when_sure']:.2%} "
        f"of those right; in {Path(out) / FILE}")
    return measured
