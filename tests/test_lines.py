"""The line reader (lines.py): lines of real MNIST digits made as tensors, a CRNN that learns them with
CTC, its file in a run folder, and how predict reads a wide mark with it."""

import io
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mnistlab import lines, locate, predict
from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError


def test_lines_hold_their_digits_left_to_right_in_mnists_convention(mnist):
    g = torch.Generator().manual_seed(0)
    x, target, lengths = lines.synthesize(mnist.train_images[:3000], mnist.train_labels[:3000], 256, g)
    assert x.shape == (256, 1, lines.HEIGHT, lines.WIDTH) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert lengths.max() <= lines.MAX_DIGITS and ((target > 0).sum(1) == lengths).all()
    assert (target[:, 1:][target[:, :-1] == 0] == 0).all()  # the text first, then nothing
    written = lengths > 0
    rows = x[written].amax(3)[:, 0] > 0.2
    cols = x[written].amax(2)[:, 0] > 0.2
    assert not rows[:, :2].any() and not rows[:, 26:].any()  # ink 20 of 28 rows high, from row 4
    assert cols.float().argmax(1).float().mean() < 6  # from column 4 (a slant moves a little ink left of it)
    # More digits make a longer line; some lines are scribbles and letters with an empty text.
    ends = lines.WIDTH - cols.flip(1).float().argmax(1)
    one, five = ends[lengths[written] == 1].float().mean(), ends[lengths[written] == 5].float().mean()
    assert five > 2.5 * one
    assert (x[~written].amax(dim=(1, 2, 3)) > 0.5).any()


def test_a_non_digit_beside_the_digits_is_left_out_of_the_text(mnist):
    """With a non-digit at one end of every line of two digits or more (a scribble, a letter, a blot, or
    the photo reader's clutter), the text holds the other digits, in order."""
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    clutter = torch.zeros(5, 28, 28, dtype=torch.uint8)
    clutter[:, 4:24, 12:15] = 255  # a bar
    x, target, lengths = lines.synthesize(images, labels, 300, torch.Generator().manual_seed(0), clutter,
                                          negatives=0.0, beside=1.0)
    k = torch.randint(1, lines.MAX_DIGITS + 1, (300,), generator=torch.Generator().manual_seed(0))  # as drawn
    written = x.amax(dim=(1, 2, 3)) > 0  # lines too long for the canvas are left empty
    assert written.float().mean() > 0.8
    assert (lengths[written] == torch.where(k > 1, k - 1, k)[written]).all()
    assert ((target > 0).sum(1) == lengths).all() and (target <= 10).all()


def test_the_reader_learns_lines_with_ctc(mnist):
    """A few dozen steps bring the CTC loss on fresh lines of other digits well down."""
    images, labels = mnist.train_images, mnist.train_labels
    fresh = torch.Generator().manual_seed(1)
    x, target, lengths = lines.synthesize(images[50000:51000], labels[50000:51000], 128, fresh)

    def loss(reader):
        with torch.no_grad():
            log_probs = reader.eval()(x)
        steps = torch.full((len(x),), log_probs.shape[0], dtype=torch.long)
        return float(F.ctc_loss(log_probs, target, steps, lengths, zero_infinity=True))

    torch.manual_seed(0)
    before = loss(lines.LineReader(**lines.ARGS))
    after = loss(lines.train_reader(images[:20000], labels[:20000], steps=60, batch=32, log=None))
    assert after < 0.3 * before, (before, after)


def test_the_reader_learns_from_lines_cut_out_of_photos_too(mnist):
    """With photo lines, PHOTO_SHARE of each batch is theirs: a reader trained on a handful of them
    (here: one line of "2" then "7", repeated) learns to read that line."""
    two, seven = (mnist.train_images[mnist.train_labels == d][0].numpy() for d in (2, 7))
    line = np.zeros((28, lines.WIDTH), np.uint8)
    line[:, 4:32], line[:, 32:60] = two, seven
    photo_lines = (torch.from_numpy(line)[None].repeat(4, 1, 1), torch.tensor([[3, 8, 0, 0, 0, 0]]).repeat(4, 1))
    torch.manual_seed(0)
    reader = lines.train_reader(mnist.train_images[:2000], mnist.train_labels[:2000], steps=80, batch=32,
                                photo_lines=photo_lines, log=None)
    with torch.no_grad():
        (digits, _, _), = lines.decode(reader(torch.from_numpy(line)[None, None].float() / 255))
    assert digits == [2, 7]


