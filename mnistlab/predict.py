"""Reading people's own images: find the digits (locate.py), bring each to MNIST's convention, classify it.

MNIST's digits were made by size-normalising each digit to fit a 20x20 box (keeping its aspect
ratio, anti-aliased) and centring it by centre of mass in a 28x28 field, white ink on black
(LeCun et al., http://yann.lecun.com/exdb/mnist/). `to_mnist` does the same to an arbitrary image,
and also thickens strokes much thinner than MNIST's (a pen on a big canvas), which otherwise
shrink to faint hairlines.
"""

import functools
import io
import stat
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import lines, locate
from .checkpoint import load_model
from .errors import MnistlabError
from .models import logits_of, pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".avif", ".heic", ".heif", ".bmp", ".tif", ".tiff"}
# MPO: a JPEG with more pictures after the photo (a phone's HDR gain map or depth map), read as the JPEG
# it is; AVIF with a PIL built with libavif (the Pillow 13 that constraints.txt pins is); HEIF (an iPhone's
# HEIC photos) with the heic extra, pillow-heif.
FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "AVIF", "HEIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, AVIF, HEIC, BMP or TIFF"  # for messages
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
MAX_PIXELS = 25_000_000  # refuse larger images (and decompression bombs) before decoding them
MIN_CONFIDENCE = 0.9  # a digit read with a lower probability is reported as unsure
TILT = 4.0  # degrees: a mark on paper tilted more than this is turned upright before it is read
NOT_A_DIGIT = 0.25  # marks read with lower probabilities, all of them, are no digit at all
MIN_CONTRAST = 40  # ink must stand this many grey levels (of 255) above the background
ORIENTATION = 0x0112  # the EXIF tag of a photo's orientation
NOTE_MARGIN = 0.03  # of a note's shorter side: kept around its even region, whose edge stops short of the note's
SHEET_SIZE = 600  # pixels: a sheet cut out of a photo smaller than a photo is enlarged to this (longer side)
WORK_SIZE = 160  # digits are measured and thickened at this size before the final 20-pixel scaling


