"""The model registry: the seeds' parameter counts are facts, and every model maps images to logits."""

import pytest
import torch

from mnistlab import models
from mnistlab.errors import MnistlabError


@pytest.mark.parametrize("name, params", [
    ("fnn", 717_210),  # seed 001's model.summary()
    ("cnn-small", 34_826),  # seed 000's model.summary()
    ("cnn", 1_386_506),  # seed 001's cnn_model.summary()
    ("bn-cnn", 288_170),
    ("fast-cnn", 29_178),
])
def test_parameter_counts(name, params):
    assert models.count_params(models.build(name)) == params


@pytest.mark.parametrize("name", list(models.MODELS))
def test_images_to_logits(name):
    model = models.build(name, {"num_classes": 7}).eval()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 7)


def test_standardisation_is_part_of_the_model():
    torch.manual_seed(0)
    model = models.build("cnn-small", mean=0.13, std=0.31).eval()
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(model(x), model.net((x - 0.13) / 0.31))


def test_unknown_model_and_bad_arguments():
    with pytest.raises(MnistlabError, match="unknown model 'resnet9000'"):
        models.build("resnet9000")
    with pytest.raises(MnistlabError, match="bad arguments"):
        models.build("bn-cnn", {"depth": 3})


def test_logits_of_batches_and_restores_mode():
    model = models.build("bn-cnn").train()
    x = torch.rand(2500, 1, 28, 28)
    out = models.logits_of(model, x)
    assert out.shape == (2500, 10) and model.training
    model.eval()
    assert torch.allclose(out[:10], model(x[:10]), atol=1e-5)
    assert models.logits_of(model, x[:0]).shape == (0, 10)  # no images (a calibration's photos may hold no clutter)


def test_fast_dropout_matches_nn_dropout_in_distribution():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    drop = models.Dropout(0.3).train()
    y = drop(x)
    assert torch.allclose(y.unique(), torch.tensor([0.0, 1 / 0.7]))
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.equal(drop.eval()(x), x)


def test_cnn_small_pools_before_relu_without_changing_the_function():
    torch.manual_seed(0)
    model = models.build("cnn-small").net.eval()
    x = torch.rand(8, 1, 28, 28)
    f = torch.nn.functional
    h = f.max_pool2d(f.relu(model.conv1(x)), 2)  # Keras's order: ReLU, then pool
    h = f.max_pool2d(f.relu(model.conv2(h)), 2)
    assert torch.allclose(model(x), model.head(h.flatten(1)), atol=1e-6)
