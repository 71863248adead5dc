"""The 15 corruptions of MNIST-C (Mu & Gilmer 2019, "MNIST-C: A Robustness Benchmark for Computer
Vision", https://arxiv.org/abs/1906.02337), as seeded, deterministic transforms of 28x28 digits.

Each takes an image as floats in [0, 1] and a numpy Generator, and returns floats in [0, 1]. The
parameters are MNIST-C's own (the severities its code uses by default to build the data set); the
SEVERITY texts say what they are. `corrupt` applies one to a batch of uint8 images, with a generator
per image seeded by (seed, corruption, position in the batch): the first N test images get the same
corruptions whatever N is.
"""

import numpy as np
from scipy import ndimage
from skimage import feature, transform
from skimage.filters import gaussian

from .errors import MnistlabError


def shot_noise(x, rng):
    c = 3  # photons at full brightness: Poisson noise
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def impulse_noise(x, rng):
    hit = rng.random(x.shape) < 0.17  # salt and pepper on 17% of pixels, half each
    return np.where(hit, (rng.random(x.shape) < 0.5).astype(float), x)


def glass_blur(x, rng, sigma=0.7, delta=1, iterations=2):
    x = (gaussian(x, sigma=sigma) * 255).astype(np.uint8).tolist()
    coins = rng.random((iterations, 28, 28)) < 0.5
    shifts = rng.integers(-delta, delta, (iterations, 28, 28, 2))
    for i in range(iterations):  # swap pixels with a neighbour, bottom-right to top-left
        for h in range(28 - delta, delta, -1):
            for w in range(28 - delta, delta, -1):
                if coins[i, h, w]:
                    dx, dy = shifts[i, h, w]
                    x[h][w], x[h + dy][w + dx] = x[h + dy][w + dx], x[h][w]
    return np.clip(gaussian(np.array(x, float) / 255, sigma=sigma), 0, 1)


def motion_blur(x, rng, radius=10, sigma=3.0):
    angle = np.deg2rad(rng.uniform(-45, 45))
    steps = np.arange(radius + 1)
    weights = np.exp(-steps**2 / (2 * sigma**2))
    weights /= weights.sum()
    rows, cols = np.indices(x.shape, dtype=float)
    out = np.zeros_like(x)
    for k, w in zip(steps, weights):  # a one-sided trail along the angle, like ImageMagick's -motion-blur
        out += w * ndimage.map_coordinates(x, [rows - k * np.sin(angle), cols - k * np.cos(angle)], order=1)
    return np.clip(out, 0, 1)


def _affine_about_centre(x, **params):
    """skimage's affine warp with the translation that keeps the image centre (13.5, 13.5) fixed."""
    aff = transform.AffineTransform(**params)
    (a1, a2), (b1, b2) = aff.params[0, :2], aff.params[1, :2]
    aff = transform.AffineTransform(**params, translation=[13.5 * (1 - a1 - a2), 13.5 * (1 - b1 - b2)])
    return np.clip(transform.warp(x, inverse_map=aff), 0, 1)


def shear(x, rng):
    return _affine_about_centre(x, shear=0.4 * rng.choice([-1, 1]))


def scale(x, rng):
    return _affine_about_centre(x, scale=(1 / 0.7, 1 / 0.7))  # the inverse map: the digit shrinks to 70%


def rotate(x, rng):
    return _affine_about_centre(x, rotation=0.4 * rng.choice([-1, 1]))


def brightness(x, rng):
    return np.clip(x + 0.5, 0, 1)  # +0.5 on HSV value, which for grey images is the grey level itself


def translate(x, rng):
    dx, dy = 3 * rng.choice([-1, 1], 2)
    return np.clip(transform.warp(x, inverse_map=transform.AffineTransform(translation=[dx, dy])), 0, 1)


def stripe(x, rng):
    x = x.copy()
    x[:, :7], x[:, 21:] = 1 - x[:, :7], 1 - x[:, 21:]
    return x