def open_image(source, max_pixels: int | None = None, size: int | None = None) -> Image.Image:
    """Open and decode a PNG, JPEG, WebP, AVIF, HEIC (HEIF), BMP or TIFF image from a path or bytes, refusing from its
    header, before decoding, an image that would decode to more than `max_pixels` (decompression bombs
    among them). With `size`, a JPEG is decoded straight at the smallest of 1/2, 1/4 or 1/8 scale whose
    longer side is still `size` or more (JPEG draft mode): a 12-megapixel photo costs a sixteenth of its
    full decoding, and a 48-megapixel one is no larger a task than a 12-megapixel one at full size.
    A HEIC photo (as iPhones take them) needs the heic extra (pillow-heif), which turns it upright as
    it decodes it."""
    name = str(source) if not isinstance(source, (bytes, bytearray)) else "image"
    max_pixels = max_pixels or MAX_PIXELS
    try:
        if not isinstance(source, (bytes, bytearray)):
            check_regular_file(source)
            with open(source, "rb") as f:
                head = f.read(12)
        else:
            head = bytes(source[:12])
        if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS and not _heif_opener():
            raise MnistlabError(f"{name}: a HEIC photo (as iPhones take them); to read it, install the heic extra "
                                "(pip install 'mnistlab[heic]') or save it as JPEG")
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        if image.format not in FORMATS:
            raise MnistlabError(f"{name}: not a {FORMAT_NAMES} image ({image.format})")
        header = image.size
        width, height = draft(image, size).size  # the pixels it decodes to
        if width * height > max_pixels:
            raise MnistlabError(f"{name}: image is {header[0]}x{header[1]}, larger than {max_pixels:,} pixels")
        if image.format == "PNG" and isinstance(source, (bytes, bytearray)):
            plain = plain_png(source)
            if plain is not None:
                return plain
        image.load()
        if image.getexif().get(ORIENTATION, 1) != 1:  # phone photos: honour the camera's orientation tag
            image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):  # 16 bits a pixel (a scanner's PNG or TIFF): scaled, not clipped, to 8
            image = Image.fromarray((np.asarray(image, np.float32) / 257).clip(0, 255).round().astype(np.uint8))
        if max(image.size) < max(header):  # decoded in draft mode: `read` gives boxes in the file's pixels
            image.info[locate.DRAFT_SCALE] = max(header) / max(image.size)
    except FileNotFoundError:
        raise MnistlabError(f"{name}: no such file") from None
    except PermissionError:
        raise MnistlabError(f"{name}: permission denied") from None
    except Image.DecompressionBombError:  # PIL's own refusal, from the header, of far larger images
        raise MnistlabError(f"{name}: image is larger than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MnistlabError(f"{name}: cannot decode image ({e})") from None
    return image


def draft(image: Image.Image, size: int | None) -> Image.Image:
    """`image`, opened but not decoded, set to decode straight at the smallest of 1/2, 1/4 or 1/8 scale
    whose longer side is still `size` or more when it is a JPEG (JPEG draft mode); its size is then the
    size it decodes to. Other formats decode whole."""
    if size and image.format in ("JPEG", "MPO") and max(image.size) > 2 * size:
        shrink = size / max(image.size)
        image.draft(image.mode, (round(image.width * shrink), round(image.height * shrink)))
    return image


@functools.cache
def _heif_opener() -> bool:
    """Whether PIL can open HEIF images: pillow-heif (the heic extra) is installed, and registered."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def plain_png(blob: bytes) -> Image.Image | None:
    """A plain PNG, as a canvas's toBlob makes (8-bit RGB or RGBA, not interlaced), decoded by libspng
    through pyspng (installed with the serve extra): the same pixels as PIL's in under half the time
    (0.19 ms instead of 0.52 for the drawing page's 280x280 canvas). None for any other PNG, one that
    may carry transparency for RGB (tRNS), an orientation (eXIf, or EXIF in a text chunk) or frames
    (acTL), one libspng refuses, or when pyspng is not installed: PIL then decodes it, or says what is
    wrong with it. The bytes are searched for those chunks' names, so that compressed data that
    happens to hold one only sends the image to PIL."""
    try:
        import pyspng
    except ImportError:
        return None
    if len(blob) < 33 or blob[12:16] != b"IHDR":
        return None
    bit_depth, colour_type, interlace = blob[24], blob[25], blob[28]
    if bit_depth != 8 or colour_type not in (2, 6) or interlace != 0:
        return None
    if any(name in blob for name in (b"tRNS", b"eXIf", b"Raw profile type exif", b"acTL")):
        return None
    try:
        return Image.fromarray(pyspng.load(bytes(blob)))  # (H, W, 4) is RGBA, (H, W, 3) RGB
    except RuntimeError:  # corrupt or truncated: PIL's message says what is wrong
        return None


def greyscale_ink(image: Image.Image) -> np.ndarray:
    """Float (H, W) image, white ink on a black background at 0, whatever the input's mode or polarity."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:  # on a ground its ink stands out on
        g = cv2.cvtColor(locate.opaque(np.asarray(image.convert("RGBA"))), cv2.COLOR_RGB2GRAY).astype(np.float32)
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


def normalise(g: np.ndarray, min_contrast: float = MIN_CONTRAST) -> np.ndarray | None:
    """Float ink (H, W), white on black -> uint8 (28, 28) in MNIST's convention, or None if it is
    blank (no ink reaches `min_contrast`)."""
    cleaned = _cleaned(g, min_contrast)
    if cleaned is None:
        return None
    g = _even_strokes(cleaned[0], WORK_SIZE / max(cleaned[0].shape))
    if g is None:
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


def line_input(g: np.ndarray, min_contrast: float = MIN_CONTRAST) -> tuple[np.ndarray, float, float] | None:
    """Float ink (H, W) of a run of digits, white on black -> uint8 (28, W') as lines.LineReader reads
    it (MNIST's convention for a line: the ink 20 pixels high from row 4 and column 4, strokes as
    thick as MNIST's), with the column of `g` where the ink begins and the pixels of the line per
    pixel of `g`; None if it is blank."""
    cleaned = _cleaned(g, min_contrast)
    if cleaned is None:
        return None
    g, left = cleaned
    zoom = 20 / g.shape[0]
    g = _even_strokes(g, WORK_SIZE / g.shape[0], pad=False)  # (a thin stroke at the border grows inwards only)
    if g is None:
        return None
    small = _resize(g, 20, max(1, round(g.shape[1] * 20 / g.shape[0]))).clip(0, None)
    if small.max() <= 0:
        return None
    out = np.zeros((28, small.shape[1] + 8), np.float32)
    out[4:24, 4:-4] = small * (255 / small.max())
    return out.round().clip(0, 255).astype(np.uint8), left, zoom


def _cleaned(g: np.ndarray, min_contrast: float) -> tuple[np.ndarray, int] | None:
    """The ink without paper texture and JPEG noise, cut to its box, and the column where the box
    begins; None if no ink reaches `min_contrast`."""
    if g.size == 0 or g.max() < min_contrast:
        return None
    g = g.copy()
    g[g < 0.15 * g.max()] = 0  # paper texture and JPEG noise
    x, y, w, h = cv2.boundingRect((g > 0.25 * g.max()).view(np.uint8))
    g = g[y:y + h, x:x + w]
    return g, x


def _even_strokes(g: np.ndarray, scale: float, pad: bool = True) -> np.ndarray | None:
    """`g` scaled by `scale` to the working size, its strokes brought towards MNIST's ~1/8 of a digit's
    height: a pen on a big canvas thickened, a felt-tip marker thinned (None if nothing is left)."""
    g = _resize(g, max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale)), Image.BILINEAR).clip(0, None)
    width = stroke_width(g > 0.5 * g.max())
    target = WORK_SIZE / 8
    if width < 0.5 * target:  # a pen on a big canvas; 7 of MNIST's first 2,000 test digits are this thin
        size = int(target - width) | 1
        if pad:
            g = np.pad(g, size // 2)  # room to grow: a thin "1" is only a few pixels wide
        g = cv2.dilate(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    elif width > 2 * target:  # a felt-tip marker: strokes so thick that the holes close up
        size = min(int(width - target), round(target)) | 1
        g = cv2.erode(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
        if g.max() <= 0:
            return None
    return g


def mark_input(found: locate.Found, mark: locate.Mark) -> np.ndarray | None:
    """A mark that locate found, as the model reads it (locate has judged its ink already)."""
    return normalise(upright_ink(found, mark)[0], locate.FAINT.pixel)


def upright_ink(found: locate.Found, mark: locate.Mark) -> tuple[np.ndarray, np.ndarray]:
    """A mark's ink, turned upright with its paper when the paper is tilted by more than TILT degrees,
    and the affine map (2, 3) from its pixels back to those of the mark's box."""
    ink = found.crop(mark)
    tilt = found.tilt
    if abs(tilt) <= TILT:
        return ink, np.float32([[1, 0, 0], [0, 1, 0]])
    pad = max(ink.shape) // 2
    ink = np.pad(ink, pad)
    turn = cv2.getRotationMatrix2D(((ink.shape[1] - 1) / 2, (ink.shape[0] - 1) / 2), tilt, 1.0)
    back = cv2.invertAffineTransform(turn)
    back[:, 2] -= pad
    return cv2.warpAffine(ink, turn, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR), back


class TorchModel:
    """A checkpoint's model as `predict` and `serve` use it: `meta` (the checkpoint's description),
    `probabilities(digits)` and `lines`, the line reader saved in its run folder (lines.py) or None.
    export.OnnxModel offers the same through onnxruntime."""

    backend = "pytorch"

    def __init__(self, path, device="cpu"):
        self.model, self.meta = load_model(path, device)
        self.device = device
        self.lines = lines.load(path)

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
    """Expand files and folders (their image files: IMAGE_SUFFIXES, sorted) into a list of image paths."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise MnistlabError(f"{item}: no {FORMAT_NAMES} files in this folder")
            paths += found
        elif item.exists():
            paths.append(item)
        else:
            raise MnistlabError(f"{item}: no such file or folder")
    return paths


MAX_PIECES = 4  # pieces joined into one digit at most (a "4" in two strokes, a broken pencil line, slices)
SKIP = np.log(0.3)  # the score of leaving out a small mark (a speck, a stray stroke) instead of reading it
WIDE = 1.3  # a mark wider than this part of its height may be touching digits: it is sliced
WHOLE = 2.0  # a sliced mark up to this many times wider than tall may be one digit as it is
CUT = np.log(0.5)  # the score of each digit read from a part of a sliced mark
SEQUENCE = 1.0  # a mark at least as wide as tall may be digits written into each other (a slanted "8" is 0.9)
SHORT = 0.65  # a digit of the line reader's reading of a mark is at least this part as tall as its tallest
AGREE = 0.75  # an unsure digit the line reader may make sure must be read with this probability at least
# The reasons a piece of a digit is not read (locate, and read_found's own): beside a "1", see _piece_beside.
PIECES = ("too faint", "too small", "smaller than the digits", "off the line of digits", "left out", "not the digit")


def _pieces(found: locate.Found, marks: list[locate.Mark]) -> tuple[list[locate.Mark], list[tuple]]:
    """The marks left to right, each one wider than a digit sliced where its ink is thinnest; and
    for each mark (i, j, mark): its pieces i..j."""
    pieces, spans = [], []
    for m in marks:
        part = locate.slices(found, m) if m.box[2] > WIDE * m.h else [m]
        spans.append((len(pieces), len(pieces) + len(part) - 1, m))
        pieces += part
    return pieces, spans


def read_whole(mark: locate.Mark) -> bool:
    """Whether the line reader reads a mark whole (_sequences; photocrops cuts its lines by the same rule):
    at least SEQUENCE times as wide as tall, and no wider than a run of lines.MAX_DIGITS digits could be."""
    return SEQUENCE * mark.h <= mark.box[2] <= 2 * lines.MAX_DIGITS * mark.h


def _sequences(model, found: locate.Found, spans: list[tuple]) -> list[tuple[int, int, locate.Mark, list[dict]]]:
    """The marks that the line reader reads whole (read_whole), read as a run of digits by the model's
    line reader (lines.LineReader; none without one): for each that it reads as two digits or more,
    (i, j, mark, digits): its pieces i..j, and each digit's "digit", "probabilities" (over the classes,
    at the line's column where the reader is surest of it, scaled down to the whole text's), "box"
    (working pixels: the mark's columns cut halfway between the digits' columns), "input" (28x28 of the
    line around its column) and "p", the probability of the whole text (lines.sequence_probability)."""
    reader = getattr(model, "lines", None)
    wide = [(i, j, m) for i, j, m in spans if read_whole(m)]
    if reader is None or not wide:
        return []
    inks = [upright_ink(found, m) for _, _, m in wide]
    inputs = [line_input(ink, locate.FAINT.pixel) for ink, _ in inks]
    kept = [(span, ink, li) for span, ink, li in zip(wide, inks, inputs) if li is not None]
    if not kept:
        return []
    width = max(li[0].shape[1] for _, _, li in kept)
    batch = np.zeros((len(kept), 1, 28, width), np.float32)
    for b, (_, _, (line, _, _)) in enumerate(kept):
        batch[b, 0, :, :line.shape[1]] = line / 255
    log_probs = reader.log_probabilities(batch)  # (T, B, 11)
    out = []
    for b, ((i, j, m), (ink, back), (line, left, zoom)) in enumerate(kept):
        lp = log_probs[:line.shape[1] // 2, b:b + 1]
        (digits, where, _), = lines.decode(lp)
        if len(digits) < 2:
            continue
        p = lines.sequence_probability(lp, digits)
        # Column t of the reader's output is pixels 2t..2t+1 of the line, whose column 4 is `left` of the
        # ink. CTC emits a digit anywhere over it, mostly late: the columns are moved together so that
        # their mean is the ink's centre of mass.
        cols = np.array([left + (2 * t + 1 - 4) / zoom for t in where])
        columns = ink.sum(axis=0)
        cols += (columns * np.arange(len(columns))).sum() / columns.sum() - cols.mean()
        inked = np.nonzero(columns)[0]
        bounds = [inked[0], *((cols[:-1] + cols[1:]) / 2), inked[-1] + 1]
        bounds = np.clip(np.round(bounds).astype(int), inked[0], inked[-1] + 1)
        rows = np.nonzero(ink.sum(axis=1))[0]
        middle = (rows[0] + rows[-1]) / 2
        x, y, w, h = m.box
        cuts = np.clip([round(back[0, 0] * c + back[0, 1] * middle + back[0, 2]) for c in bounds], 0, w)
        crop = found.crop(m)
        padded = np.pad(line, ((0, 0), (14, 14)))
        parts = [(cuts[k], max(cuts[k + 1], cuts[k] + 1)) for k in range(len(digits))]  # each digit's columns
        inked_rows = [np.nonzero(crop[:, a:c].sum(axis=1) > 0)[0] for a, c in parts]
        tops = [(int(r[0]), int(r[-1] + 1 - r[0])) if len(r) else (0, h) for r in inked_rows]  # (top, height)
        # The digits of a number are about as tall as each other: a much shorter one is part of its
        # neighbour (the hook at the start of a "7", read "57").
        if min(tall for _, tall in tops) < SHORT * max(tall for _, tall in tops):
            continue
        row = []
        for (d, t), (a, c), (top, tall) in zip(zip(digits, where), parts, tops):
            # A digit is as sure as the whole text is: the reader can be sure of every digit it
            # reads yet leave one out (on lines of validation digits, P(text) >= 0.9 is right 99.7%
            # of the time, every digit's own >= 0.9 only 94%).
            probs = np.exp(lp[t, 0, 1:].numpy())
            probs *= min(1.0, max(p, NOT_A_DIGIT) / probs.max())  # digits, if not which: unsure, not no digit
            row.append({"digit": d, "probabilities": probs, "p": p,
                        "box": (x + int(a), y + top, int(c - a), tall), "input": padded[:, 2 * t + 1:2 * t + 29]})
        out.append((i, j, m, row))
    return out


def _units(pieces: list[locate.Mark]) -> list[tuple[int, int, locate.Mark]]:
    """The runs i..j of neighbouring pieces that may be one digit: each piece alone, up to MAX_PIECES
    neighbours whose union is no wider than a digit, and all the slices of a mark up to WHOLE times
    wider than tall."""
    units = []
    for i in range(len(pieces)):
        for j in range(i, min(len(pieces), i + MAX_PIECES)):
            run = pieces[i:j + 1]
            union = locate.join(run) if j > i else pieces[i]
            if j > i and union.box[2] > 1.2 * union.h:
                break
            # Two marks each as tall as the whole side by side are two digits ("11", "19"), unless
            # together they are as narrow as one (the halves of a broken "0") or are slices of one mark.
            partial = any(m.h < 0.75 * union.h for m in run)
            sliced = any(set(a.labels) & set(b.labels) for a, b in zip(run, run[1:]))
            if j == i or partial or sliced or union.box[2] <= 0.8 * union.h:
                units.append((i, j, union))
        # A wide mark whole, all its slices joined again (a "0" or a "7" written wide is one digit):
        if i == 0 or pieces[i - 1].labels != pieces[i].labels:
            j = i
            while j + 1 < len(pieces) and pieces[j + 1].labels == pieces[i].labels:
                j += 1
            union = locate.join(pieces[i:j + 1])
            if j > i and union.box[2] <= WHOLE * union.h and (i, j) not in [unit[:2] for unit in units]:
                units.append((i, j, union))
    return units


def read(model, image: Image.Image, single: bool = False, min_confidence: float = MIN_CONFIDENCE,
         top: int = 3, debug: dict | None = None) -> dict:
    """Read the digits in a photo, scan or drawing, left to right.

    Returns {"text", "status", "confidence", "digits"}: status "ok" with the digits read as text;
    "no_digit" when nothing in the image looks like a digit; "unsure" when a digit's probability is
    below `min_confidence` or the number goes on where it cannot be read (then "text" is None and
    "guess" holds the best reading); see `summarise`. Each digit has its
    "digit", "confidence", "box" [x, y, width, height] in the image's pixels (a JPEG that `open_image`
    decoded in draft mode: in the file's full-size pixels) and its "top" classes.
    With `single`, the image is taken to hold one digit. With `debug`, the dict is filled with what a
    --debug picture needs ("found", "boxes", "inputs") and each digit's class "probabilities".

    A picture no larger than locate.PHOTO is a drawing or a scan, read as it is, unless its border is
    uneven: then it is a photo cropped to its digit, enlarged and read as a photo (see `_photo_crop`).

    A photo that is not read surely is looked at again with the paper's colour estimated over a
    window half as wide (locate.NARROW_WINDOW): the wide window, made to be wider than any stroke,
    is wider than a sticky note or a page seen from afar, and mixes the desk into the paper's colour.
    If that is not sure either and the photo shows a sheet on a darker desk (locate.sheet_box), and no
    digit-sized mark beside the digits lies on that darker surface (then it is the page in a deep
    shadow, not a desk: locate.Found.off_paper), the sheet alone is cut out and read the same way: it
    then fills the working image, so that a page seen from afar is seen in more detail, and the desk's
    grain is out of the picture; a sheet cut out smaller than a photo (a card or a note seen from afar)
    is enlarged to SHEET_SIZE, so that it is read as a photo, not as a drawing. (A --debug picture then
    shows the sheet.) If that is not sure either and the photo shows a note or sheet of even colour
    lying whole in it (locate.note_corners: darker than its desk, or on a checked cloth, as well as
    light on dark), the note alone is read,
    turned into an upright rectangle (see `_read_note`). Each further reading is given only when it is
    sure, and the sheet's or note's only when its digits are no smaller than the whole photo's
    smallest (MIN_HEIGHT of it).

    Last, digits read unsure are looked at closer (locate.digits_box): the part of the image around
    them, from its own pixels (a small digit is a few pixels of the working image, blurred by its
    scaling), enlarged when small, its paper estimated over that part alone. That reading is given
    only when it is sure and the same as the guess: it may settle how sure the digits are, not which
    digits there are (a piece of a broken stroke, enlarged, is a sure "1"), nor a doubt about the line
    (every digit was sure, yet the number runs on or a piece lies beside a digit). And when no look
    read a digit in a photo, a lone mark that one of them found is looked at closer the same way: a
    digit seen from afar, or written lightly, may be too few pixels of the working image to be read at
    all. Its closer reading is given only when it is sure and one digit (a "1" that the closer look
    breaks in two is no "11", nor the mark and its neighbour a number), and no piece of a ruling or grid
    line that the first look took out (locate.along_a_line). No closer reading is given whose part cuts
    through writing beside its digits (`_cut_beside`: the part ends in a number whose other digits the
    part left out, "9" of "925")."""
    image = _photo_crop(image)
    reading, looks = _read_looks(model, image, single, min_confidence, top, debug)
    found = looks[0]
    # Only a digit's box about as large as a note (locate.NOTE_AREA of the picture) can hold one.
    large = 0.5 * locate.NOTE_AREA * image.width * image.height
    if reading["status"] == "ok" and any(d["box"][2] * d["box"][3] >= large for d in reading["digits"]) \
            and _the_note_itself(reading, locate.note_corners(found)):
        reading = reading | {"text": None, "status": "unsure", "guess": reading["text"]}
    if reading["status"] != "ok" and not found.off_paper:  # writing in the "desk" beside: the page in shadow
        reading = _read_closer(model, image, locate.sheet_box(found), single, min_confidence, top, debug) or reading
    if reading["status"] != "ok":
        reading = _read_note(model, image, locate.note_corners(found), single, min_confidence, top, debug) or reading
    if reading["status"] == "unsure" and any(d["confidence"] < min_confidence for d in reading["digits"]):
        guess = reading["guess"]
        reading = _read_closer(model, image, locate.digits_box(found), single, min_confidence, top, debug,
                               accept=lambda r: r["text"] == guess) or reading
    if reading["status"] == "no_digit":  # a lone mark, read closer, as the one digit it is
        boxes = filter(None, (locate.digits_box(look) for look in looks if len(look.digits) == 1))
        lone = lambda r: len(r["digits"]) == 1 and not locate.along_a_line(found, r["digits"][0]["box"])  # noqa: E731
        one = (_read_closer(model, image, box, single, min_confidence, top, debug, accept=lone) for box in boxes)
        reading = next(filter(None, one), reading)
    scale = image.info.get(locate.DRAFT_SCALE, 1.0)  # a JPEG decoded at a fraction of its size: its own pixels
    for d in reading["digits"]:
        d["box"] = [round(v * scale) for v in d["box"]]
    return reading


def _photo_crop(image: Image.Image) -> Image.Image:
    """A picture no larger than locate.PHOTO whose border is uneven (locate.uneven) is a crop of a photo:
    enlarged to SHEET_SIZE, so that it is read as a photo (rulings and grid lines taken out, the paper's
    light and grain measured locally), its boxes given in its own pixels. A drawing is read as it is."""
    if max(image.size) > locate.PHOTO:
        return image
    rgb, _ = locate.working_image(image)
    if not locate.uneven(rgb):
        return image
    grow = SHEET_SIZE / max(image.size)
    big = Image.fromarray(rgb).resize((round(image.width * grow), round(image.height * grow)), Image.BICUBIC)
    big.info[locate.DRAFT_SCALE] = image.info.get(locate.DRAFT_SCALE, 1.0) / grow
    return big


def _read_closer(model, image: Image.Image, box, single: bool, min_confidence: float, top: int,
                 debug: dict | None, accept=lambda reading: True) -> dict | None:
    """`read`'s reading of the part `box` (x0, y0, x1, y1) of the image, enlarged to SHEET_SIZE if it
    is smaller than a photo, with the digits' boxes in the whole image's pixels; None unless it is
    sure, `accept`s it, its digits are no smaller than the whole image's smallest (MIN_HEIGHT of it), and
    the part does not cut the writing beside them (`_cut_beside`)."""
    if box is None:
        return None
    seen = {} if debug is not None else None
    part, grow = _part(image, box)
    closer, looks = _read_looks(model, part, single, min_confidence, top, seen)
    if any(_cut_beside(look, box, image.size) for look in looks):
        return None
    for d in closer["digits"]:
        x, y, w, h = (v / grow for v in d["box"])
        d["box"] = [round(x) + box[0], round(y) + box[1], max(1, round(w)), max(1, round(h))]
    return _given(closer, image, seen, debug) if accept(closer) else None


def _part(image: Image.Image, box) -> tuple[Image.Image, float]:
    """The part `box` (x0, y0, x1, y1) of the image as a closer look reads it, and how much it was
    enlarged: a part cut out small (a note seen from afar) would be taken for a drawing, so it is
    enlarged to SHEET_SIZE."""
    part = image.crop(box)
    grow = SHEET_SIZE / max(part.size) if max(part.size) <= locate.PHOTO else 1.0
    if grow > 1:
        part = part.resize((round(part.width * grow), round(part.height * grow)), Image.BICUBIC)
    return part, grow


# Marks that are no piece of a cut digit: pieces of lines, and marks too large (rulings joined, enlarged)
NOT_CUT_DIGITS = ("part of a ruling", "part of a longer line", "a line, not a digit", "too large")


def _cut_beside(found: locate.Found, box, size) -> bool:
    """Whether a look at the part `box` (x0, y0, x1, y1) of an image of `size` found a mark cut by the
    part's left or right side, where the image goes on, beside a digit read: level with it, no further
    from it than it is tall, at least a third as tall and 0.75 as strong (a digit's own ink; a note's
    border or a desk's pattern cut by the side is lighter), and no piece of a line or mark too large.
    Then the part, not the photo, cut the writing there: a number's next digit. (Smaller pieces do not
    count, as a ruling's stub at the side can be as dark as the ink; so a digit of which little is
    inside the part, such as the tips of a "3"'s arcs, goes unseen.)"""
    w = found.rgb.shape[1]
    for m in found.rejected:
        x, y, mw, mh = m.box
        if m.reason in NOT_CUT_DIGITS or not (x == 0 < box[0] or x + mw == w and box[2] < size[0]):
            continue
        for d in found.digits:
            dx, dy, dw, dh = d.box
            level = min(dy + dh, y + mh) - max(dy, y) > 0.5 * mh
            near = max(x - (dx + dw), dx - (x + mw)) <= dh
            if level and near and mh >= 0.3 * dh and m.strength >= 0.75 * d.strength:
                return True
    return False


def _given(reading: dict, image: Image.Image, seen: dict | None, debug: dict | None) -> dict | None:
    """A further look's `reading` of a part of `image` (its boxes already in the image's pixels), or None
    unless it is sure and its digits are no smaller than the whole image's smallest (MIN_HEIGHT of it);
    what the look `seen` goes into `debug` when it is given."""
    if reading["status"] != "ok" or any(d["box"][3] < locate.MIN_HEIGHT * min(image.size) for d in reading["digits"]):
        return None
    if debug is not None:
        debug.update(seen)
    return reading


def _the_note_itself(reading: dict, note) -> bool:
    """Whether a digit read holds the whole note with these corners (locate.note_corners) in its box,
    and the note fills most of the box: the ring of "ink" that a note darker than its desk makes where
    the paper's window mixes the desk in, read as a "0", not writing on the note. (The even paper inside
    a large digit's loop, a "9"'s bowl, is no note.)"""
    if note is None:
        return False
    (x0, y0), (x1, y1) = note.min(axis=0), note.max(axis=0)
    return any(x <= x0 + 0.1 * (x1 - x0) and y <= y0 + 0.1 * (y1 - y0) and x + w >= x1 - 0.1 * (x1 - x0)
               and y + h >= y1 - 0.1 * (y1 - y0) and (x1 - x0) * (y1 - y0) >= 0.5 * w * h
               for x, y, w, h in (d["box"] for d in reading["digits"]))


def _read_note(model, image: Image.Image, corners, single: bool, min_confidence: float, top: int,
               debug: dict | None) -> dict | None:
    """`read`'s reading of the sheet or note with these `corners` (locate.note_corners), turned into an
    upright rectangle locate.WORK_SIZE pixels long with NOTE_MARGIN around them, with the digits' boxes
    in the whole image's pixels (the box around their corners taken back); None unless it is sure, no
    mark too large for a digit lies against its digits, and its digits are no smaller than the whole
    image's smallest (MIN_HEIGHT of it)."""
    if corners is None:
        return None
    top_side, right, bottom, left = (np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1))
    width, height = (top_side + bottom) / 2, (left + right) / 2
    grow = locate.WORK_SIZE / max(width, height)
    w, h = max(1, round(width * grow)), max(1, round(height * grow))
    m = NOTE_MARGIN * min(w, h)
    turn = cv2.getPerspectiveTransform(corners.astype(np.float32),
                                       np.float32([[m, m], [w - m, m], [w - m, h - m], [m, h - m]]))
    rgb = np.asarray(image.convert("RGB"))
    note = Image.fromarray(cv2.warpPerspective(rgb, turn, (w, h), borderMode=cv2.BORDER_REPLICATE,
                                               flags=cv2.INTER_AREA if grow < 1 else cv2.INTER_CUBIC))
    seen = {} if debug is not None else None
    reading, looks = _read_looks(model, note, single, min_confidence, top, seen)
    found = looks[0]
    # A mark too large for a digit against the digits (judged on the wide look's marks, whichever look
    # gave the reading) is the rest of a number written large across the note, joined into one mark.
    if any(locate.next_digit(found.digits, m) for m in found.rejected if m.reason == "too large"):
        return None
    back = np.linalg.inv(turn)
    for d in reading["digits"]:
        x, y, bw, bh = d["box"]
        box = cv2.perspectiveTransform(np.float32([[[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]]]), back)[0]
        (x0, y0), (x1, y1) = box.min(axis=0), box.max(axis=0)
        d["box"] = [round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0))]
    return _given(reading, image, seen, debug)


