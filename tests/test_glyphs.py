"""Printed digits for training: MNIST's convention, every digit, and only for data sets of digits."""

import pytest
import torch

from mnistlab import glyphs
from mnistlab.config import ConfigError
from mnistlab.train import TrainConfig, check


def test_printed_digits_look_like_mnists_images():
    images, labels = glyphs.printed_digits(2000, seed=0)
    assert images.shape == (2000, 28, 28) and images.dtype == torch.uint8
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert labels.bincount().min() > 150  # drawn evenly
    ink = images > 25
    rows, cols = ink.any(2), ink.any(1)
    height = 28 - rows.int().argmax(1) - rows.flip(1).int().argmax(1)
    width = 28 - cols.int().argmax(1) - cols.flip(1).int().argmax(1)
    assert ((torch.maximum(height, width) - 20).abs() <= 2).float().mean() > 0.95  # fitted to 20 pixels
    assert torch.equal(images, glyphs.printed_digits(2000, seed=0)[0])  # seeded
    # The same digit in different fonts differs.
    ones = images[labels == 1].float()
    assert (ones - ones[:1]).abs().flatten(1).amax(1).max() > 200


def test_printed_digits_only_join_a_data_set_of_digits():
    check(TrainConfig(printed=0.05))
    with pytest.raises(ConfigError, match="not the digits"):
        check(TrainConfig(dataset="fashion-mnist", printed=0.05))


def test_printed_digits_include_matplotlibs_truetype_faces():
    """The TrueType faces ship with matplotlib, so every install has all of them; a "6" in DejaVu Sans
    is not a "6" in a Hershey font."""
    faces = glyphs.render_truetype("6")
    assert faces.shape == (len(glyphs.TRUETYPE), 1, 96, 96)
    assert (faces.flatten(1).amax(1) > 0.5).all()  # each face drew the digit
    hershey = glyphs.fit(glyphs.render("6"))
    truetype = glyphs.fit(faces)
    nearest = (truetype[:, None] - hershey[None]).abs().flatten(2).mean(2).amin(1)  # to the closest Hershey "6"
    assert nearest.min() > 0.02  # each face adds a shape the Hershey fonts lack (the same shape gives 0)
