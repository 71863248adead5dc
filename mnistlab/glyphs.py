"""Glyphs in MNIST's convention: characters drawn in OpenCV's built-in Hershey fonts and in the
TrueType fonts that matplotlib ships (DejaVu, STIX, Computer Modern: nothing to download), and `fit`,
which scales any ink to MNIST's 20-pixel box in a 28x28 field.

outliers.py draws letters with the Hershey fonts (non-digits); `printed_digits` gives labelled printed
digits in all of them, so that a model trained on handwriting also reads a printed "1" with its serif
and foot, or a "6" as a typeface draws it.
"""

from functools import cache
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_HERSHEY_PLAIN)


def render(chars: str, thicknesses=(3, 7)) -> torch.Tensor:
    """(len(chars) * fonts * 2 * thicknesses, 1, 96, 96) float ink: each character in every font,
    upright and italic, at each stroke thickness; character-major order."""
    images = []
    for ch in chars:
        for font in FONTS:
            for italic in (0, cv2.FONT_ITALIC):
                for thickness in thicknesses:
                    canvas = np.zeros((96, 96), np.uint8)
                    scale = 4.0 if font == cv2.FONT_HERSHEY_PLAIN else 2.0
                    cv2.putText(canvas, ch, (18, 70), font | italic, scale, 255, thickness, cv2.LINE_AA)
                    images.append(canvas)
    return torch.from_numpy(np.stack(images)).float().div(255)[:, None]


# matplotlib's text faces (its symbol, display-size and fallback fonts are left out; Computer
# Modern's math italic draws old-style figures).
TRUETYPE = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique", "DejaVuSansMono",
            "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic",
            "DejaVuSerif-BoldItalic", "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
            "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10")


def render_truetype(chars: str) -> torch.Tensor:
    """(len(chars) * fonts, 1, 96, 96) float ink: each character in each of matplotlib's TrueType
    TRUETYPE faces found, character-major order."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [ImageFont.truetype(str(folder / f"{name}.ttf"), 64) for name in TRUETYPE
             if (folder / f"{name}.ttf").exists()]
    images = []
    for ch in chars:
        for font in fonts:
            canvas = Image.new("L", (96, 96))
            ImageDraw.Draw(canvas).text((48, 48), ch, fill=255, font=font, anchor="mm")
            images.append(np.asarray(canvas))
    return torch.from_numpy(np.stack(images)).float().div(255)[:, None]


@cache
def _digit_bank() -> tuple[torch.Tensor, torch.Tensor]:
    """Every printed digit: the Hershey fonts, upright and italic, at four thicknesses, and the
    TrueType faces; (N, 28, 28) uint8 and labels (N,)."""
    banks = [render("0123456789", (2, 3, 5, 7)), render_truetype("0123456789")]
    images = torch.cat([(fit(b) * 255).round().to(torch.uint8)[:, 0] for b in banks])
    labels = torch.cat([torch.arange(10).repeat_interleave(len(b) // 10) for b in banks])
    return images, labels


def printed_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` printed digits, (n, 28, 28) uint8 like MNIST's images, and their labels (n,): drawn at
    random from every digit in every font, style and thickness (_digit_bank)."""
    images, labels = _digit_bank()
    pick = torch.randint(len(images), (n,), generator=torch.Generator().manual_seed(seed))
    return images[pick], labels[pick]


def fit(x: torch.Tensor, box: int = 20) -> torch.Tensor:
    """(B, 1, H, W) ink -> (B, 1, 28, 28), each image's ink box scaled so its longer side is `box`
    pixels and centred, as MNIST's digits are; an image without ink comes back empty."""
    b, _, h, w = x.shape
    rows, cols = x.amax(dim=(1, 3)) > 0.1, x.amax(dim=(1, 2)) > 0.1  # (B, H), (B, W)
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    top = torch.where(rows, ar_h, h).amin(1)
    bottom = torch.where(rows, ar_h, -1).amax(1)
    left = torch.where(cols, ar_w, w).amin(1)
    right = torch.where(cols, ar_w, -1).amax(1)
    size = torch.maximum(bottom - top, right - left).clamp_min(1).float() + 1
    k = size / box  # input pixels per output pixel
    cy, cx = (top + bottom).float() / 2, (left + right).float() / 2
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = 28 * k / w, (2 * cx + 1) / w - 1
    theta[:, 1, 1], theta[:, 1, 2] = 28 * k / h, (2 * cy + 1) / h - 1
    grid = F.affine_grid(theta, [b, 1, 28, 28], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where((bottom >= 0)[:, None, None, None], out, torch.zeros_like(out)).clamp(0, 1)
