"""Own images: real MNIST test digits drawn large, inverted and off-centre are read correctly."""

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mnistlab import predict
from mnistlab.cli import main
from mnistlab.errors import MnistlabError

N = 100


def as_photo(digit: np.ndarray, i: int) -> Image.Image:
    """A 28x28 MNIST digit as a person's image: black ink on white, scaled up, placed off-centre on a
    larger canvas of varying size and aspect."""
    big = Image.fromarray(255 - digit).resize((28 * 8, 28 * 8), Image.BICUBIC)
    canvas = Image.new("L", (300 + 7 * (i % 5), 260 + 11 * (i % 3)), 255)
    canvas.paste(big, (10 + 5 * (i % 7), 15 + 3 * (i % 4)))
    return canvas.convert("RGB") if i % 2 else canvas


@pytest.fixture(scope="module")
def photos(mnist, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(N):
        suffix = ".jpg" if i % 3 == 0 else ".png"
        as_photo(mnist.test_images[i].numpy(), i).save(folder / f"{i:03d}{suffix}", quality=90)
    return folder


def test_preprocessing_recovers_mnist_convention(mnist):
    for i in range(20):
        digit = mnist.test_images[i].numpy()
        again = predict.to_mnist(as_photo(digit, i))
        assert again.shape == (28, 28) and again.dtype == np.uint8 and again.max() == 255
        # The digit comes back centred by mass, in a 20-pixel box, close to the original.
        ys, xs = np.indices(again.shape)
        assert abs((ys * again).sum() / again.sum() - 13.5) < 0.75
        assert abs((xs * again).sum() / again.sum() - 13.5) < 0.75
        rows, cols = np.nonzero(again > 40)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)
        assert np.abs(again.astype(int) - digit.astype(int)).mean() < 30


def test_big_inverted_digits_are_classified_correctly(trained_run, mnist, photos):
    results = predict.read_files(predict.TorchModel(trained_run), [photos], single=True)
    assert len(results) == N and not any("error" in r or r["status"] == "no_digit" for r in results)
    predicted = np.array([int(r["digits"][0]["digit"]) for r in results])
    accuracy = (predicted == mnist.test_labels[:N].numpy()).mean()
    assert accuracy >= 0.95, accuracy
    assert all(abs(sum(t["probability"] for t in r["digits"][0]["top"]) - 1) < 0.5 for r in results)


