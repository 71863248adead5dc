"""Keras import: every model file in ../shared/fixtures/keras gives Keras's own probabilities back,
through the normal `import-keras` then `evaluate` commands; anything unsupported is a clear error."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")  # the keras extra

from mnistlab.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("MNISTLAB_KERAS_FIXTURES") or ROOT.parent / "shared" / "fixtures" / "keras")
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text()) if (FIXTURES / "manifest.json").exists() else {}
CASES = [(name, files[0], None) for name, e in MANIFEST.items() if not name.startswith("_") for files in [e["files"]]]
CASES += [(name, e["files"][1], e["files"][2]) for name, e in MANIFEST.items()
          if not name.startswith("_") and len(e["files"]) == 3]


def test_fixtures_are_there():
    assert len(CASES) == 9, f"the Keras fixtures are needed in {FIXTURES}"


@pytest.mark.parametrize("name, file, weights", CASES, ids=[c[1] for c in CASES])
def test_imported_model_gives_keras_probabilities(name, file, weights, mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["import-keras", str(FIXTURES / file), "--out", str(run)]
    assert main(args + (["--weights", str(FIXTURES / weights)] if weights else [])) == 0
    assert f"{MANIFEST[name]['params']:,} parameters" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--limit", "200", "--data-dir", str(mnist_dir)]) == 0
    probs, keras_probs = np.load(run / "probs.npy"), np.load(FIXTURES / MANIFEST[name]["probs"])
    assert probs.shape == keras_probs.shape == (200, 10)
    assert np.abs(probs - keras_probs).max() < 1e-5
    assert (run / "report.html").exists()


def keras2_config(tmp_path, change) -> Path:
    config = json.loads((FIXTURES / "keras2_cnn_small_architecture.json").read_text())
    change(config)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(config))
    return path


def batchnorm(config):
    config["config"]["layers"].insert(2, {"class_name": "BatchNormalization", "config": {"name": "bn"}})


def functional(config):
    config["class_name"] = "Functional"


def sigmoid(config):
    config["config"]["layers"][1]["config"]["activation"] = "sigmoid"


def flat_input(config):
    config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, 784]


def no_input(config):
    del config["config"]["layers"][0]


@pytest.mark.parametrize("change, message", [(batchnorm, "is a BatchNormalization; supported: "),
                                             (functional, "only Sequential models"),
                                             (sigmoid, "activation 'sigmoid' is not supported"),
                                             (flat_input, "input shape [784] is not a 28x28 greyscale image"),
                                             (no_input, "does not declare its input shape")])
def test_unsupported_architectures_are_clear_errors(change, message, tmp_path, capsys):
    path = keras2_config(tmp_path, change)
    assert main(["import-keras", str(path), "--weights", str(FIXTURES / "keras2_cnn_small_weights.h5"),
                 "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_weights_of_another_model_and_garbage_are_clear_errors(tmp_path, capsys):
    assert main(["import-keras", str(FIXTURES / "keras2_cnn_small_architecture.json"),
                 "--weights", str(FIXTURES / "keras2_fnn_weights.h5"), "--out", str(tmp_path / "a")]) == 1
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    assert main(["import-keras", str(tmp_path / "junk.h5"), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("mnistlab: error: ") for line in err)
    assert "not a readable Keras model file" in err[1]
