"""Data augmentation as batched tensor ops on the training device: random affine and elastic
distortion, then thicker or thinner strokes, random light and noise.

One call warps a whole batch with a single `grid_sample`: each image gets its own affine matrix
(rotation, scale, shear, translation) and, optionally, a smooth random displacement field (Simard,
Steinkraus & Platt 2003, "Best practices for convolutional neural networks applied to visual document
analysis"). Photometric changes follow: a smooth random background light (a brighter or foggy page)
and salt-and-pepper noise, each on a random half of the images, so that the model also learns
digits on backgrounds other than MNIST's pure black. Only training batches are augmented;
validation and test images never are.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Strength knobs; each is the largest (or, for elastic, the typical) change, drawn uniformly per image.

    rotate: degrees either way; scale: fraction either way (0.1 = 90%..110%); shear: degrees either way;
    translate: pixels either way, along each axis; elastic: standard deviation of the smooth
    displacement field, in pixels; elastic_scale: the distance, in pixels, over which it varies;
    stroke: how far strokes are thickened or thinned, up to a whole dilation or erosion by one pixel;
    light: the most background light added (on the [0, 1] pixel scale); noise: the largest fraction
    of pixels set to black or white.
    """

    rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    translate: float = 0.0
    elastic: float = 0.0
    elastic_scale: float = 8.0
    stroke: float = 0.0
    light: float = 0.0
    noise: float = 0.0

    @property
    def geometric(self) -> bool:
        return any((self.rotate, self.scale, self.shear, self.translate, self.elastic))

    @property
    def active(self) -> bool:
        return self.geometric or bool(self.stroke or self.light or self.noise)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch x (B, C, H, W) of pixels in [0, 1]; returns a new tensor of the same shape and
        dtype, with values still in [0, 1]."""
        if not self.active or len(x) == 0:
            return x
        b, _, h, w = x.shape
        if self.geometric:
            grid = F.affine_grid(self.matrices(b, h, w, x.device, generator), [b, 1, h, w], align_corners=False)
            if self.elastic:
                grid = grid + self.displacement(b, h, w, x.device, generator)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.stroke:
            x = self.restroke(x, generator)
        if self.light:
            x = self.lighten(x, generator)
        if self.noise:
            x = self.salt_and_pepper(x, generator)
        return x.clamp(0, 1)

    def _half(self, b: int, device, generator) -> torch.Tensor:
        """(B, 1, 1, 1): 1 for a random half of the images, else 0."""
        return (torch.rand(b, 1, 1, 1, device=device, generator=generator) < 0.5).float()

    def restroke(self, x: torch.Tensor, generator) -> torch.Tensor:
        """Thicker strokes (a blend towards a 3x3 dilation) or thinner ones (towards an erosion), by a
        random amount up to `stroke` either way."""
        amount = (torch.rand(len(x), 1, 1, 1, device=x.device, generator=generator) * 2 - 1) * self.stroke
        thicker = F.max_pool2d(x, 3, stride=1, padding=1)
        thinner = -F.max_pool2d(-x, 3, stride=1, padding=1)
        return x + amount.clamp_min(0) * (thicker - x) + (-amount).clamp_min(0) * (thinner - x)

    def lighten(self, x: torch.Tensor, generator) -> torch.Tensor:
        """Blend each image towards a random light field by a weight up to `light`: the field is between
        an even light (a brighter page: the ink stays, the background rises) and a cloudy one (fog,
        which also dims the ink)."""
        b, c, h, w = x.shape

        def per_image():
            return torch.rand(b, 1, 1, 1, device=x.device, generator=generator)

        clouds = sum(F.interpolate(torch.rand(b, c, k, k, device=x.device, generator=generator), size=(h, w),
                                   mode="bilinear", align_corners=True) for k in (3, 7)) / 2
        evenness = per_image()
        field = evenness + (1 - evenness) * clouds
        weight = per_image() * self.light * self._half(b, x.device, generator)
        return x * (1 - weight) + field * weight

    def salt_and_pepper(self, x: torch.Tensor, generator) -> torch.Tensor:
        b = len(x)
        fraction = torch.rand(b, 1, 1, 1, device=x.device, generator=generator) * self.noise
        fraction = fraction * self._half(b, x.device, generator)
        hit = torch.rand(x.shape, device=x.device, generator=generator) < fraction
        salt = (torch.rand(x.shape, device=x.device, generator=generator) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)

    def matrices(self, b: int, h: int, w: int, device, generator) -> torch.Tensor:
        """(B, 2, 3) affine matrices mapping output to input coordinates, in affine_grid's [-1, 1] units."""

        def uniform(limit):  # (B,) uniform in [-limit, limit]
            return (torch.rand(b, device=device, generator=generator) * 2 - 1) * limit

        angle = uniform(math.radians(self.rotate))
        shear = uniform(math.radians(self.shear))
        zoom = 1 + uniform(self.scale)
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # Output -> input: inverse zoom of (rotation @ shear); the image moves by +t, so sample at -t.
        m = torch.stack([torch.stack([cos, cos * tan - sin], 1), torch.stack([sin, sin * tan + cos], 1)], 1)
        m = m / zoom[:, None, None]
        t = torch.stack([uniform(self.translate) * 2 / w, uniform(self.translate) * 2 / h], 1)
        return torch.cat([m, -(m @ t[:, :, None])], 2)

    def displacement(self, b: int, h: int, w: int, device, generator) -> torch.Tensor:
        """(B, H, W, 2) smooth random field with per-axis standard deviation `elastic` pixels.

        Uniform noise on a coarse grid (one knot every `elastic_scale` pixels), upsampled bilinearly: smooth
        like Simard's Gaussian-filtered noise, and ten times cheaper than filtering at full size."""
        knots = (max(2, round(h / self.elastic_scale)), max(2, round(w / self.elastic_scale)))
        field = torch.rand(b, 2, *knots, device=device, generator=generator) * 2 - 1
        field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=True)
        field = field / field.std().clamp_min(1e-8)
        return field.permute(0, 2, 3, 1) * self.elastic * torch.tensor([2 / w, 2 / h], device=device)