def test_blank_images_are_reported_as_blank(tmp_path, trained_run, capsys):
    Image.new("L", (400, 300), 255).save(tmp_path / "white.png")
    Image.new("RGB", (64, 64), (30, 30, 30)).save(tmp_path / "dark.jpg")
    noise = np.random.default_rng(0).integers(230, 256, (200, 200), dtype=np.uint8)  # faint paper texture
    Image.fromarray(noise).save(tmp_path / "paper.png")
    assert main(["predict", str(trained_run), str(tmp_path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in results] == ["no_digit"] * 3 and not any(r["digits"] for r in results)


def test_transparent_drawing_and_thin_strokes(mnist):
    """A thin black stroke on a transparent canvas (what a drawing app saves) is thickened and read."""
    digit = mnist.test_images[0].numpy()  # a 7
    big = np.asarray(Image.fromarray(digit).resize((560, 560), Image.BICUBIC))
    thin = (big > 250).astype(np.uint8)  # only the core of the stroke: a hairline
    rgba = np.zeros((560, 560, 4), np.uint8)
    rgba[..., 3] = thin * 255
    out = predict.to_mnist(Image.fromarray(rgba, "RGBA"))
    assert out is not None
    assert (out > 128).sum() > 60  # thickened to a real stroke, not a faint hairline


def test_undecodable_and_oversized_images(tmp_path, monkeypatch):
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(MnistlabError, match="cannot decode"):
        predict.open_image(tmp_path / "fake.png")
    buf = io.BytesIO()
    Image.new("L", (300, 200)).save(buf, "GIF")
    with pytest.raises(MnistlabError, match="not a PNG, JPEG, WebP, AVIF, HEIC, BMP or TIFF"):
        predict.open_image(buf.getvalue())
    monkeypatch.setattr(predict, "MAX_PIXELS", 100 * 100)
    Image.new("L", (101, 100)).save(tmp_path / "big.png")
    with pytest.raises(MnistlabError, match="larger than"):
        predict.open_image(tmp_path / "big.png")


def test_a_48_megapixel_phone_jpeg_is_read_at_the_size_it_is_decoded_at(trained_run, mnist):
    """The pixel limit is on what is decoded: a phone's 50-megapixel JPEG, decoded in draft mode at an
    eighth of its size, is read (its digit's box in the file's pixels); the same photo decoded whole,
    or as a PNG, which has no reduced decoding, is refused before it is decoded."""
    w, h = 8192, 6144
    page = np.full((h, w), 235, np.uint8)
    digit = cv2.resize(255 - mnist.test_images[0].numpy(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    page[2000:3600, 3000:4600] = np.minimum(page[2000:3600, 3000:4600], digit)
    jpeg = encoded(Image.fromarray(page), "JPEG", quality=85)
    assert w * h > predict.MAX_PIXELS
    image = predict.open_image(jpeg, size=800)
    assert image.size == (w // 8, h // 8)
    reading = predict.read(predict.TorchModel(trained_run), image)
    assert (reading["status"], reading["text"]) == ("ok", str(int(mnist.test_labels[0])))
    x, y, bw, bh = reading["digits"][0]["box"]
    assert 3000 <= x and 2000 <= y and x + bw <= 4600 and y + bh <= 3600 and bh > 800  # the file's pixels
    with pytest.raises(MnistlabError, match="8192x6144, larger than"):
        predict.open_image(jpeg)
    with pytest.raises(MnistlabError, match="8192x6144, larger than"):
        predict.open_image(encoded(Image.new("L", (w, h), 235)), size=800)


def encoded(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_any_mode_and_orientation_gives_the_same_digit(mnist):
    digit = mnist.test_images[0].numpy()
    big = Image.fromarray(255 - digit).resize((280, 280), Image.BICUBIC)
    reference = predict.to_mnist(big)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    variants = {
        "16-bit": encoded(Image.fromarray(np.asarray(big).astype(np.uint16) * 257)),
        "palette": encoded(big.convert("P")),
        "grey+alpha": encoded(big.convert("LA")),
        "RGB JPEG": encoded(big.convert("RGB"), "JPEG", quality=95),
        "CMYK JPEG": encoded(big.convert("CMYK"), "JPEG", quality=95),
        "rotated, EXIF-tagged": encoded(big.rotate(90, expand=True).convert("RGB"), "JPEG", quality=95,
                                        exif=exif.tobytes()),
        "WebP": encoded(big.convert("RGB"), "WEBP", quality=95),
        "AVIF, rotated, EXIF-tagged": encoded(big.rotate(90, expand=True).convert("RGB"), "AVIF", quality=95,
                                              exif=exif.tobytes()),
        # A phone's JPEG with a second picture after the photo (an HDR gain map), which PIL calls MPO:
        "JPEG and its gain map": encoded(big.convert("RGB"), "MPO", quality=95, save_all=True,
                                         append_images=[big.convert("RGB").resize((70, 70))]),
    }
    if predict._heif_opener():  # the heic extra (in dev): an iPhone's photo, turned by its orientation
        variants["HEIC, rotated"] = encoded(big.rotate(90, expand=True).convert("RGB"), "HEIF", quality=95,
                                            exif=exif.tobytes())
    for name, blob in variants.items():
        out = predict.to_mnist(predict.open_image(blob))
        assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3, name


def test_a_plain_png_is_decoded_by_libspng_to_pils_pixels(mnist):
    """8-bit RGB and RGBA PNGs (a canvas's) go to libspng and come back as PIL decodes them; every other
    PNG, and one with transparency for RGB, an orientation or a broken stream, is left to PIL."""
    pytest.importorskip("pyspng")
    digit = np.asarray(Image.fromarray(mnist.test_images[0].numpy()).resize((280, 280), Image.BICUBIC))
    rgba = np.dstack([digit, 255 - digit, digit // 2, np.full_like(digit, 255)])
    exif = Image.Exif()
    exif[0x0112] = 6
    plain = {"RGBA": encoded(Image.fromarray(rgba)), "RGB": encoded(Image.fromarray(rgba[..., :3])),
             "RGBA, cv2's filters": cv2.imencode(".png", rgba)[1].tobytes()}
    for name, blob in plain.items():
        image = predict.plain_png(blob)
        reference = Image.open(io.BytesIO(blob))
        assert image is not None and image.mode == reference.mode, name
        assert np.array_equal(np.asarray(image), np.asarray(reference)), name
        assert np.array_equal(np.asarray(predict.open_image(blob)), np.asarray(reference)), name
    others = {"grey": encoded(Image.fromarray(digit)), "palette": encoded(Image.fromarray(digit).convert("P")),
              "16-bit": encoded(Image.fromarray(digit.astype(np.uint16) * 257)),
              "RGB with a transparent colour": encoded(Image.fromarray(rgba[..., :3]), transparency=(0, 0, 0)),
              "EXIF-tagged": encoded(Image.fromarray(rgba), exif=exif.tobytes())}
    for name, blob in others.items():
        assert predict.plain_png(blob) is None, name
    broken = bytearray(plain["RGBA"])
    broken[len(broken) // 2] ^= 0xFF
    assert predict.plain_png(bytes(broken)) is None
    with pytest.raises(MnistlabError, match="cannot decode"):
        predict.open_image(bytes(broken))


def test_thin_pen_strokes_get_mnist_stroke_width(mnist):
    """Digits drawn with a thin pen on a big canvas come out with MNIST's stroke width (about 2.6
    pixels at 28x28), including a "1" whose ink is only a few pixels wide."""
    from PIL import ImageDraw

    def drawn(strokes):
        image = Image.new("RGB", (400, 400), "white")
        ImageDraw.Draw(image).line(strokes, fill="black", width=4)
        return predict.to_mnist(image) > 128

    seven = drawn([(120, 100), (290, 100), (180, 330)])
    reference = np.median([predict.stroke_width(mnist.test_images[i].numpy() > 128) for i in range(500)])
    assert abs(predict.stroke_width(seven) - reference) < 0.8
    one = drawn([(200, 60), (204, 340)])
    rows = one.any(1).sum()
    assert rows >= 19 and one.sum() / rows >= 1.8  # at least two pixels wide on average, not a hairline


def test_marks_the_model_takes_for_no_digit_are_no_digit():
    """A reading is no_digit when every mark's best class is near chance (the grain of a desk, a
    crease); one mark that looks like a digit makes it unsure instead; and min_confidence 0 keeps
    every guess, as a threshold sweep needs. Marks only the second, faint look found are no digit
    unless one is read with confidence."""
    def digit(p):
        return {"digit": "7", "confidence": p, "box": [0, 0, 1, 1], "top": []}

    assert predict.summarise([digit(0.15), digit(0.2)])["status"] == "no_digit"
    assert predict.summarise([digit(0.15), digit(0.2)])["digits"] == []
    assert predict.summarise([digit(0.15), digit(0.6)]) | {"digits": None} == {
        "text": None, "status": "unsure", "confidence": 0.09, "digits": None, "guess": "77"}
    assert predict.summarise([digit(0.15)], min_confidence=0.0)["status"] == "ok"
    assert predict.summarise([digit(0.95)])["status"] == "ok"
    # What only the second, faint look found (a blank page's texture) is a digit only when read surely:
    assert predict.summarise([digit(0.15), digit(0.6)], faint=True)["status"] == "no_digit"
    assert predict.summarise([digit(0.6), digit(0.95)], faint=True)["status"] == "unsure"


def test_an_iphone_s_heic_photo_is_read(tmp_path, trained_run, mnist, capsys):
    """A photo as an iPhone saves it (HEIC) or as a messaging app shares it (WebP), in a folder, is read
    as its JPEG is (without the heic extra: tests/test_extras.py)."""
    pytest.importorskip("pillow_heif")
    from test_locate import photo

    picked = (40, 41, 42)
    truth = "".join(str(int(mnist.test_labels[i])) for i in picked)
    jpeg = Image.open(io.BytesIO(photo([mnist.test_images[i].numpy() for i in picked], height=120)))
    assert predict._heif_opener()
    jpeg.save(tmp_path / "IMG_0001.HEIC", "HEIF", quality=95)
    jpeg.save(tmp_path / "shared.webp", "WEBP", quality=95)
    assert main(["predict", str(trained_run), str(tmp_path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in results] == ["IMG_0001.HEIC", "shared.webp"]
    assert [(r["status"], r["text"]) for r in results] == [("ok", truth)] * 2


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PNG16"])
def test_bmp_tiff_and_16_bit_scans_are_read_like_a_png(trained_run, mnist, tmp_path, fmt):
    """A digit saved by Paint (BMP) or a scanner (TIFF; a 16-bit PNG or TIFF, whose pixels PIL gives as
    16-bit integers: converted to RGB they would be clipped to white) reads as the same digit in a PNG."""
    digit = 255 - cv2.resize(mnist.test_images[0].numpy(), (140, 140), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    if fmt == "PNG16":
        path = tmp_path / "digit16.png"
        Image.fromarray(digit.astype(np.uint16) * 257).save(path)
        assert Image.open(path).mode.startswith("I")
    else:
        path = tmp_path / f"digit.{fmt.lower()}"
        Image.fromarray(digit).save(path, fmt)
    image = predict.open_image(path)
    assert np.array_equal(np.asarray(image.convert("L")), digit)
    model = predict.TorchModel(trained_run)
    assert predict.read(model, image)["text"] == predict.read(model, predict.open_image(tmp_path / "digit.png"))["text"] == "7"
