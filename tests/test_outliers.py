"""Outlier exposure: the non-digits are in MNIST's convention, and a model trained on them is unsure of them."""

import torch

from mnistlab import glyphs, outliers
from mnistlab.train import TrainConfig, train
from mnistlab.checkpoint import load_model
from mnistlab.models import pixels


def box(x):
    """(height, width, centre row, centre column) of each image's ink (> 0.1)."""
    rows, cols = (x[:, 0].amax(2) > 0.1).float(), (x[:, 0].amax(1) > 0.1).float()
    index = torch.arange(28.0)

    def span(mask):
        first = torch.where(mask > 0, index, 99.0).amin(1)
        last = torch.where(mask > 0, index, -1.0).amax(1)
        return last - first + 1, (first + last) / 2

    (h, cy), (w, cx) = span(rows), span(cols)
    return h, w, cy, cx


def test_every_kind_is_made_in_mnists_convention(mnist):
    digits = pixels(mnist.train_images[:600]).contiguous(memory_format=torch.channels_last)
    made = outliers.make(digits, torch.Generator().manual_seed(0))
    assert made.shape == digits.shape and made.is_contiguous(memory_format=torch.channels_last)
    assert made.min() >= 0 and made.max() <= 1
    h, w, cy, cx = box(made)
    inked = h > 0
    assert inked.float().mean() > 0.97
    longer = torch.maximum(h, w)[inked]
    assert ((longer >= 18) & (longer <= 23)).float().mean() > 0.9  # fitted to MNIST's 20-pixel box
    off_centre = torch.maximum((cy[inked] - 13.5).abs(), (cx[inked] - 13.5).abs())
    assert (off_centre <= 1).float().mean() > 0.95  # centred
    # Nothing is a copy of a training digit.
    assert (made - digits).abs().flatten(1).amax(1).min() > 0.5


def test_fit_scales_the_ink_box_to_20_pixels():
    x = torch.zeros(2, 1, 40, 60)
    x[0, 0, 10:20, 5:45] = 1  # 10 x 40: its width becomes 20
    x[1, 0, 2:38, 50:58] = 1  # 36 x 8: its height becomes 20
    h, w, _, _ = box(glyphs.fit(x))
    assert abs(w[0] - 20) <= 1 and abs(h[0] - 5) <= 1
    assert abs(h[1] - 20) <= 1 and abs(w[1] - 4.4) <= 1
    assert glyphs.fit(torch.zeros(1, 1, 28, 28)).sum() == 0


def test_a_model_trained_with_outliers_is_unsure_of_them(mnist, tmp_path):
    """The same short run with and without outlier exposure: on fresh non-digits, the exposed model's
    highest probability is over 50% half as often or less, while it still reads digits."""
    confidence = {}
    for amount in (0.0, 0.5):
        cfg = TrainConfig.from_recipe("fast", epochs=2, train_limit=3000, val_fraction=0.02, outliers=amount,
                                      precision="fp32")
        history = train(cfg, tmp_path / str(amount), mnist)
        assert history[-1]["val_accuracy"] > 0.9
        model, _ = load_model(tmp_path / str(amount))
        fresh = outliers.make(pixels(mnist.test_images[:500]), torch.Generator().manual_seed(1))
        with torch.no_grad():
            confidence[amount] = (torch.softmax(model(fresh), 1).amax(1) > 0.5).float().mean().item()
    assert confidence[0.5] < 0.5 * confidence[0.0]  # half as many or fewer claimed with over 50%
