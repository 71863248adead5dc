"""`mnistlab serve`: an HTTP API and a drawing page for a trained model, on FastAPI and uvicorn.

    POST /v1/predict        one image: PNG, JPEG, WebP, AVIF, HEIC, BMP or TIFF (raw body or multipart), or JSON with a base64
                            image {"image": "..."} or MNIST-format pixels {"pixels": 28x28 or 784 values}
    POST /v1/predict/batch  many: multipart with several files, JSON {"images": [...]} or {"pixels": [...]}
    GET  /v1/model          the checkpoint's description (with no paths of this machine)
    GET  /health, /metrics  liveness; Prometheus counters and latency histogram
    GET  /openapi.json      the OpenAPI description (and /docs, its Swagger UI page, with docs=True)
    GET  /                  the drawing page

Images are read by predict.read, exactly as `mnistlab predict` reads them (every digit found, left
to right, or "no_digit", or "unsure"); pixel arrays are taken as one digit already in MNIST's
convention (0-255, white ink on black). Bad input is a 4xx with a
one-line {"detail": "..."}: 408 body too slow, 413 too large, 415 wrong content type, 422 anything
malformed. The event loop reads requests and writes answers; decoding, preprocessing and inference
run in a small thread pool, so /health answers while a large batch is being worked on. Only one raw
image of at most 300x300 pixels (a drawing from the page) is read on the event loop (SMALL_IMAGE).
"""

import base64
import binascii
import io
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .errors import MnistlabError
from . import locate
from .predict import MIN_CONTRAST, draft, open_image, ranked, read, summarise

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/avif", "image/heic", "image/heif", "image/bmp",
               "image/tiff")


@dataclass(frozen=True)
class Limits:
    max_body: int = 8 << 20  # bytes in one request
    max_pixels: int = 4096 * 4096  # per image, to decode (a JPEG's reduced size), read from its header
    max_batch: int = 256  # images in one request
    min_confidence: float = 0.9  # a digit read with a lower probability makes the answer "unsure"
    # Pixels to decode in one request, summed over its images from their headers before any is decoded: this
    # bounds the work one request can ask for (two noisy photos of max_pixels: 3-4 s on 2 busy cores).
    max_total_pixels: int = 2 * 4096 * 4096
    body_timeout: float = 30.0  # seconds for a request's whole body to arrive once its headers have


# Values in a JSON body: a full batch of 28x28 pixel arrays has max_batch * 784 numbers, so a body
# with many more commas is refused before it is parsed (parsing holds the GIL for its whole length).
JSON_VALUES_PER_IMAGE = 800
# What turning a parsed JSON value into a float array can raise: ragged or non-numeric arrays
# (ValueError, TypeError), integers beyond float64 (OverflowError), absurd nesting (RecursionError).
CONVERSION_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


class BadInput(Exception):
    def __init__(self, status: int, detail: str):
        detail = one_line(detail)
        super().__init__(detail)
        self.status, self.detail = status, detail