def plasma_fractal(rng, mapsize=256, wibbledecay=1.4):
    """A diamond-square height map in [0, 1] (the cloud texture of fog)."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled(mean):
        return mean / 4 + wibble * rng.uniform(-wibble, wibble, mean.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = wibbled(square)
        centres = grid[half:mapsize:step, half:mapsize:step]
        corners = grid[0:mapsize:step, 0:mapsize:step]
        around = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:mapsize:step, half:mapsize:step] = wibbled(around)
        around = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:mapsize:step, 0:mapsize:step] = wibbled(around)
        step //= 2
        wibble /= wibbledecay
    grid -= grid.min()
    return grid / grid.max()


def fog(x, rng, strength=3.0):
    peak = x.max()
    x = x + strength * plasma_fractal(rng)[:28, :28]
    return np.clip(x * peak / (peak + strength), 0, 1)


def spatter(x, rng):
    liquid = gaussian(rng.normal(0.65, 0.3, x.shape), sigma=1)
    liquid[liquid < 0.65] = 0
    mud = gaussian((liquid > 0.65).astype(float), sigma=1.5)
    mud[mud < 0.8] = 0
    return np.clip(x * (1 - mud) + 63 / 255 * mud, 0, 1)


def _line(c0, r0, c1, r1):
    """A soft line from (column c0, row r0) to (c1, r1): intensity log(1 - d / 2.3) + 1 at distance d."""
    if c1 == c0:
        return np.zeros((28, 28))
    cols, rows = np.meshgrid(np.arange(28.0), np.arange(28.0), sparse=True)
    dist = np.clip(np.abs(rows - ((r1 - r0) / (c1 - c0) * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    line[:, :int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)):] = 0
    return line


def dotted_line(x, rng):
    r0, r1 = rng.integers(0, 27, 2)
    line = _line(0, r0, 27, r1)
    for start in range(0, 28, 4):  # dashes two columns long
        line[:, start:start + 2] = 0
    return np.clip(x + line, 0, 1)


def zigzag(x, rng, a=2.0, b=2.0):
    c0, c1 = 2, 25
    r0 = rng.integers(0, 27)
    r1 = r0 + rng.integers(-5, 5)
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)  # length of the zigzag's axis
    points = [(0.0, 0.0)]
    for i in range(int((d - a) // (2 * a)) + 1):
        points.append(((2 * i + 1) * a, (-1) ** i * b))
    last = (2 * a) * (d // (2 * a))
    if d != last:
        points.append((d, points[-1][1] / (2 * (d - last))))
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cs, rs = rotation @ np.array(points).T
    cs, rs = cs + c0, rs + r0
    for i in range(1, len(cs)):
        x = np.clip(x + _line(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
    return x


def canny_edges(x, rng):
    return feature.canny(x).astype(float)


CORRUPTIONS = {f.__name__: f for f in (
    shot_noise, impulse_noise, glass_blur, motion_blur, shear, scale, rotate, brightness, translate, stripe,
    fog, spatter, dotted_line, zigzag, canny_edges)}

SEVERITY = {
    "shot_noise": "Poisson noise with 3 photons at full brightness (MNIST-C severity 5)",
    "impulse_noise": "salt and pepper on 17% of pixels (severity 4)",
    "glass_blur": "Gaussian blur sigma 0.7, pixels swapped with neighbours up to 1 away, twice (severity 1)",
    "motion_blur": "one-sided Gaussian trail, radius 10, sigma 3, at an angle within 45 degrees (severity 1)",
    "shear": "shear of 0.4 either way about the centre (severity 2)",
    "scale": "shrunk to 70% about the centre (severity 3)",
    "rotate": "rotated 0.4 rad (23 degrees) either way (severity 2)",
    "brightness": "grey level +0.5 (severity 5)",
    "translate": "moved 3 pixels along each axis, either way (severity 3)",
    "stripe": "columns 0-6 and 21-27 inverted",
    "fog": "plasma-fractal fog of strength 3, decay 1.4 (severity 5)",
    "spatter": "blurred random mud blots at grey 63 (severity 4)",
    "dotted_line": "a dashed line across the image",
    "zigzag": "a zigzag line across the image",
    "canny_edges": "Canny edges (sigma 1) instead of the strokes",
}


def corrupt(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """uint8 images (N, 28, 28) -> the same images under corruption `name`, uint8."""
    if name not in CORRUPTIONS:
        raise MnistlabError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    fn, k = CORRUPTIONS[name], list(CORRUPTIONS).index(name)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        x = fn(image.astype(np.float64) / 255, np.random.default_rng([seed, k, i]))
        out[i] = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    return out
