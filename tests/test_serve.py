"""The HTTP API over real HTTP: a uvicorn server on a free loopback port, every input form, every
error case, the metrics, and the onnxruntime backend giving PyTorch's answers."""

import base64
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import Server, free_socket
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")  # the serve extra
pytest.importorskip("onnxruntime")  # the onnx extra

from mnistlab.cli import main  # noqa: E402
from mnistlab.export import OnnxModel, export  # noqa: E402
from mnistlab import predict  # noqa: E402
from mnistlab.predict import TorchModel, open_image, read  # noqa: E402
from mnistlab.serve import Limits, answers, create_app, plan  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from serve import canvas  # noqa: E402  (the drawing page's PNG, as bench/serve.py sends it)


@pytest.fixture(scope="module")
def run(tmp_path_factory, trained_run, mnist):
    folder = tmp_path_factory.mktemp("serve") / "run"
    shutil.copytree(trained_run, folder)
    export(folder, "onnx", data=mnist, check_images=200)
    return folder


@pytest.fixture(scope="module")
def api(run):
    server = Server(create_app(TorchModel(run), Limits(max_body=1 << 20, max_batch=8)))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def png(array: np.ndarray, size: int | None = None, invert: bool = False, fmt: str = "PNG") -> bytes:
    image = Image.fromarray(255 - array if invert else array)
    if size:
        image = image.resize((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def expected(run, blob: bytes) -> dict:
    """What `mnistlab predict` reads in the same image: the API must agree."""
    return read(TorchModel(run), open_image(blob, size=800))


# --- Every input form -------------------------------------------------------------------------------


def test_every_single_image_form_reads_real_digits(api, run, mnist):
    for i in range(6):
        digit, label = mnist.test_images[i].numpy(), str(int(mnist.test_labels[i]))
        photo = png(digit, 200, invert=True)  # dark ink on white paper, 200x200: preprocessing matters
        answers_ = [
            api.post("/v1/predict", content=photo, headers={"Content-Type": "image/png"}),
            api.post("/v1/predict", content=png(digit, 200, fmt="JPEG"), headers={"Content-Type": "image/jpeg"}),
            api.post("/v1/predict", files={"file": ("digit.png", photo, "image/png")}),
            api.post("/v1/predict", json={"image": base64.b64encode(photo).decode()}),
            api.post("/v1/predict", json={"image": "data:image/png;base64," + base64.b64encode(photo).decode()}),
            api.post("/v1/predict", json={"pixels": digit.tolist()}),
            api.post("/v1/predict", json={"pixels": digit.reshape(-1).tolist()}),
        ]
        for r in answers_:
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == "cnn-small" and body["blank"] is False and body["ms"] > 0
            assert body["digit"] == body["top"][0]["class"] and len(body["top"]) == 3
            assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-3
        same = expected(run, photo)
        for key in ("text", "status", "confidence", "digits"):
            assert answers_[0].json()[key] == same[key], key
        assert answers_[5].json()["digit"] == label  # the raw test digit, as MNIST has it


def test_input_view_is_the_preprocessed_digit(api, run, mnist):
    photo = png(mnist.test_images[0].numpy(), 280, invert=True)
    body = api.post("/v1/predict?input=true", content=photo, headers={"Content-Type": "image/png"}).json()
    seen = {}
    read(TorchModel(run), open_image(photo), debug=seen)
    assert len(body["inputs"]) == len(seen["inputs"]) == 1
    assert np.array_equal(np.array(body["inputs"][0], np.uint8), seen["inputs"][0])


def test_a_drawing_from_the_page_is_read_as_predict_reads_it(api, run, mnist):
    """The drawing page's canvas PNG: the server's answer is predict.read's, to the last digit."""
    right = 0
    for i in range(8):
        blob = canvas(mnist.test_images[i].numpy())
        body = api.post("/v1/predict?input=true", content=blob, headers={"Content-Type": "image/png"}).json()
        seen = {}
        same = read(TorchModel(run), open_image(blob), debug=seen)
        assert {k: body[k] for k in ("text", "status", "confidence", "digits")} == \
            {k: same[k] for k in ("text", "status", "confidence", "digits")}
        assert [np.array(d, np.uint8).tolist() for d in body["inputs"]] == [d.tolist() for d in seen["inputs"]]
        right += (body["text"] or body["guess"]) == str(int(mnist.test_labels[i]))
    assert right >= 6  # the tests' model is trained for one short epoch


def test_a_number_in_a_photo_is_read_with_boxes(api, run, mnist):
    """The API answers a photo of a written number as `mnistlab predict` does: the text, left to right,
    with each digit's box in the photo's pixels."""
    from test_locate import photo

    digits = [mnist.test_images[i].numpy() for i in (40, 41, 42)]
    blob = photo(digits, height=120)
    body = api.post("/v1/predict", content=blob, headers={"Content-Type": "image/jpeg"}).json()
    same = expected(run, blob)
    assert {k: body[k] for k in ("text", "status", "confidence", "digits")} == \
        {k: same[k] for k in ("text", "status", "confidence", "digits")}
    assert body["status"] == "ok" and body["text"] == "".join(str(int(mnist.test_labels[i])) for i in (40, 41, 42))
    assert body["digit"] is None and body["probabilities"] is None  # several digits: no single one to show


@pytest.mark.parametrize("fmt, ctype", [("HEIF", "image/heic"), ("WEBP", "image/webp"), ("AVIF", "image/avif"),
                                       ("BMP", "image/bmp"), ("TIFF", "image/tiff")])
def test_a_heic_or_webp_photo_is_read_as_predict_reads_it(api, run, mnist, fmt, ctype):
    """An iPhone's HEIC photo (the heic extra), a WebP, an AVIF, a BMP and a TIFF: the same reading as
    `mnistlab predict` gives."""
    from test_locate import photo

    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
        predict._heif_opener()
    buffer = io.BytesIO()
    small = fmt in ("BMP", "TIFF")  # uncompressed: at 1200x900 over this server's 1 MB body limit (a 413)
    image = Image.open(io.BytesIO(photo([mnist.test_images[i].numpy() for i in (40, 41, 42)],
                                        height=240 if small else 120)))
    if small:
        image = image.resize((560, 420), Image.LANCZOS)
    image.save(buffer, fmt, quality=95)
    body = api.post("/v1/predict", content=buffer.getvalue(), headers={"Content-Type": ctype}).json()
    same = expected(run, buffer.getvalue())
    assert {k: body[k] for k in ("text", "status", "digits")} == {k: same[k] for k in ("text", "status", "digits")}
    assert body["status"] == "ok" and body["text"] == "".join(str(int(mnist.test_labels[i])) for i in (40, 41, 42))


def test_a_50_megapixel_phone_jpeg_is_read_at_the_size_it_is_decoded_at(api, run, mnist):
    """The pixel limits are on the pixels decoded: a phone's 50 MP JPEG (decoded at an eighth) is read as
    predict reads it; the same size as a PNG, decoded whole, is refused before it is decoded."""
    page = np.full((6144, 8192), 235, np.uint8)
    page[2000:3600, 3000:4600] = cv2.resize(255 - mnist.test_images[0].numpy(), (1600, 1600),
                                            interpolation=cv2.INTER_CUBIC)
    jpeg = png(page, fmt="JPEG")
    assert len(jpeg) < 1 << 20 and page.size > 2 * 4096 * 4096  # within the body limit, over the pixel limits
    body = api.post("/v1/predict", content=jpeg, headers={"Content-Type": "image/jpeg"}).json()
    same = expected(run, jpeg)
    assert {k: body[k] for k in ("text", "status", "digits")} == {k: same[k] for k in ("text", "status", "digits")}
    assert body["status"] == "ok" and body["digits"][0]["box"][0] >= 3000  # in the file's pixels
    flat = png(np.full((6144, 8192), 235, np.uint8))
    assert api.post("/v1/predict", content=flat, headers={"Content-Type": "image/png"}).status_code == 413


def test_batch_forms(api, mnist):
    digits = [mnist.test_images[i].numpy() for i in range(5)]
    labels = [str(int(mnist.test_labels[i])) for i in range(5)]
    files = [("file", (f"{i}.png", png(d, 100, invert=True), "image/png")) for i, d in enumerate(digits)]
    by_files = api.post("/v1/predict/batch", files=files).json()["results"]
    by_b64 = api.post("/v1/predict/batch", json={"images": [base64.b64encode(png(d)).decode() for d in digits]})
    by_pixels = api.post("/v1/predict/batch", json={"pixels": [d.tolist() for d in digits] + [[[0] * 28] * 28]})
    assert [r["digit"] for r in by_files] == [r["digit"] for r in by_b64.json()["results"]]
    results = by_pixels.json()["results"]
    assert [r["digit"] for r in results[:5]] == labels and results[5]["blank"] is True


def test_blank_input_is_no_digit(api):
    empty = np.zeros((28, 28), np.uint8)
    for r in (api.post("/v1/predict", content=png(empty, 280), headers={"Content-Type": "image/png"}),
              api.post("/v1/predict", content=png(empty, 280, invert=True), headers={"Content-Type": "image/png"}),
              api.post("/v1/predict", json={"pixels": empty.tolist()})):
        assert r.status_code == 200
        assert r.json() | {"ms": 0} == {"model": "cnn-small", "digit": None, "blank": True, "low_confidence": False,
                                        "top": [], "probabilities": None, "ms": 0, "text": None,
                                        "status": "no_digit", "confidence": None, "digits": []}


def test_low_confidence_is_flagged(run, mnist):
    digits = [mnist.test_images[i].numpy() for i in range(3)]
    model = TorchModel(run)
    assert not any(a["low_confidence"] for a in answers(model, digits, Limits(min_confidence=0.0), False))
    assert all(a["low_confidence"] for a in answers(model, digits, Limits(min_confidence=1.0), False))


# --- Errors: always a 4xx with a one-line reason -------------------------------------------------


def bomb() -> bytes:
    """A PNG of 20,000 x 20,000 pixels in under 100 kB: refused from its header, never decoded."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kwargs, status, reason", [
    (dict(content=b"hello", headers={"Content-Type": "text/plain"}), 415, "unsupported content type"),
    (dict(content=b"hello"), 415, "unsupported content type"),
    (dict(content=b'{"pixels": [1, 2', headers={"Content-Type": "application/json"}), 422, "malformed JSON"),
    (dict(json=[1, 2, 3]), 422, "one of the keys"),
    (dict(json={"image": "x", "pixels": [0]}), 422, "one of the keys"),
    (dict(json={"pixels": [[0] * 28] * 27}), 422, "got shape [27, 28]"),
    (dict(json={"pixels": [[0] * 28] * 27 + [[0] * 27]}), 422, "28x28"),  # ragged
    (dict(json={"pixels": [[300] * 28] * 28}), 422, "between 0 and 255"),
    (dict(json={"pixels": [["a"] * 28] * 28}), 422, "28x28"),
    (dict(content=b'{"pixels": [' + b",".join([b"NaN"] * 784) + b"]}", headers={"Content-Type": "application/json"}),
     422, "between 0 and 255"),
    (dict(json={"image": "not base64!"}), 422, "not valid base64"),
    (dict(json={"image": 42}), 422, "base64 string"),
    (dict(content=b"\x89PNG\r\n\x1a\n garbage", headers={"Content-Type": "image/png"}), 422, "cannot decode"),
    (dict(content=b"", headers={"Content-Type": "image/png"}), 422, "cannot decode"),
    (dict(content=b"\0\0\0\x18ftypheic" + b"\0" * 500, headers={"Content-Type": "image/heic"}), 422, "cannot decode"),
    (dict(content=png(np.zeros((28, 28), np.uint8), fmt="GIF"), headers={"Content-Type": "image/png"}), 422,
     "not a PNG, JPEG, WebP, AVIF, HEIC, BMP or TIFF"),
    (dict(content=bomb(), headers={"Content-Type": "image/png"}), 422, "larger than"),
    (dict(content=b"\0" * (2 << 20), headers={"Content-Type": "image/png"}), 413, "over the limit"),
    (dict(files=[("a", ("a.png", b"x", "image/png")), ("b", ("b.png", b"y", "image/png"))]), 422,
     "use /v1/predict/batch"),
    (dict(data={"note": "no file"}, files=[]), 415, "unsupported content type"),  # urlencoded form
    (dict(content=b"--xyz\r\nnonsense", headers={"Content-Type": "multipart/form-data; boundary=xyz"}), 422, ""),
])
def test_bad_input_is_a_4xx_with_a_reason(api, kwargs, status, reason):
    r = api.post("/v1/predict", **kwargs)
    assert r.status_code == status, r.text
    assert_one_line(r.json()["detail"], reason)


def assert_one_line(detail, reason=""):
    """A reason for a person: one line of text, with no Python object reprs or memory addresses."""
    assert isinstance(detail, str) and reason in detail and "\n" not in detail, detail
    assert " at 0x" not in detail and "object at" not in detail and "Traceback" not in detail, detail


HUGE = "9" * 400  # a 400-digit integer: valid JSON, far beyond float64


@pytest.mark.parametrize("path, body, status, reason", [
    ("/v1/predict", "[" * 100_000 + "]" * 100_000, 422, "nested too deeply"),
    ("/v1/predict", '{"pixels": ' + "[" * 100_000 + "]" * 100_000 + "}", 422, "nested too deeply"),
    ("/v1/predict", '{"pixels": [' + ",".join([HUGE] * 784) + "]}", 422, "numbers from 0 to 255"),
    ("/v1/predict", '{"pixels": [' + ",".join(["0"] * 783 + [HUGE]) + "]}", 422, "numbers from 0 to 255"),
    ("/v1/predict/batch", '{"pixels": [[' + ",".join([HUGE] * 784) + "]]}", 422, "numbers from 0 to 255"),
    ("/v1/predict", '{"pixels": ' + "[" * 60 + "1" + "]" * 60 + "}", 422, "pixels"),
    ("/v1/predict", '{"pixels": [' + "9" * 5000 + "]}", 422, "malformed JSON"),  # over Python's int digit limit
    ("/v1/predict", '{"pixels": [1e999]}', 422, "pixels"),
    ("/v1/predict", '{"pixels": {"a": 1}}', 422, "pixels"),
    ("/v1/predict", '{"pixels": [[{"a": 1}]]}', 422, "pixels"),
    ("/v1/predict/batch", '{"pixels": [null, [1, 2]]}', 422, "pixels"),
    ("/v1/predict/batch", '{"images": [null]}', 422, "base64 string"),
    ("/v1/predict/batch", '{"pixels": [' + ",".join(["0"] * 400_000) + "]}", 413, "limit is 8 images"),
    ("/v1/predict", b'{"pixels": "\xff\xfe"}', 422, "malformed JSON"),
], ids=["nested", "nested-pixels", "huge-ints", "one-huge-int", "huge-ints-batch", "nested-60", "5000-digits",
        "1e999", "dict", "dict-in-list", "null-in-batch", "null-image", "too-many-values", "not-utf8"])
def test_malformed_json_is_a_4xx_with_a_reason(api, path, body, status, reason):
    r = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text[:300]
    assert_one_line(r.json()["detail"], reason)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**500, max_value=10**500) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=200)


@given(key=st.sampled_from(["pixels", "image", "images"]), value=JSON_VALUES, batch=st.booleans())
def test_any_json_value_gets_an_answer_or_a_4xx(api, key, value, batch):
    body = json.dumps({key: value}).encode()  # NaN and Infinity included, as Python writes them
    r = api.post("/v1/predict/batch" if batch else "/v1/predict", content=body,
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code != 200:
        assert_one_line(r.json()["detail"])


def test_bad_query_parameters_are_one_line(api, mnist):
    r = api.post("/v1/predict?input=maybe", json={"pixels": mnist.test_images[0].tolist()})
    assert r.status_code == 422
    assert_one_line(r.json()["detail"], "input")
    assert "maybe" not in r.json()["detail"]  # the reason, not an echo of the input


def big_png(digit: np.ndarray, size: int) -> bytes:
    """A digit as a size x size photo with paper noise: slow to decode and preprocess, as a phone photo is."""
    image = np.asarray(Image.fromarray(255 - digit).resize((size, size), Image.BILINEAR), np.float32)
    image += np.random.default_rng(0).normal(0, 8, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def roomy(run):
    """A server with room for large batches (64 MiB bodies, 64 images of 64 megapixels in all)."""
    server = Server(create_app(TorchModel(run), Limits(max_body=64 << 20, max_batch=64, max_total_pixels=64 << 20)))
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    server.stop()


def test_health_answers_while_a_big_batch_is_worked_on(roomy, mnist):
    files = [("file", (f"{i}.png", big_png(mnist.test_images[i].numpy(), 2048), "image/png")) for i in range(12)]
    done = threading.Event()
    result = {}

    def batch():
        result["r"] = roomy.post("/v1/predict/batch", files=files)
        done.set()

    thread = threading.Thread(target=batch)
    thread.start()
    time.sleep(0.3)  # the upload is in, the work has begun
    latencies = []
    with httpx.Client(base_url=str(roomy.base_url), timeout=30) as other:
        while not done.is_set():
            start = time.perf_counter()
            assert other.get("/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    thread.join()
    assert result["r"].status_code == 200 and len(result["r"].json()["results"]) == 12
    assert len(latencies) >= 10, "the batch was too quick to measure anything"
    # A server whose loop the batch blocks answers /health once it is done (seconds later); one that works
    # the batch off the loop answers at once, give or take the other test worker's load on 2 cores.
    assert max(latencies) < 0.5, f"/health took {max(latencies) * 1000:.0f} ms while the server worked"


def test_decoded_pixels_per_request_are_bounded(run, mnist):
    """Each image is within max_pixels, but together they are over max_total_pixels: refused from
    their headers before any is decoded."""
    server = Server(create_app(TorchModel(run), Limits(max_pixels=1000 * 1000, max_total_pixels=2_500_000)))
    photo = big_png(mnist.test_images[0].numpy(), 1000)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ok = client.post("/v1/predict/batch", files=[("file", (f"{i}.png", photo, "image/png")) for i in range(2)])
            assert ok.status_code == 200
            b64 = base64.b64encode(photo).decode()
            for r in (client.post("/v1/predict/batch", files=[("file", (f"{i}.png", photo, "image/png"))
                                                               for i in range(3)]),
                      client.post("/v1/predict/batch", json={"images": [b64] * 3})):
                assert r.status_code == 413, r.text
                assert_one_line(r.json()["detail"], "3,000,000 pixels in all; the limit per request is 2,500,000")
    finally:
        server.stop()


def raw_request(url: str, head: bytes, body_parts, pause: float = 0, timeout: float = 10) -> bytes:
    """Send a request by hand (headers, then body parts with a pause before each) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head)
        try:
            for part in body_parts:
                time.sleep(pause)
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):  # the server answered and closed: read its answer
            pass
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