def one_line(text: str, limit: int = 300) -> str:
    """A message fit for a client: its first line, without object reprs (`<_io.BytesIO object at
    0x7f...>`, as PIL puts in its messages), at most `limit` characters."""
    text = re.sub(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>", "", str(text).strip().split("\n")[0])
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- Reading a request into preprocessed digits ---------------------------------------------------


DRAIN = 4  # a body up to this many times the limit is read and dropped before the 413 is sent


async def _drain(request: Request, limits: Limits):
    """Read and drop the rest of a body that is over the limit (up to DRAIN times it, within the body
    timeout), so that a client still sending it gets the 413 rather than a reset connection."""
    with anyio.move_on_after(limits.body_timeout):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > DRAIN * limits.max_body:
                return


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limits.max_body` bytes, and
    with 408 when it has not arrived within `limits.body_timeout` seconds (uvicorn's own timeout
    covers only idle connections, not a body that trickles in)."""
    limit = limits.max_body
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN * limit:
            await _drain(request, limits)
        raise BadInput(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    with anyio.move_on_after(limits.body_timeout) as deadline:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await _drain(request, limits)
                raise BadInput(413, f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
    if deadline.cancelled_caught:
        raise BadInput(408, f"request body did not arrive within {limits.body_timeout:g} s")
    return b"".join(chunks)


def check_pixels(blobs: list[bytes], limits: Limits):
    """Refuse a request whose images add up to more than max_total_pixels to decode (a large JPEG: at the
    reduced size it is decoded at, see predict.draft), from their headers alone. An image whose header
    cannot be read counts as 0 here; decoding it then says what is wrong."""
    total = 0
    for blob in blobs:
        try:
            with Image.open(io.BytesIO(blob)) as image:
                width, height = draft(image, locate.WORK_SIZE).size
                total += width * height
        except Exception:  # noqa: BLE001 - any header PIL cannot read is reported by open_image
            continue
    if total > limits.max_total_pixels:
        raise BadInput(413, f"images of {total:,} pixels in all; the limit per request is "
                            f"{limits.max_total_pixels:,}")


def from_image(blob: bytes, limits: Limits) -> Image.Image:
    """Image bytes -> the decoded image (a large JPEG decoded straight at the size it is read at)."""
    try:
        return open_image(blob, limits.max_pixels, size=locate.WORK_SIZE)
    except MnistlabError as e:
        raise BadInput(422, str(e)) from None


def from_images(blobs: list[bytes], limits: Limits) -> list[Image.Image]:
    check_pixels(blobs, limits)
    return [from_image(blob, limits) for blob in blobs]


def from_base64(text) -> bytes:
    if not isinstance(text, str):
        raise BadInput(422, "an image must be a base64 string")
    if text.startswith("data:"):  # a data URL, as canvas.toDataURL() makes
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(422, "image is not valid base64") from None


def from_pixels(value) -> np.ndarray | None:
    """28x28 or 784 numbers in 0-255 -> a (28, 28) uint8 digit, or None when it is blank."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except CONVERSION_ERRORS:
        raise BadInput(422, "pixels must be a 28x28 array (or 784 values) of numbers from 0 to 255") from None
    if a.shape not in ((28, 28), (784,)):
        raise BadInput(422, f"pixels must be 28x28 or 784 values, got shape {list(a.shape)}")
    return from_pixel_batch(a[None])[0]


def from_pixel_batch(a: np.ndarray) -> list[np.ndarray | None]:
    """from_pixels for an (N, 28, 28) or (N, 784) array in one go."""
    if a.ndim not in (2, 3) or a.shape[1:] not in ((28, 28), (784,)):
        raise BadInput(422, "pixels must be a list of 28x28 arrays (or of 784 values)")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
        raise BadInput(422, "pixel values must be between 0 and 255")
    digits = a.reshape(-1, 28, 28).round().astype(np.uint8)
    return [None if d.max() < MIN_CONTRAST else d for d in digits]


async def read_request(request: Request, limits: Limits, batch: bool):
    """Read the request on the event loop; returns a function that turns it into preprocessed digits
    (None for a blank one), whatever form they came in, and whether it is small enough to run on
    the event loop (see small_image) rather than in the thread pool."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (*IMAGE_TYPES, "multipart/form-data", "application/json"):
        raise BadInput(415, f"unsupported content type {ctype or 'none'!r}; send {', '.join(IMAGE_TYPES)}, "
                            "multipart/form-data or application/json")
    body = await read_body(request, limits)
    if ctype in IMAGE_TYPES:
        return (lambda: from_images([body], limits)), small_image(body)
    if ctype == "multipart/form-data":
        blobs = await _files(request, body, limits)
        _check_count(len(blobs), limits, batch)
        return (lambda: from_images(blobs, limits)), False
    values = body.count(b",") + 1
    if values > limits.max_batch * JSON_VALUES_PER_IMAGE:
        raise BadInput(413, f"JSON body of {values:,} values; the limit is {limits.max_batch} images of 784 values")
    return (lambda: _from_json(_parse_json(body), limits, batch)), False


# Pixels on each side of an image read on the event loop: the drawing page's canvas (280x280) takes
# a millisecond or two, less than handing it to a thread and back; at worst (noise made to look like
# ink) some tens of milliseconds, which /health then waits.
SMALL_IMAGE = 300


def small_image(blob: bytes) -> bool:
    """Whether a raw image body is a drawing-sized image, from its header."""
    try:
        with Image.open(io.BytesIO(blob)) as image:
            return max(image.size) <= SMALL_IMAGE
    except Exception:  # noqa: BLE001 - decoding it in the pool then says what is wrong
        return False


def _parse_json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):  # ints of over 4,300 digits are a ValueError too
        raise BadInput(422, "malformed JSON") from None
    except RecursionError:
        raise BadInput(422, "JSON nested too deeply") from None


def _check_count(n: int, limits: Limits, batch: bool):
    """Before anything is decoded: one image for /v1/predict, 1 to max_batch for the batch form."""
    if n == 0:
        raise BadInput(422, "no image in the request")
    if not batch and n > 1:
        raise BadInput(422, f"{n} images sent to /v1/predict; use /v1/predict/batch for several")
    if n > limits.max_batch:
        raise BadInput(413, f"{n} images in one request; the limit is {limits.max_batch}")


async def _files(request: Request, body: bytes, limits: Limits) -> list[bytes]:
    async def stream():
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=limits.max_batch + 1,
                             max_part_size=limits.max_body)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise BadInput(422, f"malformed multipart body ({e.message})") from None
    return [await v.read() for _, v in form.multi_items() if isinstance(v, UploadFile)]


def _from_json(doc, limits: Limits, batch: bool) -> list[np.ndarray | None]:
    keys = ("images", "pixels") if batch else ("image", "pixels")
    if not isinstance(doc, dict) or sum(k in doc for k in keys) != 1:
        raise BadInput(422, f"JSON must be an object with one of the keys {' or '.join(map(repr, keys))}")
    if not batch:
        return from_images([from_base64(doc["image"])], limits) if "image" in doc else [from_pixels(doc["pixels"])]
    items = doc.get("images", doc.get("pixels"))
    if not isinstance(items, list):
        raise BadInput(422, "expected a list of images")
    _check_count(len(items), limits, batch)
    if "images" in doc:
        return from_images([from_base64(i) for i in items], limits)
    try:  # all at once when they are all well-formed, else one by one to name the problem
        return list(from_pixel_batch(np.asarray(items, dtype=np.float64)))
    except (BadInput, *CONVERSION_ERRORS):
        return [from_pixels(i) for i in items]


# --- Answers ----------------------------------------------------------------------------------------


def answers(model, items: list, limits: Limits, with_input: bool, single: bool = False) -> list[dict]:
    """One answer per item: a photo or drawing (a decoded image, read as `mnistlab predict` reads it)
    or a 28x28 digit already in MNIST's convention (None when blank). An answer is predict.read's
    reading ("text", "status", "confidence", "digits"), and, for a reading of one digit, that digit's
    "top" classes and every class's "probabilities"; "blank" and "low_confidence" say "no_digit" and
    "unsure" again. With `with_input`, "inputs": the 28x28 images the model read."""
    classes = model.meta["classes"]
    pixels = [d for d in items if isinstance(d, np.ndarray)]
    probs = iter(model.probabilities(np.stack(pixels)) if pixels else [])
    out = []
    for item in items:
        if isinstance(item, np.ndarray):  # MNIST-format pixels: the whole array is one digit
            p = next(probs)
            top = ranked(p, classes, 3)
            found = [{"digit": top[0]["class"], "confidence": top[0]["probability"], "box": [0, 0, 28, 28],
                      "top": top}]
            reading, inputs, one = summarise(found, limits.min_confidence), [item], p
        elif item is None:  # blank pixels
            reading, inputs, one = summarise([]), [], None
        else:
            seen = {}
            reading = read(model, item, single, limits.min_confidence, debug=seen)
            inputs = seen["inputs"]
            one = seen["probabilities"][0] if len(reading["digits"]) == 1 else None
        answer = reading | {"blank": reading["status"] == "no_digit", "low_confidence": reading["status"] == "unsure",
                            "digit": None, "top": [], "probabilities": None}
        if one is not None:
            answer |= {"digit": reading["digits"][0]["digit"], "top": reading["digits"][0]["top"],
                       "probabilities": [round(float(v), 6) for v in one]}
        if with_input:
            answer["inputs"] = [d.tolist() for d in inputs]
        out.append(answer)
    return out


# --- Prometheus metrics, as plain ASGI middleware (no per-request task or thread) -----------------


class Metrics:
    PATHS = ("/", "/health", "/metrics", "/v1/model", "/v1/predict", "/v1/predict/batch")

    def __init__(self, app, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter("mnistlab_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=registry)
        self.latency = Histogram("mnistlab_request_seconds", "Time to answer a request", ["path"], registry=registry,
                                 buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope["path"] if scope["path"] in self.PATHS else "other"
            self.requests.labels(path, str(status)).inc()
            self.latency.labels(path).observe(time.perf_counter() - start)


# --- The application --------------------------------------------------------------------------------

_BODY_DOC = {"requestBody": {"required": True, "content": {
    **{ctype: {"schema": {"type": "string", "format": "binary"}} for ctype in IMAGE_TYPES},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "description": "base64 PNG, JPEG, WebP, AVIF, HEIC, BMP or TIFF (a data: URL is fine)"},
        "pixels": {"type": "array", "description": "28x28 (or 784) values 0-255, white ink on black"}}}},
}}}


def without_paths(value):
    """`value` (a checkpoint's description) with every absolute path of this machine cut to its last
    part: a Keras import's source file, a training config's data and run folders, and any path inside
    a longer string. The checkpoint keeps them; the API does not show them."""
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_paths(v) for v in value]
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda m: m.group(1) + re.split(r"[/\\]", m.group(2).rstrip("/\\"))[-1], value)
    return value


# An absolute path: /a/b, ~/a, C:\a or C:/a, after a start or a separator; not a MIME type
# (image/png), a relative path (runs/x) or a URL's //host.
_ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(=,:;\[])((?:/(?!/)|~/|[A-Za-z]:[\\/])[^\s'\"),;\]]*)")


def create_app(model, limits: Limits = Limits(), docs: bool = False, threads: int | None = None) -> FastAPI:
    """The FastAPI application serving `model` (a predict.TorchModel or export.OnnxModel). `docs`: also
    serve the Swagger UI page at /docs (its scripts come from a CDN). `threads`: requests worked on at
    once (default: one per core)."""
    meta = model.meta
    name = meta["model"]["name"]
    public = {"backend": model.backend, "limits": asdict(limits), **without_paths(meta)}
    app = FastAPI(title="mnistlab", version=meta.get("versions", {}).get("mnistlab", ""),
                  description=f"Handwritten-digit classifier: {name} ({model.backend}).",
                  docs_url="/docs" if docs else None, redoc_url=None)
    registry = CollectorRegistry()
    app.add_middleware(Metrics, registry=registry)
    page = resources.files("mnistlab").joinpath("static/index.html").read_text()
    pool = anyio.CapacityLimiter(threads or os.cpu_count() or 1)

    async def work(request: Request, batch: bool, with_input: bool, single: bool) -> list[dict]:
        """Read the request here, on the event loop; decode, find the digits and classify in the pool,
        or here for one drawing-sized image."""
        items, small = await read_request(request, limits, batch)

        def job():
            return answers(model, items(), limits, with_input, single)

        return job() if small else await anyio.to_thread.run_sync(job, limiter=pool)

    @app.exception_handler(BadInput)
    async def bad_input(request, e: BadInput):
        # 408 and 413 may leave part of the body unread: close the connection rather than parse the rest.
        headers = {"Connection": "close"} if e.status in (408, 413) else None
        return JSONResponse({"detail": e.detail}, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request, e: RequestValidationError):
        # FastAPI's own answer is a list of dicts that echoes the input; one line without it instead.
        first = e.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"detail": one_line(f"{where}: {first.get('msg', 'invalid')}")}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request, e):
        # Not an error of ours: nobody reads this answer, and the metrics count it as nginx's 499.
        return Response(status_code=499)

    @app.post("/v1/predict", openapi_extra=_BODY_DOC, summary="Read the digits in one image")
    async def predict(request: Request, input: bool = Query(False, description="also return the 28x28 inputs"),
                      single: bool = Query(False, description="the image holds one digit: read the largest mark")):
        start = time.perf_counter()
        (answer,) = await work(request, False, input, single)
        # A JSONResponse straight away: FastAPI's encoder would walk the answer again for nothing.
        return JSONResponse({"model": name, **answer, "ms": round((time.perf_counter() - start) * 1000, 3)})

    @app.post("/v1/predict/batch", openapi_extra=_BODY_DOC, summary="Read many images in one request")
    async def predict_batch(request: Request, input: bool = Query(False), single: bool = Query(False)):
        start = time.perf_counter()
        results = await work(request, True, input, single)
        return JSONResponse({"model": name, "results": results, "ms": round((time.perf_counter() - start) * 1000, 3)})

    @app.get("/v1/model", summary="The model's description")
    async def model_info():
        return public

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name}

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def drawing_page():
        return HTMLResponse(page)

    return app


def serve(source, backend: str = "auto", host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          workers: int | None = None, threads: int | None = None, access_log: bool = False, docs: bool = False):
    """Run the API with uvicorn until interrupted: the model of `source` (see export.open_model) in
    each of `workers` processes, which share the port. What is not given is chosen for this machine
    (see plan), and said in one line at start-up."""
    import uvicorn

    from .export import open_model

    backend, source, workers, threads, why = plan(source, backend, workers, threads)
    model = open_model(source, backend, threads)  # here too, so that a bad model fails before a worker starts
    print(f"serving {model.meta['model']['name']} on {why}", flush=True)
    if workers == 1:
        app, factory = create_app(model, limits, docs, threads), False
    else:  # each worker process builds its own app from these settings
        os.environ[_SETTINGS] = json.dumps(dict(source=str(source), backend=backend, threads=threads,
                                                 limits=asdict(limits), docs=docs))
        app, factory = f"{__name__}:_app_from_environment", True
    uvicorn.run(app, factory=factory, host=host, port=port, workers=workers, access_log=access_log, log_level="info")


def plan(source, backend: str = "auto", workers: int | None = None, threads: int | None = None):
    """The backend, model file, worker processes and threads per worker to serve `source` with, and a
    line saying what was chosen and why. Backend "auto" is export.choose_backend's choice; workers
    default to one per core this process may run on (os.sched_getaffinity); threads to 1 per
    worker when there are several (a worker per core, each single-threaded, works on as many
    requests at once as the cores allow, without threads contending for them), else one per core."""
    from .export import choose_backend, onnx_for

    cores = len(os.sched_getaffinity(0))
    if backend == "auto":
        backend, backend_why = choose_backend(source)
        backend_why = f"{backend} (auto: {backend_why})"
        if backend == "onnxruntime" and Path(source).suffix != ".onnx":
            source = onnx_for(source)
    else:
        backend_why = backend
    workers_why = f"{workers} worker{'s' * (workers > 1)}" if workers else \
        f"{cores} worker{'s' * (cores > 1)} (auto: one per core, {cores} available)"
    workers = workers or cores
    threads = threads or (1 if workers > 1 else None)
    threads_why = f"{threads} thread{'s' * (threads > 1)} each" if threads else f"up to {cores} threads"
    return backend, source, workers, threads, f"{backend_why}, {workers_why}, {threads_why}"


_SETTINGS = "MNISTLAB_SERVE_SETTINGS"


def _app_from_environment() -> FastAPI:
    from .export import open_model

    settings = json.loads(os.environ[_SETTINGS])
    model = open_model(settings["source"], settings["backend"], settings["threads"])
    return create_app(model, Limits(**settings["limits"]), settings["docs"], settings["threads"])
