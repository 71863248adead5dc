"""Files that are not what their names say: a FIFO or a folder named like an image in a folder given
to `predict` is skipped with a message instead of hanging it, and unreadable files say "permission
denied", never "no such file"."""

import os
import subprocess
import sys

from PIL import Image

from mnistlab import predict
from mnistlab.cli import main


def test_predict_skips_what_is_not_a_regular_file(trained_run, mnist, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(255 - mnist.test_images[0].numpy()).resize((200, 200)).save(folder / "a.png")
    os.mkfifo(folder / "x.png")  # opening it would wait for a writer forever
    (folder / "y.jpg").mkdir()
    # A subprocess with a timeout: the command used to hang here.
    r = subprocess.run([sys.executable, "-m", "mnistlab", "predict", str(trained_run), str(folder)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.stdout.startswith(f"{folder / 'a.png'}: 7 "), r.stdout
    assert f"{folder / 'x.png'}: not a regular file (a FIFO); skipped" in r.stderr
    assert f"{folder / 'y.jpg'}: not a regular file (a folder); skipped" in r.stderr
    assert r.returncode == 1 and "Traceback" not in r.stderr  # like any other file it could not read


def test_an_unreadable_image_says_permission_denied(trained_run, mnist, tmp_path, monkeypatch, capsys):
    path = tmp_path / "a.png"
    Image.fromarray(mnist.test_images[0].numpy()).save(path)
    real_open = Image.open

    def no_permission(fp, *args, **kwargs):  # root reads anything; this is what other users get
        if str(fp) == str(path):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(predict.Image, "open", no_permission)
    assert main(["predict", str(trained_run), str(path)]) == 1
    assert capsys.readouterr().err == f"mnistlab: error: {path}: permission denied\n"