def test_a_body_that_does_not_arrive_times_out(run):
    server = Server(create_app(TorchModel(run), Limits(body_timeout=0.5)))
    try:
        start = time.perf_counter()
        head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
        answer = raw_request(server.url, head, [b"\x89PNG"])  # then nothing: the server must not wait forever
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 0.5 s" in answer and time.perf_counter() - start < 5
        # A body that trickles in, a byte at a time, is cut off as well.
        answer = raw_request(server.url, head, [b"x"] * 40, pause=0.05)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        server.stop()


def test_a_client_leaving_mid_upload_is_not_an_error(run):
    server = Server(create_app(TorchModel(run)))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port))) as s:
                s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                          b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)
                time.sleep(0.2)  # the server is reading the body when the client goes
        time.sleep(0.3)
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
        server.stop()
    assert 'path="/v1/predict",status="500"' not in metrics
    assert 'mnistlab_requests_total{path="/v1/predict",status="499"} 3.0' in metrics
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]


def test_batch_limits(api):
    pixels = [[[0] * 28] * 28] * 9
    r = api.post("/v1/predict/batch", json={"pixels": pixels})
    assert r.status_code == 413 and "limit is 8" in r.json()["detail"]
    assert api.post("/v1/predict/batch", json={"images": "abc"}).status_code == 422
    assert api.post("/v1/predict/batch", json={"pixels": []}).status_code == 422


