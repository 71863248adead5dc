"""Reading people's own images: find the digits (locate.py), bring each to MNIST's convention, classify it.

MNIST's digits were made by size-normalising each digit to fit a 20x20 box (keeping its aspect
ratio, anti-aliased) and centring it by centre of mass in a 28x28 field, white ink on black
(LeCun et al., http://yann.lecun.com/exdb/mnist/). `to_mnist` does the same to an arbitrary image,
and also thickens strokes much thinner than MNIST's (a pen on a big canvas), which otherwise
shrink to faint hairlines.
"""

import io
import stat
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .checkpoint import load_model
from .errors import MnistlabError
from . import locate
from .models import logits_of, pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_PIXELS = 25_000_000  # refuse larger images (and decompression bombs) before decoding them
MIN_CONFIDENCE = 0.9  # a digit read with a lower probability is reported as unsure
MIN_CONTRAST = 40  # ink must stand this many grey levels (of 255) above the background
ORIENTATION = 0x0112  # the EXIF tag of a photo's orientation
WORK_SIZE = 160  # digits are measured and thickened at this size before the final 20-pixel scaling


def open_image(source, max_pixels: int | None = None, size: int | None = None) -> Image.Image:
    """Open and decode a PNG or JPEG from a path or bytes, refusing images of more than `max_pixels`
    (decompression bombs among them) from their header, before decoding. With `size`, a JPEG is
    decoded straight at the smallest of 1/2, 1/4 or 1/8 scale whose longer side is still `size`
    or more (JPEG draft mode): a 12-megapixel photo costs a sixteenth of its full decoding."""
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
        if size and image.format == "JPEG" and max(image.size) > 2 * size:
            shrink = size / max(image.size)
            image.draft(image.mode, (round(image.width * shrink), round(image.height * shrink)))
        image.load()
        if image.getexif().get(ORIENTATION, 1) != 1:  # phone photos: honour the camera's orientation tag
            image = ImageOps.exif_transpose(image)
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
    m8 = mask.astype(np.uint8)
    area = cv2.countNonZero(m8)
    # Inner pixels: ink with ink above, below, left and right (outside the image counts as ink).
    inner = cv2.countNonZero(cv2.erode(m8, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))))
    return 2 * area / max(area - inner, 1)


def to_mnist(image: Image.Image) -> np.ndarray | None:
    """A whole image as one digit -> uint8 (28, 28) in MNIST's convention, or None if there is no ink."""
    return normalise(greyscale_ink(image))


