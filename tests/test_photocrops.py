"""photocrops: training digits written into photos and cut out again as the reader reads a photo,
each crop labelled from the scene's truth; the same crops however many processes make them; kept in
the user cache and made again when the cached file is damaged."""

import cv2
import numpy as np
import pytest

from mnistlab import photocrops, scenes


@pytest.fixture(scope="module")
def training(mnist):
    return mnist.train_images[:5000].numpy(), mnist.train_labels[:5000].numpy()


def test_a_mark_is_labelled_by_the_digit_it_covers():
    truth, text = [(100, 100, 40, 60), (150, 100, 40, 60)], "37"
    assert photocrops.label((98, 95, 45, 70), truth, text) == 3
    assert photocrops.label((145, 100, 50, 62), truth, text) == 7
    assert photocrops.label((400, 300, 40, 60), truth, text) == -1  # clutter away from the digits
    assert photocrops.label((100, 100, 90, 60), truth, text) is None  # both digits: touching
    assert photocrops.label((100, 100, 15, 20), truth, text) is None  # a piece of one
    assert photocrops.label((60, 60, 200, 200), truth, text) is None  # mostly paper around a digit


def test_a_ring_is_no_outlier_but_other_clutter_is(mnist):
    """A ring (a coffee cup's, an "O") looks like a round "0" once cut out, so it is not taught as a
    non-digit (locate tells a cup's stain by its colour and line instead); a "C", a line, a blob are."""
    def drawn(shape):
        crop = np.zeros((28, 28), np.uint8)
        shape(crop)
        return crop

    assert photocrops.ring(drawn(lambda c: cv2.circle(c, (14, 14), 9, 255, 2)))
    assert photocrops.ring(drawn(lambda c: cv2.ellipse(c, (14, 14), (7, 10), 0, 0, 360, 255, 2)))
    assert not photocrops.ring(drawn(lambda c: cv2.ellipse(c, (14, 14), (9, 9), 0, 50, 310, 255, 2)))
    assert not photocrops.ring(drawn(lambda c: cv2.line(c, (4, 14), (24, 14), 255, 2)))
    assert not photocrops.ring(drawn(lambda c: cv2.circle(c, (14, 14), 9, 255, -1)))
    eights = mnist.test_images[mnist.test_labels == 8][:50].numpy()
    assert sum(map(photocrops.ring, eights)) <= 5  # two loops, not one


def test_a_written_digit_comes_back_with_its_label(training):
    """Scenes of one digit on white or ruled paper: the crop labelled with the scene's digit is the
    reader's own input for it, and a model reads it as that digit."""
    source = scenes.DigitSource(*training, "train")
    read = 0
    for seed in range(6):
        scene = scenes.make_scene("ruled-blue", seed, source)
        pairs = photocrops.scene_crops("ruled-blue", seed, source)
        digits = [(crop, y) for crop, y in pairs if y >= 0]
        assert [y for _, y in digits] in ([], [int(scene.text)])
        assert all(crop.shape == (28, 28) and crop.dtype == np.uint8 and crop.max() == 255 for crop, _ in pairs)
        read += len(digits)
    assert read >= 4


def test_a_run_of_marks_is_labelled_by_the_digits_it_covers():
    truth, digits = [(100, 100, 40, 60), (150, 100, 40, 60), (200, 105, 40, 60), (100, 200, 40, 60)], "3715"
    assert photocrops.line_text((95, 95, 100, 70), truth, digits) == "37"
    assert photocrops.line_text((95, 95, 150, 75), truth, digits) == "371"
    assert photocrops.line_text((500, 95, 100, 70), truth, digits) == ""  # clutter: no digit
    assert photocrops.line_text((95, 95, 75, 70), truth, digits) is None  # part of the "7"
    assert photocrops.line_text((95, 95, 50, 170), truth, digits) is None  # the "3" and the "5" below it