def _read_looks(model, image: Image.Image, single: bool, min_confidence: float, top: int,
                debug: dict | None) -> tuple[dict, list[locate.Found]]:
    """`read` with the wide paper window, and for a photo not read surely, again with the narrow one,
    and last faintly against the paper just around each pixel (locate.near_look: faint writing, or a
    digit beside a shadow's sharp edge, or a pen's shadow joined to the ink); and what each look
    found, the wide window's first. A sure reading whose line runs into a mark rejected as too large
    or as the paper's edge (locate.runs_into: a digit against it goes with it) is looked at with the
    narrow window too, and that look's reading given instead when it is sure and holds the first one
    with more digits ("3" of "31", the "1" against a note's edge)."""
    found = locate.find_digits(image)
    looks = [found]
    reading = read_found(model, found, single, min_confidence, top, debug)
    narrow = lambda: locate.find_digits(image, locate.NARROW_WINDOW)  # noqa: E731
    if not found.photo or reading["status"] == "ok" and not locate.runs_into(found):
        return reading, looks
    if reading["status"] == "ok":  # only a longer reading that holds this one is given
        tries, better = (narrow,), lambda r: len(r["text"]) > len(reading["text"]) and reading["text"] in r["text"]
    else:
        tries, better = (narrow, lambda: locate.near_look(found)), lambda r: True
    for look in tries:
        seen = {} if debug is not None else None
        looks.append(look())
        again = read_found(model, looks[-1], single, min_confidence, top, seen)
        if again["status"] == "ok" and better(again):
            if debug is not None:
                debug.update(seen)
            return again, looks
    return reading, looks


