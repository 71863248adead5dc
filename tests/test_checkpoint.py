"""Checkpoints are self-describing safetensors files that load without unpickling anything."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mnistlab import checkpoint, models
from mnistlab.cli import main
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
    resave(path, set_in("model", "name", "cnn"))  # with a matching SHA-256: the weights do not fit
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


# --- Integrity: everything that changes an answer is checked on load -----------------------------------


def rewrite_header(path, old: bytes, new: bytes):
    """Change bytes inside the file's JSON header in place (same length), as a flipped bit would."""
    old, new = (s.replace(b'"', b'\\"') for s in (old, new))  # the description is JSON inside JSON
    blob = path.read_bytes()
    assert len(old) == len(new) and blob.count(old) == 1, old
    path.write_bytes(blob.replace(old, new))


@pytest.mark.parametrize("old, new", [
    (b'"3"', b'"8"'),  # a class name: the digits would still be distinct, "3" would read as "8"
    (b'"3"', b'"x"'),
    (b'"dataset": "mnist"', b'"dataset": "mnisu"'),
    (b'"params": 288170', b'"params": 288171'),
], ids=["class-3-to-8", "class-3-to-x", "dataset", "params"])
def test_a_flipped_byte_in_the_description_is_refused(tmp_path, old, new):
    _, path = saved_model(tmp_path)
    rewrite_header(path, old, new)
    with pytest.raises(MnistlabError, match="corrupt checkpoint") as e:
        checkpoint.load_model(path)
    assert "\n" not in str(e.value)


def test_a_flipped_bit_in_the_weights_is_refused(tmp_path):
    _, path = saved_model(tmp_path, "cnn-small")
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(MnistlabError, match="corrupt checkpoint"):
        checkpoint.load_model(path)


def resave(path, change_meta=None, change_tensors=None, old_format=False):
    """Write the checkpoint again with a changed description or weights and a matching SHA-256, as a
    buggy or hand-made writer would (old_format: as the first format, whose SHA-256 covered the
    tensors only)."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["mnistlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if change_meta:
        change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    if old_format:
        meta |= {"format": "mnistlab/1", "sha256": checkpoint.digest(tensors)}
    else:
        meta["sha256"] = checkpoint.digest(tensors, meta)
    save_file(tensors, path, metadata={"mnistlab": json.dumps(meta)})


def set_in(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def nan_weight(tensors):
    next(v for k, v in sorted(tensors.items()) if v.is_floating_point())[0] = float("nan")


@pytest.mark.parametrize("change_meta, change_tensors, reason", [
    (set_in("temperature", float("nan")), None, "temperature nan is not a positive number"),
    (set_in("temperature", 0), None, "temperature 0 is not a positive number"),
    (set_in("temperature", -1.5), None, "temperature -1.5"),
    (set_in("temperature", "1"), None, "temperature '1'"),
    (set_in("input", "std", 0.0), None, "std must be a positive number"),
    (set_in("input", "std", float("inf")), None, "std must be a positive number"),
    (set_in("input", "mean", float("nan")), None, "std must be a positive number"),
    (set_in("classes", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "8"]), None, "class names repeat: 8"),
    (set_in("classes", [str(d) for d in range(9)]), None, "9 class names for a model with 10 outputs"),
    (set_in("classes", list(range(10))), None, "classes must be a list of names"),
    (None, nan_weight, "weights that are not finite numbers"),
], ids=["temp-nan", "temp-0", "temp-negative", "temp-string", "std-0", "std-inf", "mean-nan", "classes-repeat",
        "classes-9", "classes-ints", "weights-nan"])
@pytest.mark.parametrize("old_format", [False, True], ids=["format-2", "format-1"])
def test_a_description_that_would_change_answers_is_refused(tmp_path, change_meta, change_tensors, reason, old_format):
    _, path = saved_model(tmp_path, "cnn-small")
    resave(path, change_meta, change_tensors, old_format)
    with pytest.raises(MnistlabError, match="invalid checkpoint") as e:
        checkpoint.load_model(path)
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_first_format_checkpoints_still_load(tmp_path):
    model, path = saved_model(tmp_path, "cnn-small")
    resave(path, old_format=True)
    loaded, meta = checkpoint.load_model(path)
    assert meta["format"] == "mnistlab/1" and meta["classes"][3] == "3"
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.to(memory_format=torch.channels_last)(x), loaded(x))
    checkpoint.save_model(path, loaded, meta)  # rewriting it brings it to the current format
    assert checkpoint.read_meta(path)["format"] == checkpoint.FORMAT
    rewrite_header(path, b'"3"', b'"x"')
    with pytest.raises(MnistlabError, match="corrupt checkpoint"):
        checkpoint.load_model(path)


def test_a_current_checkpoint_without_its_sha256_is_refused(tmp_path):
    _, path = saved_model(tmp_path, "cnn-small")
    resave(path, change_meta=lambda meta: None)
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["mnistlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del meta["sha256"]
    save_file(tensors, path, metadata={"mnistlab": json.dumps(meta)})
    with pytest.raises(MnistlabError, match="no SHA-256"):
        checkpoint.load_model(path)


# --- Files that are not checkpoints to read --------------------------------------------------------------


def test_a_fifo_or_folder_named_like_a_checkpoint_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(MnistlabError, match="not a regular file"):
        checkpoint.load_model(fifo)
    (tmp_path / "run" / "model.safetensors").mkdir(parents=True)
    with pytest.raises(MnistlabError, match="not a regular file"):
        checkpoint.load_model(tmp_path / "run")


def test_an_unreadable_checkpoint_says_permission_denied(tmp_path, monkeypatch):
    _, path = saved_model(tmp_path, "cnn-small")
    real_open = open

    def no_permission(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_permission)  # root reads anything; this is what others get
    with pytest.raises(MnistlabError, match="permission denied"):
        checkpoint.load_model(tmp_path)


def test_a_run_folder_that_may_not_be_searched_says_permission_denied(tmp_path, monkeypatch, capsys):
    """A folder without the x bit: stat() of the file inside it fails with EACCES, which is not
    'no such file'. Through the command, as a user sees it."""
    saved_model(tmp_path, "cnn-small")
    real_stat = Path.stat

    def no_search(self, *args, **kwargs):
        if self.parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", no_search)
    assert main(["predict", str(tmp_path), str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err == f"mnistlab: error: {tmp_path / 'model.safetensors'}: permission denied\n"
