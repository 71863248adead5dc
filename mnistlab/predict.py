"""Reading people's own images: bring any PNG/JPEG to MNIST's convention, then classify it.

MNIST's digits were made by size-normalising each digit to fit a 20x20 box (keeping its aspect
ratio, anti-aliased) and centring it by centre of mass in a 28x28 field, white ink on black
(LeCun et al., http://yann.lecun.com/exdb/mnist/). `to_mnist` does the same to an arbitrary image,
and also thickens strokes much thinner than MNIST's (a pen on a big canvas), which otherwise
shrink to faint hairlines.
"""

import io
import stat
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from .checkpoint import load_model
from .errors import MnistlabError
from .models import logits_of, pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_PIXELS = 25_000_000  # refuse larger images (and decompression bombs) before decoding them
MIN_CONTRAST = 40  # ink must stand this many grey levels (of 255) above the background
WORK_SIZE = 160  # digits are measured and thickened at this size before the final 20-pixel scaling


def open_image(source, max_pixels: int | None = None) -> Image.Image:
    """Open and decode a PNG or JPEG from a path or bytes, refusing images of more than `max_pixels`
    (decompression bombs among them) from their header, before decoding."""
    name = str(source) if not isinstance(source, (bytes, bytearray)) else "image"
    max_pixels = max_pixels or MAX_PIXELS
    try:
        if not isinstance(source, (bytes, bytearray)):
            check_regular_file(source)
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        if image.format not in ("PNG", "JPEG"):
            raise MnistlabError(f"{name}: not a PNG or JPEG image ({image.format})")
        if image.width * image.height > max_pixels:
            raise MnistlabError(f"{name}: image is {image.width}x{image.height}, larger than {max_pixels:,} pixels")
        image.load()
        image = ImageOps.exif_transpose(image)  # phone photos: honour the camera's orientation tag
    except FileNotFoundError:
        raise MnistlabError(f"{name}: no such file") from None
    except PermissionError:
        raise MnistlabError(f"{name}: permission denied") from None
    except Image.DecompressionBombError:  # PIL's own refusal, from the header, of far larger images
        raise MnistlabError(f"{name}: image is larger than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MnistlabError(f"{name}: cannot decode image ({e})") from None
    return image


def greyscale_ink(image: Image.Image) -> np.ndarray:
    """Float (H, W) image, white ink on a black background at 0, whatever the input's mode or polarity."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba, np.float32)[..., 3] / 255
        lum = np.asarray(rgba.convert("L"), np.float32)
        # Put transparent pixels on a background that contrasts with the visible ink.
        ink_lum = (lum * alpha).sum() / max(alpha.sum(), 1e-6)
        g = lum * alpha + (0.0 if ink_lum > 127 else 255.0) * (1 - alpha)
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16- and 32-bit greyscale: rescale, don't clip
        g = np.asarray(image, np.float32)
        if g.max() > 255:
            g = g * (255 / (65535 if g.max() <= 65535 else g.max()))
    else:
        g = np.asarray(image.convert("L"), np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on light paper: invert
        g, background = 255 - g, 255 - background
    return np.clip(g - background, 0, None)


def _resize(a: np.ndarray, height: int, width: int, method=Image.LANCZOS) -> np.ndarray:
    # reducing_gap: shrink by whole factors with a box filter first, then Lanczos (2.7x faster, same look)
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((width, height), method, reducing_gap=2.0))


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary ink mask: area / half the boundary (a stroke has two edges)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    boundary = mask.sum() - inner.sum()
    return 2 * mask.sum() / max(boundary, 1)


def to_mnist(image: Image.Image) -> np.ndarray | None:
    """An image -> uint8 (28, 28) in MNIST's convention, or None if there is no ink to read."""
    g = greyscale_ink(image)
    if g.max() < MIN_CONTRAST:
        return None
    g[g < 0.15 * g.max()] = 0  # paper texture and JPEG noise
    rows, cols = np.nonzero(g > 0.25 * g.max())
    g = g[rows.min():rows.max() + 1, cols.min():cols.max() + 1]

    # Work at a fixed size: thicken strokes towards MNIST's ~1/8 of the digit's height.
    scale = WORK_SIZE / max(g.shape)
    g = _resize(g, max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale)), Image.BILINEAR).clip(0, None)
    width = stroke_width(g > 0.5 * g.max())
    target = WORK_SIZE / 8
    if width < 0.5 * target:  # 7 of MNIST's first 2,000 test digits are this thin
        size = int(target - width) | 1  # MaxFilter wants an odd size
        g = np.pad(g, size // 2)  # room to grow: a thin "1" is only a few pixels wide
        g = np.asarray(Image.fromarray(g, "F").filter(ImageFilter.MaxFilter(size)))

    # Longer side to 20 pixels, anti-aliased, full contrast.
    scale = 20 / max(g.shape)
    small = _resize(g, max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale))).clip(0, None)
    small *= 255 / small.max()

    # Centre of mass to the centre of the 28x28 field.
    ys, xs = np.indices(small.shape)
    total = small.sum()
    dy = round(13.5 - (ys * small).sum() / total)
    dx = round(13.5 - (xs * small).sum() / total)
    out = np.zeros((28, 28), np.float32)
    y0, x0 = max(dy, 0), max(dx, 0)
    y1, x1 = min(dy + small.shape[0], 28), min(dx + small.shape[1], 28)
    out[y0:y1, x0:x1] = small[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return out.round().clip(0, 255).astype(np.uint8)


class TorchModel:
    """A checkpoint's model as `predict` and `serve` use it: `meta` (the checkpoint's description) and
    `probabilities(digits)`. export.OnnxModel offers the same two through onnxruntime."""

    backend = "pytorch"

    def __init__(self, path, device="cpu"):
        self.model, self.meta = load_model(path, device)
        self.device = device

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) float32 for preprocessed digits (N, 28, 28) uint8."""
        x = pixels(torch.from_numpy(digits)).to(self.device)
        return torch.softmax(logits_of(self.model, x) / self.model.temperature, 1).cpu().numpy()


def ranked(probs: np.ndarray, classes, top: int = 3) -> list[dict]:
    """The `top` classes of one row of probabilities, most likely first."""
    order = np.argsort(-probs, kind="stable")[:top]
    return [{"class": classes[i], "probability": round(float(probs[i]), 6)} for i in order]


def classify(model, digits: list[np.ndarray], top: int = 3) -> list[list[dict]]:
    """Top classes with probabilities for each preprocessed (28, 28) uint8 digit."""
    if not digits:
        return []
    return [ranked(p, model.meta["classes"], top) for p in model.probabilities(np.stack(digits))]


def check_regular_file(path):
    """Refuse anything but a regular file before opening it: reading a FIFO named x.png would wait
    for a writer forever, and a device would never end."""
    mode = Path(path).stat().st_mode  # FileNotFoundError and PermissionError are the caller's to report
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise MnistlabError(f"{path}: not a regular file ({kind}); skipped")


def image_paths(inputs) -> list[Path]:
    """Expand files and folders (their PNG/JPEG files, sorted) into a list of image paths."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise MnistlabError(f"{item}: no PNG or JPEG files in this folder")
            paths += found
        elif item.exists():
            paths.append(item)
        else:
            raise MnistlabError(f"{item}: no such file or folder")
    return paths


def predict_files(model, inputs, top: int = 3) -> list[dict]:
    """One result per image: {"file", "blank": False, "top": [...], "digit"}, {"file", "blank": True},
    or {"file", "error"}. "digit" is the (28, 28) uint8 image the model saw."""
    results = []
    for path in image_paths(inputs):
        try:
            digit = to_mnist(open_image(path))
        except MnistlabError as e:
            results.append({"file": str(path), "error": str(e)})
            continue
        results.append({"file": str(path), "blank": digit is None} | ({} if digit is None else {"digit": digit}))
    readable = [r for r in results if "digit" in r]
    for r, top_classes in zip(readable, classify(model, [r["digit"] for r in readable], top)):
        r["top"] = top_classes
    return results
