"""Export to ONNX and torch.export, checked against PyTorch on real test images; the onnxruntime
backend gives the same answers as PyTorch."""

import os
import shutil
import sys

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")  # the onnx extra
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from mnistlab.cli import main  # noqa: E402
from mnistlab.errors import MnistlabError  # noqa: E402
from mnistlab.export import OnnxModel, choose_backend, export, onnx_for, open_model  # noqa: E402
from mnistlab.predict import TorchModel  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory, trained_run):
    folder = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(trained_run, folder)
    return folder


def test_onnx_export_matches_pytorch_with_any_batch_size(run, mnist, capsys, mnist_dir):
    assert main(["export", str(run), "--data-dir", str(mnist_dir)]) == 0
    assert "largest difference from PyTorch on 1,000 test images" in capsys.readouterr().out
    proto = onnx.load(run / "model.onnx")
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    torch_model, onnx_model = TorchModel(run), OnnxModel(run / "model.onnx")
    assert onnx_model.meta["classes"] == torch_model.meta["classes"]
    for n in (1, 7, 500):
        digits = mnist.test_images[:n].numpy()
        got, want = onnx_model.probabilities(digits), torch_model.probabilities(digits)
        assert got.shape == (n, 10) and np.abs(got - want).max() < 1e-4
        assert (got.argmax(1) == want.argmax(1)).all()


def test_pt2_export_matches_pytorch(run, mnist):
    out, diff = export(run, "pt2", run / "model.pt2", mnist, check_images=200)
    assert diff < 1e-4
    module = torch.export.load(out).module()
    x = mnist.test_images[:50].unsqueeze(1).float() / 255
    logits, probs = module(x)
    assert torch.allclose(probs, torch.tensor(TorchModel(run).probabilities(mnist.test_images[:50].numpy())),
                          atol=1e-5)


def test_onnxruntime_backend_needs_a_fresh_export(run, tmp_path, mnist):
    fresh = tmp_path / "fresh"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("model.onnx", "model.pt2"))
    with pytest.raises(MnistlabError, match="not exported yet"):
        open_model(fresh, "onnxruntime")
    export(fresh, "onnx", data=None, check_images=0)
    assert open_model(fresh, "onnxruntime").backend == "onnxruntime"
    later = (fresh / "model.onnx").stat().st_mtime + 10
    os.utime(fresh / "model.safetensors", (later, later))  # the checkpoint changed after the export
    with pytest.raises(MnistlabError, match="older than its checkpoint"):
        open_model(fresh, "onnxruntime")


def test_auto_backend_exports_into_the_user_cache_never_beside_the_checkpoint(run, tmp_path, monkeypatch):
    """Backend "auto" on a checkpoint without an up-to-date model.onnx: onnxruntime, with an export
    made once into the cache (named by the checkpoint's digest) and checked against PyTorch."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fresh = tmp_path / "fresh"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("model.onnx", "model.pt2"))
    before = sorted(p.name for p in fresh.iterdir())
    assert choose_backend(fresh) == ("onnxruntime", "installed; the checkpoint exported to ONNX in the user cache")
    cached = onnx_for(fresh)
    assert cached.parent == tmp_path / "cache" / "mnistlab" / "onnx" and cached.suffix == ".onnx"
    assert sorted(p.name for p in fresh.iterdir()) == before  # nothing written beside the checkpoint
    model = open_model(fresh, "auto")
    assert model.backend == "onnxruntime"
    digits = np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    assert np.abs(model.probabilities(digits) - TorchModel(fresh).probabilities(digits)).max() < 1e-4
    mtime = cached.stat().st_mtime
    assert onnx_for(fresh) == cached and cached.stat().st_mtime == mtime  # exported once
    export(fresh, "onnx", data=None, check_images=0)
    assert onnx_for(fresh) == fresh / "model.onnx"  # the user's own export, when up to date, comes first


def test_a_corrupt_checkpoint_is_not_served_from_the_export_of_the_file_it_was(run, tmp_path, monkeypatch):
    """A byte flipped in a checkpoint's class names keeps the digest its description claims (by which the
    user cache names exports); the auto backend must refuse it as PyTorch does, not run the old export."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = tmp_path / "good"
    shutil.copytree(run, good, ignore=shutil.ignore_patterns("model.onnx", "model.pt2"))
    onnx_for(good)  # its export is in the cache
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    blob = (bad / "model.safetensors").read_bytes()
    assert blob.count(b'\\"3\\"') == 1
    (bad / "model.safetensors").write_bytes(blob.replace(b'\\"3\\"', b'\\"8\\"'))
    with pytest.raises(MnistlabError, match="corrupt checkpoint"):
        open_model(bad, "auto")


def test_auto_backend_is_pytorch_without_onnxruntime(run, monkeypatch):
    export_module = sys.modules["mnistlab.export"]  # `mnistlab.export` is also ml.export, the function
    monkeypatch.setattr(export_module, "_installed", lambda *modules: "onnxruntime" not in modules)
    assert choose_backend(run) == ("pytorch", "onnxruntime is not installed")
    assert open_model(run, "auto").backend == "pytorch"


def test_bad_onnx_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model at all")
    assert main(["predict", str(bad), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error:") and "cannot load ONNX model" in err and err.count("\n") == 1
    with pytest.raises(MnistlabError, match="unknown export format"):
        export(tmp_path, "tflite")
    with pytest.raises(MnistlabError, match="needs the test images"):
        export(tmp_path, "onnx", data=None, check_images=10)
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--check-images", "-1"])
    assert "must be a whole number at least 0, got -1" in capsys.readouterr().err