def read_found(model, found: locate.Found, single: bool = False, min_confidence: float = MIN_CONFIDENCE,
               top: int = 3, debug: dict | None = None) -> dict:
    """`read` of the marks `found` in an image.

    The line's marks are read by recognition: wide marks are sliced at their thinnest columns, and
    every way of taking the pieces as digits (a piece alone, neighbours joined into one digit, a
    small mark left out) is classified in one batch; the way whose digits the model is surest of
    wins (dynamic programming along the line). A model trained with outlier exposure (the robust
    recipe) is unsure of pieces and pairs of digits, which is what makes the right way stand out.
    With a line reader in the model's run folder (lines.py), a mark at least SEQUENCE times as wide
    as tall is also read whole, as a run of digits, one more way to read its pieces: digits written
    into each other, which no cut parts, are read so.

    Other lines of digits on the page (found.more_lines: rows of numbers) are read the same way, each
    alone; the lines go top to bottom, each digit with its "line" (0 for the first), and the text has
    a line break between lines. With `single`, the line with the most writing alone is read."""
    rows = sorted([found.digits, *found.more_lines], key=_middle_height) if found.more_lines and not single \
        else [found.digits]
    digits, inputs, boxes, chosen, marks = [], [], [], [], []
    unread = False  # a line of which no digit was read: the reading is not all there is
    for k, line in enumerate(rows):
        got = _read_line(model, found, line, single, min_confidence, top)
        unread |= not got[0]
        for d in got[0] if len(rows) > 1 else ():
            d["line"] = k
        for out, part in zip((digits, inputs, boxes, chosen, marks), got):
            out += part
    if debug is not None:
        debug.update(found=found, inputs=inputs, boxes=boxes, probabilities=chosen)
    broken = (unread and len(rows) > 1) or any(
        ((d["digit"] == "1" or found.faint) and _piece_beside(found, box)) or _digit_left_out(found, box)
        for d, box in zip(digits, boxes))
    if not broken and all(d["confidence"] >= min_confidence for d in digits):  # else unsure already
        broken = _changed_by_pieces(model, found, digits, marks)
    return summarise(digits, min_confidence, whole=(single or found.whole) and not broken, faint=found.faint)