def test_a_written_number_comes_back_as_lines_with_its_digits(training):
    """Scenes of numbers: every line cut out for the line reader is its input (28 pixels high, the ink
    from column 4), and its text is a run of the number's digits in order (all of them when the line
    found holds the whole number)."""
    from mnistlab import lines

    source = scenes.DigitSource(*training, "train")
    whole = 0
    for seed in range(4):
        scene = scenes.make_scene("number", seed, source)
        pairs = photocrops.scene_lines("number", seed, source)
        for line, text in pairs:
            assert line.dtype == np.uint8 and line.shape[0] == 28 and line.shape[1] <= lines.WIDTH
            assert line[:, 4:8].max() > 0 and line[:, :3].max() == 0
            assert text in scene.text  # a run of its digits, left to right
        whole += any(text == scene.text for _, text in pairs)
    assert whole >= 2
    inputs, texts = photocrops.make(*training, 4, seed=0, workers=1, cut_lines=True)
    assert inputs.shape[1:] == (28, lines.WIDTH) and texts.shape == (len(inputs), lines.MAX_DIGITS)
    assert len(inputs) >= 4 and (texts[:, 1:][texts[:, :-1] == 0] == 0).all() and texts.max() <= 10


def test_crops_do_not_depend_on_the_number_of_processes(training):
    one = photocrops.make(*training, 10, seed=3, workers=1)
    two = photocrops.make(*training, 10, seed=3, workers=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert len(one[1]) >= 8 and set(one[1].tolist()) <= set(range(-1, 10))
    other = photocrops.make(*training, 10, seed=4, workers=1)
    assert not np.array_equal(one[1], other[1]) or not np.array_equal(one[0], other[0])


def test_a_scene_with_no_room_for_its_digits_adds_no_crops(training, monkeypatch):
    """A scene the generator cannot lay out (scenes.NoRoom) is left out; the other scenes' crops stay."""
    made = photocrops.scene_crops

    def crowded(condition, seed, source):
        if seed % 2:
            raise scenes.NoRoom("no room for 6 digits 300 pixels tall")
        return made(condition, seed, source)

    monkeypatch.setattr(photocrops, "scene_crops", crowded)
    crops, labels = photocrops.make(*training, 6, seed=3, workers=1)
    assert len(crops) == len(labels) >= 1


def test_crops_are_cached_and_a_damaged_cache_is_made_again(training, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    images, labels = training[0][:500], training[1][:500]
    crops, ys = photocrops.cached(images, labels, 4)
    (path,) = (tmp_path / "mnistlab" / "photo-crops").glob("*.npz")
    made = path.stat().st_mtime_ns
    again = photocrops.cached(images, labels, 4)
    assert path.stat().st_mtime_ns == made and np.array_equal(again[0], crops) and np.array_equal(again[1], ys)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    remade = photocrops.cached(images, labels, 4)
    assert np.array_equal(remade[0], crops) and np.array_equal(remade[1], ys)
    assert len(list(path.parent.glob("*.npz"))) == 1
    # Another reader (here: its code without the photos' generator) reads the photos anew, in a new file.
    monkeypatch.setattr(photocrops, "MAKERS", photocrops.MAKERS[1:])
    photocrops.cached(images, labels, 4)
    assert len(list(path.parent.glob("*.npz"))) == 2


def test_training_takes_the_photos_digits_and_their_clutter(mnist, tmp_path, monkeypatch):
    """With `photos`, the crops' digits join the training split (after MNIST's) and their clutter
    is kept apart for the outliers of each batch."""
    from mnistlab.config import TrainConfig
    from mnistlab.train import setup

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plain = setup(TrainConfig(model="fnn", train_limit=500, outliers=0.2), tmp_path / "plain", mnist)
    s = setup(TrainConfig(model="fnn", train_limit=500, outliers=0.2, photos=10), tmp_path / "photos", mnist)
    assert len(plain.x_clutter) == 0 and len(plain.x_train) == 500
    (path,) = (tmp_path / "cache" / "mnistlab" / "photo-crops").glob("*.npz")
    with np.load(path) as saved:
        crops, labels = saved["crops"], saved["labels"]
    digits = labels >= 0
    assert digits.any()
    assert len(s.x_train) == 500 + digits.sum() and len(s.x_clutter) == (~digits).sum()
    assert s.y_train[500:].tolist() == labels[digits].tolist()
    assert np.array_equal((s.x_train[500:, 0].numpy() * 255).round().astype(np.uint8), crops[digits])