def test_random_bodies_never_cause_a_500(api):
    rng = np.random.default_rng(0)
    for ctype in ("image/png", "image/jpeg", "application/json", "multipart/form-data; boundary=b"):
        for _ in range(25):
            body = rng.integers(0, 256, rng.integers(0, 2000), dtype=np.uint8).tobytes()
            r = api.post("/v1/predict", content=body, headers={"Content-Type": ctype})
            assert 400 <= r.status_code < 500, (ctype, r.status_code, r.text)


# --- The rest of the API -----------------------------------------------------------------------------


def test_health_model_docs_and_metrics(api, mnist):
    assert api.get("/health").json() == {"status": "ok", "model": "cnn-small"}
    info = api.get("/v1/model").json()
    assert info["classes"] == [str(d) for d in range(10)] and info["backend"] == "pytorch"
    assert info["model"]["params"] == 34_826 and info["limits"]["max_batch"] == 8
    assert api.get("/docs").status_code == 404 and api.get("/redoc").status_code == 404  # CDN scripts: off
    spec = api.get("/openapi.json").json()
    assert {"image/png", "application/json", "multipart/form-data"} <= set(
        spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"])
    page = api.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text  # no CDN

    api.post("/v1/predict", json={"pixels": mnist.test_images[0].tolist()})
    api.post("/v1/predict", content=b"x", headers={"Content-Type": "text/plain"})
    text = api.get("/metrics").text
    counts = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("mnistlab_requests_total")}
    assert counts['mnistlab_requests_total{path="/v1/predict",status="200"}'] >= 1
    assert counts['mnistlab_requests_total{path="/v1/predict",status="415"}'] >= 1
    assert 'mnistlab_request_seconds_bucket{le="0.01",path="/v1/predict"}' in text


