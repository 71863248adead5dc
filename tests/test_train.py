"""The training loop: reproducible, resumable, early-stopping, and blind to the test set."""

import dataclasses

import pytest
import torch

from mnistlab import checkpoint
from mnistlab.errors import MnistlabError
from mnistlab.train import TrainConfig, train

QUICK = dict(model="cnn-small", epochs=2, train_limit=2000, batch_size=64)


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def weights(run):
    model, _ = checkpoint.load_model(run)
    return model.net.state_dict()


def test_same_seed_same_history(mnist, tmp_path):
    a = train(TrainConfig(**QUICK, seed=7), tmp_path / "a", data=mnist)
    b = train(TrainConfig(**QUICK, seed=7), tmp_path / "b", data=mnist)
    c = train(TrainConfig(**QUICK, seed=8), tmp_path / "c", data=mnist)
    assert without_time(a) == without_time(b)
    assert without_time(a) != without_time(c)
    assert all(torch.equal(v, weights(tmp_path / "b")[k]) for k, v in weights(tmp_path / "a").items())


def test_resume_finishes_like_an_uninterrupted_run(mnist, tmp_path):
    full = train(TrainConfig(**{**QUICK, "epochs": 3}), tmp_path / "full", data=mnist)
    train(TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "split", data=mnist)
    resumed = train(TrainConfig(**{**QUICK, "epochs": 3}), tmp_path / "split", data=mnist, resume=True)
    assert without_time(full) == without_time(resumed)
    full_w, resumed_w = weights(tmp_path / "full"), weights(tmp_path / "split")
    assert all(torch.equal(v, resumed_w[k]) for k, v in full_w.items())


def test_history_and_best_checkpoint(mnist, tmp_path):
    history = train(TrainConfig(**{**QUICK, "epochs": 3}), tmp_path, data=mnist)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "lr"}
    _, meta = checkpoint.load_model(tmp_path)
    best = min(history, key=lambda r: r["val_loss"])
    assert meta["metrics"]["epoch"] == best["epoch"] and meta["metrics"]["val_loss"] == best["val_loss"]
    assert meta["config"]["epochs"] == 3 and meta["seed"] == 0 and meta["dataset"] == "mnist"
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "config.json").exists()


def test_early_stopping_on_validation_loss(mnist, tmp_path):
    # A large net on 300 images overfits within a few epochs, so validation loss starts rising.
    cfg = TrainConfig(model="fnn", epochs=30, train_limit=300, batch_size=32, patience=2)
    history = train(cfg, tmp_path, data=mnist)
    assert len(history) < 30
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    assert best == len(history) - 1 - 2  # stopped exactly `patience` epochs after the best one


def test_test_set_plays_no_part_in_training(mnist, tmp_path):
    blind = dataclasses.replace(mnist, test_images=torch.zeros_like(mnist.test_images),
                                test_labels=torch.zeros_like(mnist.test_labels))
    assert without_time(train(TrainConfig(**QUICK), tmp_path / "a", data=mnist)) == \
        without_time(train(TrainConfig(**QUICK), tmp_path / "b", data=blind))


def test_refuses_to_overwrite_and_to_resume_nothing(mnist, tmp_path):
    train(TrainConfig(**{**QUICK, "epochs": 1}), tmp_path, data=mnist)
    with pytest.raises(MnistlabError, match="already holds a trained model"):
        train(TrainConfig(**QUICK), tmp_path, data=mnist)
    with pytest.raises(MnistlabError, match="nothing to resume"):
        train(TrainConfig(**QUICK), tmp_path / "empty", data=mnist, resume=True)


def test_divergence_is_a_clear_error(mnist, tmp_path):
    with pytest.raises(MnistlabError, match="diverged"):
        train(TrainConfig(**{**QUICK, "optimizer": "sgd", "lr": 1e6, "standardize": False}), tmp_path, data=mnist)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(optimizer="rmsprop"), dict(val_fraction=0.0),
                                 dict(patience=0), dict(lr=-1.0)])
def test_bad_config(bad, mnist, tmp_path):
    with pytest.raises(MnistlabError):
        train(TrainConfig(**{**QUICK, **bad}), tmp_path, data=mnist)