def _middle_height(line: list[locate.Mark]) -> float:
    return float(np.mean([m.box[1] + m.h / 2 for m in line]))


def _read_line(model, found: locate.Found, marks: list[locate.Mark], single: bool, min_confidence: float,
               top: int) -> tuple[list[dict], list, list, list, list[locate.Mark]]:
    """read_found's reading of one line of marks: its digits, their inputs, boxes (working pixels),
    probabilities and marks. Its pieces left unread join found.rejected ("left out")."""
    pieces, spans = (list(marks), []) if single else _pieces(found, marks)
    units = _units(pieces)
    crops = [mark_input(found, unit) for _, _, unit in units]
    readable = [c is not None for c in crops]
    probs = model.probabilities(np.stack([c if c is not None else np.zeros((28, 28), np.uint8) for c in crops])) \
        if crops else np.zeros((0, len(model.meta["classes"])))
    # A unit's score: the log of the model's confidence, less a penalty for a digit wider than tall
    # and one for cutting a mark (the model must be clearly surer of the parts than of the whole).
    def cut(i, j):
        return (i > 0 and set(pieces[i - 1].labels) & set(pieces[i].labels)) or \
            (j + 1 < len(pieces) and set(pieces[j].labels) & set(pieces[j + 1].labels))

    scores = [float(np.log(p.max() + 1e-9)) - 2 * max(0.0, u.box[2] / u.h - 1) + (CUT if cut(i, j) else 0.0)
              if ok else -np.inf for p, ok, (i, j, u) in zip(probs, readable, units)]
    # A wide mark that cutting and classifying cannot read surely, read whole by the line reader, is one
    # more way to read its pieces: several digits at once, scored by the probability of its whole text.
    unsure = [(i, j, m) for i, j, m in spans if not _sure_by_cuts(pieces, units, scores, probs, i, j, min_confidence)]
    sequences, read_by_cuts = {}, len(units)
    for i, j, m, row in _sequences(model, found, unsure):
        # The digit model sure that the mark is one digit, the line reader that it is several: unsure.
        whole = max((probs[u].max() for u, unit in enumerate(units[:read_by_cuts])
                     if unit[:2] == (i, j) and readable[u]), default=0.0)
        if whole >= min_confidence:
            for d in row:
                d["probabilities"] = d["probabilities"] * min(1.0, (1 - whole) / d["probabilities"].max())
                d["p"] = min(d["p"], 1 - whole)
        sequences[len(units)] = row
        units.append((i, j, m))
        scores.append(float(np.log(row[0]["p"] + 1e-9)) + (len(row) - 1) * CUT)  # as if cut between its digits
        probs = np.concatenate([probs, min((d["probabilities"] for d in row), key=np.max)[None]])
    if single:  # one digit: the surest unit that holds the largest mark
        largest = max(range(len(pieces)), key=lambda i: pieces[i].box[2] * pieces[i].box[3], default=None)
        holding = [u for u, (i, j, _) in enumerate(units) if readable[u] and i <= largest <= j]
        path = [max(holding, key=lambda u: scores[u])] if holding else []
    else:
        path = _apart_ends(_best_path(pieces, units, scores), units, probs, min_confidence)
    classes = model.meta["classes"]
    digits, inputs, boxes, chosen, taken = [], [], [], [], []
    used = set()
    for u in path:
        i, j, unit = units[u]
        used.update(id(m) for m in pieces[i:j + 1])
        read_as = [(probs[u], crops[u], unit)] if u not in sequences else [
            (d["probabilities"], d["input"], replace(unit, box=d["box"])) for d in sequences[u]]
        for p, crop, mark in read_as:
            ranking = ranked(p, classes, top)
            digits.append({"digit": ranking[0]["class"], "confidence": ranking[0]["probability"],
                           "box": found.original_box(mark.box), "top": ranking})
            inputs.append(crop)
            boxes.append(mark.box)
            chosen.append(p)
            taken.append(mark)
    found.rejected += [replace(m, reason="left out" if not single else "not the digit")
                       for m in pieces if id(m) not in used]
    if not single and len(digits) > 1 and any(d["confidence"] < min_confidence for d in digits):
        _agreed(model, found, digits, taken, min_confidence)
    return digits, inputs, boxes, chosen, taken