def test_docs_page_on_request(run):
    server = Server(create_app(TorchModel(run), docs=True))
    try:
        assert "swagger" in httpx.get(server.url + "/docs").text.lower()
    finally:
        server.stop()


def test_model_description_shows_no_paths_of_this_machine(run):
    model = TorchModel(run)
    model.meta = {**model.meta, "imported_from": "/home/alice/notebooks/models/seed.h5",
                  "notes": "trained on C:\\Users\\alice\\data and ~/mnist, see /srv/runs/a/report.html",
                  "config": {**model.meta["config"], "out": str(run), "data_dir": "runs/x"}}
    server = Server(create_app(model))
    try:
        info = httpx.get(server.url + "/v1/model").json()
    finally:
        server.stop()
    assert info["imported_from"] == "seed.h5" and info["config"]["out"] == "run"
    assert info["notes"] == "trained on data and mnist, see report.html"
    assert info["config"]["data_dir"] == "runs/x" and info["classes"] == model.meta["classes"]


def test_onnxruntime_backend_serves_the_same_answers(api, run, mnist):
    server = Server(create_app(OnnxModel(run / "model.onnx")))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as onnx_api:
            assert onnx_api.get("/v1/model").json()["backend"] == "onnxruntime"
            pixels = [mnist.test_images[i].tolist() for i in range(20)]
            a = api.post("/v1/predict/batch", json={"pixels": pixels[:8]}).json()["results"]
            b = onnx_api.post("/v1/predict/batch", json={"pixels": pixels[:8]}).json()["results"]
            assert [r["digit"] for r in a] == [r["digit"] for r in b]
            assert np.abs(np.array([r["probabilities"] for r in a]) - [r["probabilities"] for r in b]).max() < 1e-4
    finally:
        server.stop()


