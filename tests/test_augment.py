"""Augmentation: shapes, range and memory format kept, seeded, and each knob does what it says."""

import math

import pytest
import torch

from mnistlab.augment import Augment
from mnistlab.models import pixels

ALL = Augment(rotate=15, scale=0.1, shear=10, translate=2, elastic=1.5, light=0.8, noise=0.2)


@pytest.fixture(scope="module")
def digits(mnist):
    return pixels(mnist.train_images[:256])


def centre_of_mass(x):
    ink = x[:, 0]
    rows, cols = torch.arange(28.0).view(1, 28, 1), torch.arange(28.0).view(1, 1, 28)
    total = ink.sum((1, 2))
    return torch.stack([(ink * cols).sum((1, 2)) / total, (ink * rows).sum((1, 2)) / total], 1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_keeps_shape_dtype_and_range_in_either_layout(digits, layout):
    x = digits.contiguous(memory_format=layout)
    out = ALL(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)
    assert x.equal(digits)  # the input is not modified


def test_seeded():
    x = torch.rand(16, 1, 28, 28)
    a = ALL(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, ALL(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, ALL(x, torch.Generator().manual_seed(4)))


def test_no_knobs_no_change(digits):
    assert Augment()(digits) is digits


def test_translate_moves_the_centre_of_mass_by_up_to_the_set_pixels(digits):
    moved = centre_of_mass(Augment(translate=3)(digits, torch.Generator().manual_seed(0))) - centre_of_mass(digits)
    assert moved.abs().max() <= 3.2
    assert moved.abs().mean() == pytest.approx(1.5, abs=0.25)  # uniform in [-3, 3]: mean |shift| 1.5


def test_rotation_angles_stay_within_the_knob():
    m = Augment(rotate=20).matrices(4000, 28, 28, "cpu", torch.Generator().manual_seed(0))
    angles = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    assert angles.abs().max() <= 20 and angles.abs().max() > 19.5
    assert torch.allclose(torch.linalg.det(m[:, :, :2]), torch.ones(4000), atol=1e-5)  # a pure rotation


def test_scale_changes_ink_area_by_the_zoom_squared(digits):
    m = Augment(scale=0.3).matrices(len(digits), 28, 28, "cpu", torch.Generator().manual_seed(0))
    zoom_squared = 1 / torch.linalg.det(m[:, :, :2])
    assert zoom_squared.min() >= 0.7**2 - 1e-4 and zoom_squared.max() <= 1.3**2 + 1e-4
    out = Augment(scale=0.3)(digits, torch.Generator().manual_seed(0))
    ratio = out.sum((1, 2, 3)) / digits.sum((1, 2, 3))
    assert torch.corrcoef(torch.stack([ratio, zoom_squared]))[0, 1] > 0.95
    assert (ratio / zoom_squared - 1).abs().median() < 0.05


def test_elastic_displacement_has_the_set_size_and_is_smooth():
    field = Augment(elastic=2.0).displacement(64, 28, 28, "cpu", torch.Generator().manual_seed(0)) * 14  # pixels
    assert field.std().item() == pytest.approx(2.0, rel=0.01)
    assert field.mean().abs() < 0.2
    neighbour_step = (field[:, 1:] - field[:, :-1]).abs().mean()
    assert neighbour_step < 0.5 * field.abs().mean()  # neighbouring pixels move together


def test_shear_only_changes_the_off_diagonal():
    m = Augment(shear=30).matrices(1000, 28, 28, "cpu", torch.Generator().manual_seed(0))
    assert torch.allclose(m[:, :, 0], torch.tensor([1.0, 0.0]).expand(1000, 2))
    assert m[:, 0, 1].abs().max() <= math.tan(math.radians(30)) + 1e-6


def test_light_blends_half_the_images_towards_a_field_of_light(digits):
    out = Augment(light=0.8)(digits, torch.Generator().manual_seed(0))
    changed = (out != digits).flatten(1).any(1)
    assert 0.35 < changed.float().mean() < 0.65  # a random half
    background = digits == 0
    assert (out[background] >= 0).all() and out[changed][background[changed]].mean() > 0.05  # lit pages
    ink = digits > 0.9
    assert (out[ink] >= 0.2 - 1e-6).all()  # ink is dimmed by at most the weight 0.8, never erased


def test_noise_sets_up_to_the_fraction_to_black_or_white(digits):
    out = Augment(noise=0.2)(digits, torch.Generator().manual_seed(0))
    flipped = (out != digits).flatten(1).float().mean(1)
    assert flipped.max() <= 0.2 * 1.3 and (flipped == 0).float().mean() > 0.3  # about half untouched
    assert set(out[out != digits].unique().tolist()) <= {0.0, 1.0}


def test_stroke_thickens_or_thins_the_ink(digits):
    ink = digits.sum((1, 2, 3))
    changed = Augment(stroke=1.0)(digits, torch.Generator().manual_seed(0)).sum((1, 2, 3))
    ratio = changed / ink
    assert ratio.max() > 1.3 and ratio.min() < 0.7  # some much bolder, some much finer
    assert ((ratio - 1).abs() < 0.1).float().mean() > 0.05  # and some hardly changed (a uniform amount)