def _agreed(model, found: locate.Found, digits: list[dict], marks: list[locate.Mark], min_confidence: float):
    """A number read with some digits unsure (each still read with AGREE at least), read again whole by
    the model's line reader (lines.py): when its best reading is the same text and it gives that text
    a probability of `min_confidence` or more, the digits are as sure as that ("line_reader": the
    probability). Two readers that learnt differently (one digit at a time after the photo reader's
    cut-outs, and whole lines of digits) seldom agree on the same wrong number. Not for one digit
    alone: on the tuning scenes, the two agreed as often on a wrong single digit (a scribble's "1", a
    far "8" taken for a "6") as they made a right one sure."""
    reader = getattr(model, "lines", None)
    if reader is None or not all(d["digit"].isdigit() and len(d["digit"]) == 1 for d in digits):
        return
    line = line_input(upright_ink(found, locate.join(marks))[0], locate.FAINT.pixel)
    if line is None:
        return
    log_probs = reader.log_probabilities((line[0] / np.float32(255))[None, None])[:line[0].shape[1] // 2]
    text = [int(d["digit"]) for d in digits]
    (best, _, _), = lines.decode(log_probs)
    p = lines.sequence_probability(log_probs, text) if best == text else 0.0
    if p >= min_confidence and min(d["confidence"] for d in digits) >= AGREE:
        for d in digits:
            if d["confidence"] < p:
                d["confidence"] = d["line_reader"] = round(p, 6)


NEXT_TO = 0.15  # a rejected mark whose ink comes this part of a digit's height from the digit's may belong to it
CHANGE_REASONS = PIECES + ("part of a longer line",)


def _changed_by_pieces(model, found: locate.Found, digits: list[dict], marks: list[locate.Mark]) -> bool:
    """Whether a mark rejected next to a digit read (for one of CHANGE_REASONS: too faint, too small, off
    the line, left out, part of a longer line; its ink within NEXT_TO of the digit's height of the
    digit's, the two no wider than 1.5 times their height), read together with the digit, makes the
    model read another digit. What the digit is then depends on what belongs to it (a "2" whose foot
    broke off is a sure "7"; the holes of a notebook's binding, taken for a "1", are another digit with
    the next hole), so the reading is unsure."""
    crops, was = [], []
    for d, mark in zip(digits, marks):
        reach = max(2.0, NEXT_TO * mark.h)
        for m in found.rejected:
            if m.reason not in CHANGE_REASONS or not m.labels:
                continue
            union = locate.join([mark, m])
            if locate.box_apart(mark, m) > reach or union.box[2] > 1.5 * union.h or union.h > 1.5 * mark.h \
                    or locate.ink_apart(found.labels, mark, m) > reach:
                continue
            crop = mark_input(found, union)
            if crop is not None:
                crops.append(crop)
                was.append(d["digit"])
    if not crops:
        return False
    classes = model.meta["classes"]
    return any(classes[int(p.argmax())] != digit for p, digit in zip(model.probabilities(np.stack(crops)), was))


def _piece_beside(found: locate.Found, box) -> bool:
    """Whether a mark that was not read lies within half the height of the digit in `box` and is at
    least half as dark: a broken digit's other piece. Any straight piece of a digit whose other
    strokes broke away (a faint pencil "4" or "7") is read as a sure "1", and the rest of a faint
    "9" whose loop broke open as a "7"; with such a piece beside it, the reading is unsure (for a
    "1", or any digit found by a faint look, where a piece may also look like a crease). Rulings,
    edges, shadows and specks do not count."""
    x, y, w, h = box
    darkest = float(found.ink[y:y + h, x:x + w].max())
    reasons = PIECES + (locate.CREASE,) if found.faint else PIECES
    for m in found.rejected:
        mx, my, mw, mh = m.box
        gap = max(mx - (x + w), x - (mx + mw), my - (y + h), y - (my + mh), 0)
        if m.reason in reasons and gap <= 0.5 * h and max(mw, mh) >= 0.2 * h and m.strength >= 0.5 * darkest:
            return True
    return False


def _digit_left_out(found: locate.Found, box) -> bool:
    """Whether a mark the reading left out (small beside the digits, or unreadable) lies level with
    the digit in `box`, no further from it than half its height, at least half as tall and as dark
    as it: a digit of the number that the model could not read (an open "0" written small), not a
    speck or a stray stroke."""
    x, y, w, h = box
    darkest = float(found.ink[y:y + h, x:x + w].max())
    for m in found.rejected:
        mx, my, mw, mh = m.box
        gap = max(mx - (x + w), x - (mx + mw), 0)
        level = min(y + h, my + mh) - max(y, my) > 0.5 * min(h, mh)
        if m.reason == "left out" and level and gap <= 0.5 * h and mh >= 0.5 * h and m.strength >= 0.5 * darkest:
            return True
    return False


def _sure_by_cuts(pieces: list[locate.Mark], units: list[tuple], scores: list[float], probs: np.ndarray, i: int,
                  j: int, min_confidence: float) -> bool:
    """Whether the best way of reading pieces i..j (a mark, whole or sliced) as digits, each alone or
    cut, reads every digit with `min_confidence`."""
    inner = [u for u, (a, b, _) in enumerate(units) if i <= a and b <= j]
    path = _best_path(pieces[i:j + 1], [(a - i, b - i, m) for a, b, m in (units[u] for u in inner)],
                      [scores[u] for u in inner])
    return bool(path) and all(probs[inner[u]].max() >= min_confidence for u in path)


def _best_path(pieces: list[locate.Mark], units: list[tuple], scores: list[float]) -> list[int]:
    """The units that read the line best: best[i] is the best total score for pieces[:i], each piece
    read in exactly one unit or, if it is small, left out."""
    tallest = max((m.h for m in pieces), default=0)
    best, back = [0.0] + [-np.inf] * len(pieces), [None] * (len(pieces) + 1)
    starting = {}
    for u, (i, _, _) in enumerate(units):
        starting.setdefault(i, []).append(u)
    for i in range(len(pieces)):
        skip = SKIP if pieces[i].h < 0.6 * tallest else 10 * SKIP  # a digit-sized mark only if unreadable
        if best[i] + skip > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + skip, (i, None)
        for u in starting.get(i, []):
            j = units[u][1]
            if best[i] + scores[u] > best[j + 1]:
                best[j + 1], back[j + 1] = best[i] + scores[u], (i, u)
    path, end = [], len(pieces)
    while end and back[end]:
        start, u = back[end]
        if u is not None:
            path.insert(0, u)
        end = start
    return path


def _apart_ends(path: list[int], units: list[tuple], probs: np.ndarray, min_confidence: float) -> list[int]:
    """The path without the units at its ends that the model takes for no digit (every class under
    NOT_A_DIGIT) and that lie further from their neighbour than it is tall, while another unit is read
    with `min_confidence`: a pen's shadow or a binding's hole beside a digit, not a digit of its number
    (a number's digits are closer together; one that is unreadable among them keeps it unsure)."""
    path = list(path)
    while len(path) > 1 and max(probs[u].max() for u in path) >= min_confidence:
        for end, near in ((0, 1), (-1, -2)):
            a, b = units[path[end]][2], units[path[near]][2]
            if probs[path[end]].max() < NOT_A_DIGIT and max(a.x - (b.x + b.box[2]), b.x - (a.x + a.box[2])) > b.h:
                path.pop(end)
                break
        else:
            break
    return path


def summarise(digits: list[dict], min_confidence: float = MIN_CONFIDENCE, whole: bool = True,
              faint: bool = False) -> dict:
    """The reading of the digits found, left to right (each {"digit", "confidence", "box", "top"}):
    "no_digit" when there are none, or when the model takes none of them for a digit (every one's
    probability under NOT_A_DIGIT: a model trained with outlier exposure spreads its belief over all
    ten classes for the grain of a desk or a crease); "unsure" (the text only as a "guess") when any
    digit's probability is below `min_confidence` or the line is not `whole` (it runs off the
    picture, or a digit beside it was too faint to read), else "ok"; the confidence of the whole is
    the product of the digits'. Marks found only by a second, `faint` look (nothing stood out clearly)
    are no digit unless one is read with `min_confidence`: on a blank page that look finds the
    paper's texture."""
    least = min_confidence if faint else min(NOT_A_DIGIT, min_confidence)
    if not digits or max(d["confidence"] for d in digits) < least:
        return {"text": None, "status": "no_digit", "confidence": None, "digits": []}
    text = "".join(("\n" if k and d.get("line") != digits[k - 1].get("line") else "") + d["digit"]
                   for k, d in enumerate(digits))
    confidence = float(np.prod([d["confidence"] for d in digits]))
    sure = whole and all(d["confidence"] >= min_confidence for d in digits)
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
