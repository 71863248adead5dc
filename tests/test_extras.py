"""The optional parts: without their packages, the commands that need them say in one line which pip
extra to install (the packages are hidden from the import system here, as if not installed)."""

import sys

import pytest
from PIL import Image

from mnistlab.cli import main


@pytest.mark.parametrize("hidden, args, extra", [
    ("fastapi", ["serve", "RUN"], "serve"),
    ("uvicorn", ["serve", "RUN"], "serve"),
    ("onnxscript", ["export", "RUN", "--check-images", "0"], "onnx"),
    ("onnxruntime", ["predict", "RUN/model.onnx", "IMAGE"], "onnx"),
    ("h5py", ["import-keras", "RUN/model.h5", "--out", "OUT"], "keras"),
], ids=["serve-fastapi", "serve-uvicorn", "export-onnxscript", "predict-onnxruntime", "import-keras"])
def test_a_missing_extra_is_named_in_one_line(hidden, args, extra, trained_run, tmp_path, monkeypatch, capsys):
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    args = [a.replace("RUN", str(trained_run)).replace("IMAGE", str(image)).replace("OUT", str(tmp_path / "out"))
            for a in args]
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` now fails as if it were not installed
    for name in [m for m in sys.modules if m in ("mnistlab.serve", "mnistlab.keras")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, without the hidden package
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'mnistlab[{extra}]'" in err, err
    assert not (tmp_path / "out").exists()


def test_a_heic_photo_without_the_heic_extra_is_named_in_one_line(trained_run, tmp_path, monkeypatch, capsys):
    """An iPhone's HEIC photo, with pillow-heif not installed: one line naming the extra, exit code 1."""
    pytest.importorskip("pillow_heif")
    from mnistlab import predict

    assert predict._heif_opener()
    Image.new("RGB", (64, 48), (240, 240, 235)).save(tmp_path / "IMG_0001.HEIC", "HEIF")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` now fails
    predict._heif_opener.cache_clear()
    try:
        assert main(["predict", str(trained_run), str(tmp_path / "IMG_0001.HEIC")]) == 1
    finally:
        predict._heif_opener.cache_clear()  # the next test finds pillow-heif again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'mnistlab[heic]'" in err, err