# --- The command -------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_command(run, *flags, env=None):
    """`mnistlab serve RUN FLAGS` as a user starts it, once it answers /health: yields its port and
    a list that holds its whole output once the command has stopped."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port), *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, output
    finally:
        proc.terminate()
        output.append(proc.communicate(timeout=20)[0])


def test_serve_command_over_http(run, mnist):
    """The command with two worker processes, each building its app from the settings it is handed."""
    with serve_command(run, "--backend", "onnxruntime", "--workers", "2") as (port, output):
        r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"pixels": mnist.test_images[0].tolist()})
        assert r.json()["digit"] == "7"
    output = "".join(output)
    assert "Uvicorn running on" in output and "Traceback" not in output
    assert output.count("Started server process") == 2  # both workers came up


def test_the_plain_command_chooses_for_the_machine_and_says_so(run, mnist, tmp_path):
    """`mnistlab serve RUN` with no tuning flags: onnxruntime (installed here), a worker per core,
    one thread each, said in one line at start-up; a drawing gets predict.read's reading."""
    fresh = tmp_path / "run"
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("model.onnx"))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with serve_command(fresh, env=env) as (port, output):
        blob = canvas(mnist.test_images[3].numpy())
        body = httpx.post(f"http://127.0.0.1:{port}/v1/predict", content=blob,
                          headers={"Content-Type": "image/png"}).json()
    output = "".join(output)
    same = read(TorchModel(fresh), open_image(blob))
    assert body["text"] == same["text"] == "0"
    assert [d["box"] for d in body["digits"]] == [d["box"] for d in same["digits"]]
    assert abs(body["confidence"] - same["confidence"]) < 1e-4  # onnxruntime's float rounding, not PyTorch's
    cores = len(os.sched_getaffinity(0))
    line = next(line for line in output.splitlines() if line.startswith("serving "))
    assert f"onnxruntime (auto: installed; the checkpoint exported to ONNX in the user cache), {cores} worker" in line
    assert "one per core" in line and ("1 thread each" if cores > 1 else f"up to {cores} threads") in line
    assert output.count("Started server process") == cores and "Traceback" not in output
    assert not (fresh / "model.onnx").exists() and list((tmp_path / "cache" / "mnistlab" / "onnx").glob("*.onnx"))


