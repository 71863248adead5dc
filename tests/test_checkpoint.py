"""Checkpoints are self-describing safetensors files that load without unpickling anything."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from mnistlab import checkpoint, models
from mnistlab.errors import MnistlabError


def saved_model(tmp_path, name="bn-cnn"):
    torch.manual_seed(0)
    model = models.build(name, mean=0.1, std=0.3).eval()
    meta = checkpoint.model_meta(model, name, {}, [str(d) for d in range(10)], "mnist", seed=0)
    path = tmp_path / "model.safetensors"
    checkpoint.save_model(path, model, meta)
    return model, path


def test_round_trip_gives_identical_outputs(tmp_path):
    model, path = saved_model(tmp_path)
    loaded, meta = checkpoint.load_model(tmp_path)  # a run folder works as well as the file
    x = torch.rand(8, 1, 28, 28)
    # Loaded models come in channels_last, the fast CPU layout: same weights, so the same outputs.
    assert torch.equal(model.to(memory_format=torch.channels_last)(x), loaded(x))
    assert meta["model"]["name"] == "bn-cnn" and meta["input"]["mean"] == 0.1 and meta["classes"][3] == "3"
    assert meta["model"]["params"] == 288_170 and meta["versions"]["torch"] == torch.__version__
    assert checkpoint.read_meta(path) == meta  # the description alone, without the weights


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(MnistlabError, match="not a readable safetensors file"):
        checkpoint.load_model(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    _, path = saved_model(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(MnistlabError, match="not a readable safetensors file"):
        checkpoint.load_model(path)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(MnistlabError, match="not an mnistlab checkpoint"):
        checkpoint.load_model(path)


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    _, path = saved_model(tmp_path, "cnn-small")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["mnistlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["model"]["name"] = "cnn"
    save_file(tensors, path, metadata={"mnistlab": json.dumps(meta)})
    with pytest.raises(MnistlabError, match="does not match its architecture"):
        checkpoint.load_model(path)


def test_missing_paths(tmp_path):
    with pytest.raises(MnistlabError, match="no such run folder or checkpoint"):
        checkpoint.load_model(tmp_path / "nope")
    with pytest.raises(MnistlabError, match="no model.safetensors in this folder"):
        checkpoint.load_model(tmp_path)


def test_training_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = models.build("cnn-small")
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 1, 28, 28)).sum().backward()
    opt.step()
    rng = torch.get_rng_state()
    extra = {"ema.w": torch.arange(3.0)}
    checkpoint.save_state(tmp_path / "state.safetensors", model, opt, extra, {"history": [{"epoch": 1}]})
    torch.rand(10)  # move the RNG on

    fresh = models.build("cnn-small")
    fresh_opt = torch.optim.Adam(fresh.parameters())
    info, loaded_extra = checkpoint.load_state(tmp_path / "state.safetensors", fresh, fresh_opt)
    assert info["history"] == [{"epoch": 1}]
    assert loaded_extra.keys() == extra.keys() and torch.equal(loaded_extra["ema.w"], extra["ema.w"])
    assert torch.equal(torch.get_rng_state(), rng)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(opt.state.values(), fresh_opt.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
