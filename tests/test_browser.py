"""The drawing page in real headless Chromium (Debian's, driven by Playwright): draw real MNIST test
digits with mouse events, read the page's answer, clear it. Screenshots go to test-artifacts/."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Server

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")  # the serve extra

from mnistlab.predict import TorchModel, open_image, read  # noqa: E402
from mnistlab.serve import create_app  # noqa: E402

CHROMIUM = os.environ.get("MNISTLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (apt-get install chromium)")
ARTIFACTS = ROOT / "test-artifacts"
SCALE = 10  # canvas pixels per MNIST pixel: the page's pad is 280x280
# The page's answers come from the server in this process; on 2 cores shared with the other tests
# (a training subprocess, torchrun) an answer once took over the 5 s Playwright waits by default.
sync_api.expect.set_options(timeout=20_000)


def strokes(digit: np.ndarray):
    """The digit's ink as horizontal pen strokes, one per run of ink pixels in each row."""
    for row, line in enumerate(digit > 100):
        col = 0
        while col < 28:
            if line[col]:
                end = col
                while end + 1 < 28 and line[end + 1]:
                    end += 1
                yield row, col, end
                col = end + 1
            else:
                col += 1


@pytest.fixture(scope="module")
def page(trained_run):
    server = Server(create_app(TorchModel(trained_run)))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 900, "height": 640})
        page.goto(server.url)
        page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
        yield page
        browser.close()
    server.stop()


def draw(page, digit: np.ndarray):
    box = page.locator("#pad").bounding_box()
    mouse = page.mouse
    for row, start, end in strokes(digit):
        y = box["y"] + (row + 0.5) * SCALE
        mouse.move(box["x"] + (start + 0.5) * SCALE, y)
        mouse.down()
        mouse.move(box["x"] + (end + 0.5) * SCALE, y, steps=2)
        with page.expect_response(lambda r: "/v1/predict" in r.url):
            mouse.up()  # every finished stroke asks the server


def test_drawn_digits_are_read_and_clear_shows_no_digit(page, mnist):
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    for i in (0, 1, 2, 3, 4):  # 7, 2, 1, 0, 4
        label = str(int(mnist.test_labels[i]))
        page.click("#clear")
        expect(page.locator("#prediction")).to_have_text("no digit")
        draw(page, mnist.test_images[i].numpy())
        expect(page.locator("#prediction")).to_have_text(label)
        page.wait_for_timeout(200)  # the bars' width transition
        # the drawn width of each bar, as a fraction of its track
        widths = page.eval_on_selector_all("#bars .fill", "bars => bars.map(b => b.getBoundingClientRect().width"
                                                           " / b.parentNode.getBoundingClientRect().width)")
        assert int(np.argmax(widths)) == int(label) and max(widths) > 0.5
        seen = page.evaluate("Array.from(document.getElementById('preview').getContext('2d')"
                             ".getImageData(0, 0, 28, 28).data).filter((v, k) => k % 4 == 0 && v > 100).length")
        assert 40 < seen < 400  # the 28x28 view shows the digit the model read
        page.screenshot(path=str(ARTIFACTS / f"drawing-page-{label}.png"))
    page.click("#clear")
    expect(page.locator("#prediction")).to_have_text("no digit")
    assert page.locator("#confidence").inner_text() == "Nothing drawn yet."
    page.screenshot(path=str(ARTIFACTS / "drawing-page-cleared.png"))


def test_a_photo_uploaded_on_the_page_is_read_with_boxes(page, mnist, tmp_path, trained_run):
    """Upload mode: a phone-style photo of a written number is read, and a box with its digit is
    drawn over each digit found."""
    from test_locate import photo

    chosen = (40, 41, 42)
    (tmp_path / "number.jpg").write_bytes(photo([mnist.test_images[i].numpy() for i in chosen], height=120))
    expect = sync_api.expect
    page.click("#mode-photo")
    expect(page.locator("#photo-file")).to_be_visible()
    assert page.get_attribute("#photo-file", "capture") == "environment"  # a phone opens its camera
    with page.expect_response(lambda r: "/v1/predict" in r.url):
        page.set_input_files("#photo-file", str(tmp_path / "number.jpg"))
    text = "".join(str(int(mnist.test_labels[i])) for i in chosen)
    expect(page.locator("#prediction")).to_have_text(text)
    labels = page.eval_on_selector_all("#photo-view .box span", "spans => spans.map(s => s.textContent)")
    assert [label.split()[0] for label in labels] == list(text)
    inside = page.evaluate("""() => { const v = document.getElementById('photo-view').getBoundingClientRect();
        return Array.from(document.querySelectorAll('#photo-view .box')).every(b => {
            const r = b.getBoundingClientRect();
            return r.left >= v.left && r.right <= v.right + 1 && r.top >= v.top && r.bottom <= v.bottom + 1; }); }""")
    assert inside
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "drawing-page-photo.png"))
    page.click("#clear")
    expect(page.locator("#prediction")).to_have_text("no digit")

    # A phone's 12-megapixel photo is sent as a JPEG 2,048 pixels long, and its boxes still sit on the
    # digits: where `mnistlab predict` finds the first in the photo itself, as a part of its width (the
    # tests' model, one short epoch, may read the smaller copy less surely).
    big = photo([mnist.test_images[i].numpy() for i in chosen], height=400, size=(4000, 3000))
    (tmp_path / "big.jpg").write_bytes(big)
    x_file = read(TorchModel(trained_run), open_image(big, size=800))["digits"][0]["box"][0] / 4000
    with page.expect_response(lambda r: "/v1/predict" in r.url) as response:
        page.set_input_files("#photo-file", str(tmp_path / "big.jpg"))
    assert response.value.request.headers["content-type"] == "image/jpeg"
    x_sent = response.value.json()["digits"][0]["box"][0] / 2048  # in the pixels of the photo the server got
    expect(page.locator("#photo-view .box").first).to_be_visible()
    x_page = page.evaluate("""() => { const v = document.querySelector('#photo-view img').getBoundingClientRect();
        const b = document.querySelector('#photo-view .box').getBoundingClientRect();
        return (b.left - v.left) / v.width; }""")
    assert abs(x_sent - x_file) < 0.01 and abs(x_page - x_file) < 0.01, (x_file, x_sent, x_page)

    # A file the browser cannot show (here, no image at all) is not sent; the page says so.
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    page.set_input_files("#photo-file", str(tmp_path / "broken.jpg"))
    expect(page.locator("#status")).to_have_text("This browser cannot show that file; try a JPEG.")
    page.click("#mode-draw")