def test_plan_keeps_explicit_choices(run):
    backend, source, workers, threads, why = plan(run, "pytorch", 3, None)
    assert (backend, source, workers, threads) == ("pytorch", run, 3, 1) and why == "pytorch, 3 workers, 1 thread each"
    assert plan(run, "onnxruntime", 1, 2)[1:] == (run, 1, 2, "onnxruntime, 1 worker, 2 threads each")
    backend, source, workers, threads, why = plan(run)  # model.onnx beside the checkpoint is up to date
    assert (backend, source) == ("onnxruntime", run / "model.onnx") and workers == len(os.sched_getaffinity(0))
    onnx_plan = plan(run / "model.onnx")
    assert onnx_plan[:2] == ("onnxruntime", run / "model.onnx") and "(auto: an ONNX model)" in onnx_plan[4]


def test_serve_options_are_checked(run, capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own one-line error
        main(["serve", str(run), "--port", "70000"])
    assert e.value.code == 2 and "expected a port from 1 to 65535" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", str(run), "--min-confidence", "2"])
    assert e.value.code == 2 and "--min-confidence" in (err := capsys.readouterr().err) and "at most 1" in err


def test_serve_command_refuses_a_bad_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mnistlab", "serve", str(tmp_path / "nothing")],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such run folder" in r.stderr
