"""The second photo-scene generator, bench/photo_scenes_b.py: deterministic, the documented fields for
every condition, boxes that are the tight frames of ink one can see in the photo, numbers of 2-5
digits, and EXIF orientation that turns the stored pixels back upright."""

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import photo_scenes_b as sb  # noqa: E402
from mnistlab.scenes import DigitSource  # noqa: E402

RENDERED = {}


@pytest.fixture(scope="module")
def sources(mnist) -> dict:
    images, labels = mnist.test_images.numpy(), mnist.test_labels.numpy()
    return {split: DigitSource(images, labels, split) for split in ("tune", "holdout")}


def rendered(sources, condition, seed, split="tune"):
    """(scene, masks), made once per test process."""
    key = (condition, seed, split)
    if key not in RENDERED:
        RENDERED[key] = sb.render(condition, seed, sources[split])
    return RENDERED[key]


def upright_gray(scene) -> np.ndarray:
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(scene.jpeg)))
    return np.asarray(img.convert("L"), np.float32)


def test_deterministic_from_condition_seed_and_split(sources):
    scene = rendered(sources, "b-number", 3)[0]
    assert sb.make_scene("b-number", 3, sources["tune"]).jpeg == scene.jpeg
    assert rendered(sources, "b-number", 4)[0].jpeg != scene.jpeg
    other = rendered(sources, "b-number", 3, "holdout")[0]
    assert other.jpeg != scene.jpeg
    assert set(other.mnist_indices) <= set(range(5000, 10000)) and set(scene.mnist_indices) <= set(range(5000))


@pytest.mark.parametrize("condition", sb.CONDITIONS)
def test_every_condition(sources, condition):
    scene, masks = rendered(sources, condition, 3)
    kind = sb.KINDS[condition]
    assert condition.startswith("b-") and scene.condition == condition and scene.kind == kind
    assert scene.jpeg[:2] == b"\xff\xd8" and scene.suffix == ".jpg"
    if condition == "b-cropped":  # cut out around its digit, shrunk to at most 450 pixels
        assert max(scene.size) <= 450 and scene.details["cropped_from"] in sb.CROPPED_FROM
    else:
        assert tuple(scene.size) in ((1200, 900), (900, 1200))
    assert scene.orientation in (1, 6, 8)
    assert {"surface", "ink", "light", "quality"} <= set(scene.details)
    gray = upright_gray(scene)
    assert gray.shape == (scene.size[1], scene.size[0])  # exif_transpose gives the upright size
    if kind in ("blank", "junk"):
        assert scene.text is None and scene.boxes == [] and scene.mnist_indices == []
        return
    assert scene.text.isdigit() and len(scene.text) == len(scene.boxes) == len(masks) == len(scene.mnist_indices)
    assert 2 <= len(scene.text) <= 5 if kind == "number" else len(scene.text) == 1
    w, h = scene.size
    near = cv2.dilate(np.any(masks, axis=0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    for (x, y, bw, bh), mask in zip(scene.boxes, masks):
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
        ys, xs = np.nonzero(mask)  # the box is the tight frame of the digit's ink
        assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (x, y, bw, bh)
        pad = max(8, bh // 3)  # and that ink is darker than the surface around it in the photo
        around = np.zeros_like(mask)
        around[max(0, y - pad):y + bh + pad, max(0, x - pad):x + bw + pad] = True
        surface = float(np.median(gray[around & ~near]))
        assert gray[mask].mean() < 0.96 * surface
    if condition == "b-far":
        assert all(20 <= b[3] <= 75 for b in scene.boxes)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_exif_orientation_round_trips(orientation):
    rng = np.random.default_rng(0)
    upright = np.zeros((90, 120, 3), np.uint8)
    upright[10:30, 10:50] = 255  # a white patch near the upright view's top left
    jpeg, _ = sb.encode_jpeg(upright, rng, orientation)
    stored = Image.open(io.BytesIO(jpeg))
    assert stored.getexif().get(0x0112, 1) == orientation
    assert stored.size == ((120, 90) if orientation == 1 else (90, 120))
    back = np.asarray(ImageOps.exif_transpose(stored).convert("L"), np.float32)
    assert back.shape == (90, 120)
    assert back[12:28, 12:48].mean() > 200 and back[50:, 70:].mean() < 30


def test_unknown_condition(sources):
    with pytest.raises(ValueError, match="unknown condition"):
        sb.make_scene("notebook", 0, sources["tune"])
