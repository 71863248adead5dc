"""examples/quickstart.ipynb runs top to bottom (on a small subset: MNISTLAB_QUICK=1), shows its runs as
HTML summaries and its figures as images, and prints no terminal escape codes."""

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("MNISTLAB_QUICK", "1")
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    root = str(Path(__file__).resolve().parent.parent)  # the kernel imports this checkout's mnistlab
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert 10 <= len(code_cells) <= 14  # "a dozen cells"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in code_cells for o in c.outputs]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    plain = [o["data"]["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]
    assert not any("\x1b[" in text for text in [streams, *html, *plain]) and "Traceback" not in streams
    assert sum("mnistlab run" in h for h in html) == 2  # the two Run summaries
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # samples, curves, confusion matrix, ROC, comparison
    assert "read '7' with confidence" in streams
    assert "Epoch 1/1" in streams and "best" in streams  # plain lines, not a terminal's bar
    assert "largest difference:" in streams and len(list((tmp_path / "runs").iterdir())) >= 3
