"""Every ```python block of the README runs as printed, in order, in a fresh folder (the first block
trains the run the others use), with the data from MNISTLAB_DATA as a reader would set it."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_readme_python_blocks_run_as_printed(tmp_path, monkeypatch, mnist_dir):
    blocks = python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    outputs = []
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
        outputs.append(out.getvalue())
    text = "".join(outputs)
    assert re.search(r"test accuracy 9\d\.\d\d%, kept epoch 1", text), text
    assert (tmp_path / "runs" / "quickstart" / "report.html").exists() and (tmp_path / "curves.png").exists()
    # What the comments promise.
    assert re.search(r"^7 0\.9\d+$", text, re.M), text
    assert "['7', '2', '1', '0', '4', '1', '4', '9', '5', '9']" in text
    assert "['7', '2', '1', '0', '4', '1', '4', '9']" in text