def test_a_run_keeps_its_line_reader_and_a_damaged_one_is_an_error(tmp_path, mnist, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert predict.TorchModel(run).lines is None  # a run without one reads as before
    cfg = TrainConfig(line_reader=20, val_fraction=0.1)
    measured = lines.train_for_run(run, mnist, cfg, measure=200)
    assert set(measured) == {"lines", "exact", "sure", "exact_when_sure"}
    reader = predict.TorchModel(run).lines
    assert isinstance(reader, lines.LineReader) and not reader.training
    line = np.random.default_rng(0).random((1, 1, 28, 64), dtype=np.float32)
    assert reader.log_probabilities(line).shape == (32, 1, 11)
    blob = bytearray((run / lines.FILE).read_bytes())
    blob[-5] ^= 0xFF
    (run / lines.FILE).write_bytes(bytes(blob))
    with pytest.raises(MnistlabError, match="SHA-256"):
        predict.TorchModel(run)


def test_with_photos_the_run_reader_learns_from_their_lines_too(tmp_path, mnist, trained_run, monkeypatch):
    """With --photos, train_for_run also cuts lines out of as many photos of numbers (kept in the user
    cache beside the digit crops) and its file says how many it learnt from."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    lines.train_for_run(run, mnist, TrainConfig(line_reader=5, photos=6, val_fraction=0.1), measure=50)
    assert predict.TorchModel(run).lines.meta["photo_lines"] >= 6
    assert len(list((tmp_path / "cache" / "mnistlab" / "photo-crops").glob("*.npz"))) == 2


class Reader:
    """A stand-in for a trained LineReader that reads every line as `text`, each digit surest in the
    middle of its share of the line, with probability `sure` there (its blanks elsewhere sure)."""

    def __init__(self, text: str, sure: float):
        self.text, self.sure = text, sure

    def log_probabilities(self, batch: np.ndarray) -> torch.Tensor:
        b, _, _, width = batch.shape
        steps = width // 2
        probs = torch.full((steps, b, 11), 1e-7)
        probs[:, :, lines.BLANK] = 1.0
        for k, d in enumerate(self.text):
            t = round((k + 0.5) * steps / len(self.text))
            probs[t, :] = (1 - self.sure) / 10
            probs[t, :, int(d) + 1] = self.sure
        return (probs / probs.sum(-1, keepdim=True)).log()


def touching_pair(mnist) -> bytes:
    """A "3" and a "1" written into each other on white paper: one mark, not much wider than tall."""
    img = np.full((600, 800, 3), 245, np.float32)
    three, one = mnist.test_images[18].numpy(), mnist.test_images[2].numpy()  # a "3" and a "1"
    assert (int(mnist.test_labels[18]), int(mnist.test_labels[2])) == (3, 1)
    for digit, x in ((three, 250), (one, 345)):
        alpha = np.clip((cv2.resize(digit, (200, 200), interpolation=cv2.INTER_CUBIC) / 255 - 0.25) * 2.5, 0, 1)
        part = img[200:400, x:x + 200]
        part[:] = part * (1 - alpha[..., None]) + np.float32((30, 30, 30)) * alpha[..., None]
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_a_wide_mark_is_read_whole_by_the_line_reader(trained_run, mnist):
    """With a line reader, a mark of two digits written into each other is read as the two digits,
    left to right, each box inside the mark's; as sure as the reader is of the whole text, so an
    unsure reader's text is a guess, and no digit only when there is none."""
    image = predict.open_image(touching_pair(mnist), size=locate.WORK_SIZE)
    found = locate.find_digits(image)
    (mark,) = found.digits
    assert mark.box[2] >= predict.SEQUENCE * mark.h
    model = predict.TorchModel(trained_run)
    model.lines = Reader("31", 0.99)
    reading = predict.read(model, image)
    assert reading["status"] == "ok" and reading["text"] == "31"
    (x, y, w, h) = found.original_box(mark.box)
    boxes = [d["box"] for d in reading["digits"]]
    assert boxes[0][0] < boxes[1][0]
    for bx, by, bw, bh in boxes:
        assert x <= bx and bx + bw <= x + w + 1 and y <= by and by + bh <= y + h + 1
    assert all(d["confidence"] <= 0.99 for d in reading["digits"])
    model.lines = Reader("31", 0.5)
    unsure = predict.read(model, image)
    assert unsure["status"] == "unsure"


def test_a_reading_with_a_digit_far_shorter_than_the_others_is_not_the_readers(trained_run, monkeypatch):
    """A wide "7" that begins with a short hook, read "57" by a line reader sure of it: the "5" (the
    hook) is far shorter than the "7", so the reader's reading is not one of the ways to read the mark
    (the digits of a number are about as tall as each other). Without that rule, it is."""
    img = np.full((600, 800, 3), 245, np.uint8)
    cv2.polylines(img, [np.int32([[260, 240], [250, 200], [500, 190], [420, 420]])], False, (40, 40, 40), 9,
                  cv2.LINE_AA)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=92)
    image = predict.open_image(buf.getvalue(), size=locate.WORK_SIZE)
    found = locate.find_digits(image)
    (mark,) = found.digits
    assert mark.box[2] >= predict.SEQUENCE * mark.h
    model = predict.TorchModel(trained_run)
    model.lines = Reader("57", 0.99)
    assert predict._sequences(model, found, [(0, 0, mark)]) == []
    monkeypatch.setattr(predict, "SHORT", 0.0)
    ((_, _, _, row),) = predict._sequences(model, found, [(0, 0, mark)])
    assert [d["digit"] for d in row] == [5, 7]


def test_the_sampling_grid_is_affine_grids():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [5, 1, 44, 240], align_corners=False)
    assert torch.allclose(lines._grid(theta, 44, 240), expected, atol=1e-5)


def test_the_line_reader_makes_an_unsure_number_sure_only_when_it_reads_the_same(mnist, trained_run):
    """predict._agreed: digits read unsure (at AGREE or more) are as sure as the line reader is of the
    same text; another text, or digits read too unsure, are left as they were."""
    image = predict.open_image(touching_pair(mnist), size=locate.WORK_SIZE)
    found = locate.find_digits(image)
    model = predict.TorchModel(trained_run)

    def digits(*confidences):
        return [{"digit": d, "confidence": c} for d, c in zip("31", confidences)]

    for text, given, sure in (("31", (0.8, 0.95), True), ("37", (0.8, 0.95), False), ("31", (0.5, 0.95), False)):
        model.lines = Reader(text, 0.99)
        read = digits(*given)
        predict._agreed(model, found, read, found.digits, 0.9)
        assert all(d["confidence"] >= 0.9 for d in read) is sure
        assert ("line_reader" in read[0]) is sure