def normalise(g: np.ndarray) -> np.ndarray | None:
    """Float ink (H, W), white on black -> uint8 (28, 28) in MNIST's convention, or None if it is blank."""
    if g.size == 0 or g.max() < MIN_CONTRAST:
        return None
    g = g.copy()
    g[g < 0.15 * g.max()] = 0  # paper texture and JPEG noise
    x, y, w, h = cv2.boundingRect((g > 0.25 * g.max()).view(np.uint8))
    g = g[y:y + h, x:x + w]

    # Work at a fixed size: bring strokes towards MNIST's ~1/8 of the digit's height.
    scale = WORK_SIZE / max(g.shape)
    g = _resize(g, max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale)), Image.BILINEAR).clip(0, None)
    width = stroke_width(g > 0.5 * g.max())
    target = WORK_SIZE / 8
    if width < 0.5 * target:  # a pen on a big canvas; 7 of MNIST's first 2,000 test digits are this thin
        size = int(target - width) | 1
        g = np.pad(g, size // 2)  # room to grow: a thin "1" is only a few pixels wide
        g = cv2.dilate(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    elif width > 2 * target:  # a felt-tip marker: strokes so thick that the holes close up
        size = min(int(width - target), round(target)) | 1
        g = cv2.erode(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
        if g.max() <= 0:
            return None

    # Longer side to 20 pixels, anti-aliased, full contrast.
    scale = 20 / max(g.shape)
    small = _resize(g, max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale))).clip(0, None)
    if small.max() <= 0:
        return None
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


def _ways(found: locate.Found, mark: locate.Mark, most: int) -> list[list[tuple]]:
    """The ways to read `mark`, each a list of boxes: as one digit and, when it is wider than a digit,
    as 2 or more (up to `most`) touching digits."""
    _, _, w, h = mark.box
    most = max(1, min(most, int(w / (0.55 * h))))
    return [locate.cuts(found, mark, k) for k in range(1, most + 1)]


def _expected_count(found: locate.Found, mark: locate.Mark) -> tuple[float, float]:
    """How many digits `mark` looks like by its width, and how much to trust that: against the other
    digits of its line when there are some (handwriting differs in width more than in height), less
    surely against its own height."""
    widths = [m.box[2] for m in found.digits if m is not mark and m.box[2] < 1.2 * m.box[3]]
    if len(widths) >= 2:
        return mark.box[2] / max(float(np.median(widths)), 1), 0.5
    return mark.box[2] / max(0.9 * mark.box[3], 1), 0.25


def read(model, image: Image.Image, single: bool = False, min_confidence: float = MIN_CONFIDENCE,
         top: int = 3, debug: dict | None = None) -> dict:
    """Read the digits in a photo, scan or drawing, left to right.

    Returns {"text", "status", "confidence", "digits"}: status "ok" with the digits read as text;
    "no_digit" when nothing in the image looks like a digit; "unsure" when a digit's probability is
    below `min_confidence` (then "text" is None and "guess" holds the best reading). Each digit has its
    "digit", "confidence", "box" [x, y, width, height] in the image's pixels and its "top" classes.
    With `single`, the image is taken to hold one digit: the largest mark. With `debug`, the dict is
    filled with what a --debug picture needs ("found", "boxes", "inputs") and each digit's
    class "probabilities"."""
    found = locate.find_digits(image)
    marks = found.digits
    if single and marks:
        keep = max(marks, key=lambda m: m.box[2] * m.box[3])
        found.rejected += [replace(m, reason="not the largest") for m in marks if m is not keep]
        found.digits = marks = [keep]
    # Every way of reading every mark, classified in one batch.
    options = [_ways(found, m, 1 if single else 6) for m in marks]
    crops, rows_of = [], {}  # rows_of[(mark, way)]: the rows of crops that way cuts the mark into
    for mi, (mark, ways) in enumerate(zip(marks, options)):
        for wi, boxes in enumerate(ways):
            for box in boxes:
                rows_of.setdefault((mi, wi), []).append(len(crops))
                crops.append(normalise(found.crop(mark, box)))
    probs = model.probabilities(np.stack([c if c is not None else np.zeros((28, 28), np.uint8) for c in crops])) \
        if crops else np.zeros((0, len(model.meta["classes"])))
    classes = model.meta["classes"]
    digits, inputs, boxes, chosen = [], [], [], []
    for mi, (mark, ways) in enumerate(zip(marks, options)):
        best, best_score = None, -np.inf
        expected, trust = _expected_count(found, mark)
        for wi, way in enumerate(ways):
            rows = rows_of[(mi, wi)]
            if any(crops[k] is None for k in rows):
                continue
            # The model's confidence in the pieces, and how well their number fits the mark's width.
            score = float(np.mean([np.log(probs[k].max() + 1e-9) for k in rows])) - trust * abs(wi + 1 - expected)
            if score > best_score:
                best, best_score = (way, rows), score
        if best is None:
            continue
        for box, k in zip(*best):
            p = probs[k]
            ranking = ranked(p, classes, top)
            digits.append({"digit": ranking[0]["class"], "confidence": ranking[0]["probability"],
                           "box": found.original_box(box), "top": ranking})
            inputs.append(crops[k])
            boxes.append(box)
            chosen.append(p)
    if debug is not None:
        debug.update(found=found, inputs=inputs, boxes=boxes, probabilities=chosen)
    return summarise(digits, min_confidence)


def summarise(digits: list[dict], min_confidence: float = MIN_CONFIDENCE) -> dict:
    """The reading of the digits found, left to right (each {"digit", "confidence", "box", "top"}):
    "no_digit" when there are none, "unsure" (the text only as a "guess") when any digit's probability
    is below `min_confidence`, else "ok"; the confidence of the whole is the product of the digits'."""
    if not digits:
        return {"text": None, "status": "no_digit", "confidence": None, "digits": []}
    text = "".join(d["digit"] for d in digits)
    confidence = float(np.prod([d["confidence"] for d in digits]))
    sure = all(d["confidence"] >= min_confidence for d in digits)
    result = {"text": text if sure else None, "status": "ok" if sure else "unsure",
              "confidence": round(confidence, 6), "digits": digits}
    return result if sure else result | {"guess": text}


def read_files(model, inputs, single: bool = False, min_confidence: float = MIN_CONFIDENCE, top: int = 3,
               debug_dir=None) -> list[dict]:
    """read() for each image file (folders expand to their PNG and JPEG files): {"file", ...the
    reading} or {"file", "error"}. With `debug_dir`, writes FILE_STEM.png (boxes found and rejected)
    and FILE_STEM-digits.png (the 28x28 inputs the model read) there."""
    results = []
    for path in image_paths(inputs):
        try:
            image = open_image(path, size=locate.WORK_SIZE)
        except MnistlabError as e:
            results.append({"file": str(path), "error": str(e)})
            continue
        seen = {} if debug_dir else None
        results.append({"file": str(path)} | read(model, image, single, min_confidence, top, seen))
        if debug_dir:
            write_debug(Path(debug_dir), path.stem, results[-1], seen)
    return results


def write_debug(folder: Path, stem: str, reading: dict, seen: dict):
    """The debug pictures of one reading (see read_files)."""
    from .files import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    labels = [f"{d['digit']} {d['confidence']:.0%}" for d in reading["digits"]]
    with atomic_path(folder / f"{stem}.png") as tmp:
        locate.debug_picture(seen["found"], seen["boxes"], labels).save(tmp, "PNG")
    if seen["inputs"]:
        strip = np.concatenate([np.pad(d, 2, constant_values=128) for d in seen["inputs"]], axis=1)
        with atomic_path(folder / f"{stem}-digits.png") as tmp:
            Image.fromarray(strip).resize((strip.shape[1] * 4, strip.shape[0] * 4), Image.NEAREST).save(tmp, "PNG")
