"""The photo-scene generator of mnistlab/scenes.py: deterministic, the documented fields for every
condition, decodable photos whose EXIF orientation and boxes match, and tuning and held-out scenes
that never share an MNIST digit."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from mnistlab import scenes as ps


@pytest.fixture(scope="module")
def sources(mnist):
    images, labels = mnist.test_images.numpy(), mnist.test_labels.numpy()
    return {split: ps.DigitSource(images, labels, split) for split in ("tune", "holdout")}


def test_same_scene_same_bytes(sources):
    for condition in ("number-touching", "canvas"):
        assert ps.make_scene(condition, 3, sources["tune"]).jpeg == ps.make_scene(condition, 3, sources["tune"]).jpeg
    assert ps.make_scene("grid", 3, sources["tune"]).jpeg != ps.make_scene("grid", 4, sources["tune"]).jpeg
    assert ps.make_scene("grid", 3, sources["tune"]).jpeg != ps.make_scene("grid", 3, sources["holdout"]).jpeg


@pytest.mark.parametrize("condition", [c for c in ps.CONDITIONS if c != "phone-12mp"])  # 12 MP: slow to make
def test_every_condition(sources, condition):
    for seed in range(1):
        s = ps.make_scene(condition, seed, sources["holdout"])
        assert s.condition == condition and s.kind == ps.KINDS[condition]
        stored = Image.open(io.BytesIO(s.jpeg))
        assert stored.format == ("PNG" if s.suffix == ".png" else "JPEG")
        assert stored.getexif().get(0x0112, 1) == s.orientation
        upright = ImageOps.exif_transpose(stored)
        assert upright.size == s.size
        if s.kind in ("blank", "junk"):
            assert s.text is None and s.boxes == [] and s.mnist_indices == []
            continue
        lines = s.text.split("\n")  # a page of numbers ("lines"): one under the other, top to bottom
        assert all(line.isdigit() for line in lines) and len(s.boxes) == len(s.text) - len(lines) + 1
        assert (len(lines) >= 2) == (s.kind == "lines")
        for line in lines:
            assert (1 if s.kind == "digit" else 2) <= len(line) <= (1 if s.kind == "digit" else 6)
        for x, y, w, h in s.boxes:
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= s.size[0] and y + h <= s.size[1]
        # The boxes are each line's digits left to right, each line below the one before, and there is
        # ink in them.
        starts = np.cumsum([0] + [len(line) for line in lines])
        rows = [s.boxes[a:b] for a, b in zip(starts[:-1], starts[1:])]
        assert all([b[0] for b in row] == sorted(b[0] for b in row) for row in rows)
        assert all(np.mean([b[1] for b in upper]) < np.mean([b[1] for b in lower])
                   for upper, lower in zip(rows, rows[1:]))
        grey = np.asarray(upright.convert("L"), np.float32)
        for x, y, w, h in s.boxes:
            assert np.ptp(grey[y:y + h, x:x + w]) > 30


def test_exif_orientation_stores_turned_pixels(sources):
    """A scene with an orientation tag shows upright only through the tag: its stored pixels are turned."""
    s = next(s for s in (ps.make_scene("number", seed, sources["tune"]) for seed in range(40)) if s.orientation != 1)
    stored = Image.open(io.BytesIO(s.jpeg))
    assert stored.size == (s.size if s.orientation == 3 else s.size[::-1])


def test_splits_never_share_digits(sources):
    tune = {i for seed in range(8) for i in ps.make_scene("canvas", seed, sources["tune"]).mnist_indices}
    holdout = {i for seed in range(8) for i in ps.make_scene("canvas", seed, sources["holdout"]).mnist_indices}
    assert tune and holdout and max(tune) < 5000 <= min(holdout)
    rng = np.random.default_rng(0)
    assert all(sources["holdout"].handwritten(rng)[2] >= 5000 for _ in range(500))
    assert all(sources["tune"].handwritten(rng)[2] < 5000 for _ in range(500))
