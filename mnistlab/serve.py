"""`mnistlab serve`: an HTTP API and a drawing page for a trained model, on FastAPI and uvicorn.

    POST /v1/predict        one image: PNG or JPEG (raw body or multipart), or JSON with a base64
                            image {"image": "..."} or MNIST-format pixels {"pixels": 28x28 or 784 values}
    POST /v1/predict/batch  many: multipart with several files, JSON {"images": [...]} or {"pixels": [...]}
    GET  /v1/model          the checkpoint's description
    GET  /health, /metrics  liveness; Prometheus counters and latency histogram
    GET  /docs              the OpenAPI documentation
    GET  /                  the drawing page

Images are brought to MNIST's convention by predict.to_mnist, exactly as `mnistlab predict` does;
pixel arrays are taken as already in it (0-255, white ink on black). Bad input is a 4xx with
{"detail": "..."}: 413 too large, 415 wrong content type, 422 anything malformed.
"""

import base64
import binascii
import json
import os
import time
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import MnistlabError
from .predict import MIN_CONTRAST, open_image, ranked, to_mnist

IMAGE_TYPES = ("image/png", "image/jpeg")


@dataclass(frozen=True)
class Limits:
    max_body: int = 8 << 20  # bytes in one request
    max_pixels: int = 4096 * 4096  # per image, read from its header before it is decoded
    max_batch: int = 256  # images in one request
    min_confidence: float = 0.5  # a top probability below this is flagged low_confidence


class BadInput(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


# --- Reading a request into preprocessed digits ---------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadInput(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def from_image(blob: bytes, limits: Limits) -> np.ndarray | None:
    """PNG/JPEG bytes -> a (28, 28) uint8 digit in MNIST's convention, or None when there is no ink."""
    try:
        return to_mnist(open_image(blob, limits.max_pixels))
    except MnistlabError as e:
        raise BadInput(422, str(e)) from None


def from_base64(text, limits: Limits) -> np.ndarray | None:
    if not isinstance(text, str):
        raise BadInput(422, "an image must be a base64 string")
    if text.startswith("data:"):  # a data URL, as canvas.toDataURL() makes
        text = text.partition(",")[2]
    try:
        return from_image(base64.b64decode(text, validate=True), limits)
    except (binascii.Error, ValueError):
        raise BadInput(422, "image is not valid base64") from None


def from_pixels(value) -> np.ndarray | None:
    """28x28 or 784 numbers in 0-255 -> a (28, 28) uint8 digit, or None when it is blank."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadInput(422, "pixels must be a 28x28 array (or 784 values) of numbers") from None
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


async def read_digits(request: Request, limits: Limits, batch: bool) -> list[np.ndarray | None]:
    """The request's images as preprocessed digits (None for a blank one), whatever form they came in."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (*IMAGE_TYPES, "multipart/form-data", "application/json"):
        raise BadInput(415, f"unsupported content type {ctype or 'none'!r}; send image/png, image/jpeg, "
                            "multipart/form-data or application/json")
    body = await read_body(request, limits.max_body)
    if ctype in IMAGE_TYPES:
        return [from_image(body, limits)]
    if ctype == "multipart/form-data":
        blobs = await _files(request, body, limits)
        _check_count(len(blobs), limits, batch)
        return [from_image(blob, limits) for blob in blobs]
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadInput(422, "malformed JSON") from None
    return _from_json(doc, limits, batch)


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
        return [from_base64(doc["image"], limits) if "image" in doc else from_pixels(doc["pixels"])]
    items = doc.get("images", doc.get("pixels"))
    if not isinstance(items, list):
        raise BadInput(422, "expected a list of images")
    _check_count(len(items), limits, batch)
    if "images" in doc:
        return [from_base64(i, limits) for i in items]
    try:  # all at once when they are all well-formed, else one by one to name the problem
        return list(from_pixel_batch(np.asarray(items, dtype=np.float64)))
    except (BadInput, ValueError, TypeError):
        return [from_pixels(i) for i in items]


# --- Answers ----------------------------------------------------------------------------------------


def answers(model, digits: list[np.ndarray | None], limits: Limits, with_input: bool) -> list[dict]:
    """One answer per digit: the predicted class and the top three, every class's probability, and
    whether it is blank or low in confidence; with `with_input`, the 28x28 image the model saw."""
    classes = model.meta["classes"]
    readable = [d for d in digits if d is not None]
    probs = iter(model.probabilities(np.stack(readable)) if readable else [])
    out = []
    for digit in digits:
        if digit is None:
            out.append(dict(digit=None, blank=True, low_confidence=False, top=[], probabilities=None))
            continue
        p = next(probs)
        top = ranked(p, classes, 3)
        low = top[0]["probability"] < limits.min_confidence
        out.append(dict(digit=top[0]["class"], blank=False, low_confidence=low, top=top,
                        probabilities=[round(float(v), 6) for v in p]))
        if with_input:
            out[-1]["input"] = digit.tolist()
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
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "description": "base64 PNG or JPEG (a data: URL is fine)"},
        "pixels": {"type": "array", "description": "28x28 (or 784) values 0-255, white ink on black"}}}},
}}}


def create_app(model, limits: Limits = Limits()) -> FastAPI:
    """The FastAPI application serving `model` (a predict.TorchModel or export.OnnxModel)."""
    meta = model.meta
    name = meta["model"]["name"]
    app = FastAPI(title="mnistlab", version=meta.get("versions", {}).get("mnistlab", ""),
                  description=f"Handwritten-digit classifier: {name} ({model.backend}).")
    registry = CollectorRegistry()
    app.add_middleware(Metrics, registry=registry)
    page = resources.files("mnistlab").joinpath("static/index.html").read_text()

    @app.exception_handler(BadInput)
    async def bad_input(request, e: BadInput):
        return JSONResponse({"detail": e.detail}, status_code=e.status)

    @app.post("/v1/predict", openapi_extra=_BODY_DOC, summary="Read one digit")
    async def predict(request: Request, input: bool = Query(False, description="also return the 28x28 input")):
        start = time.perf_counter()
        (answer,) = answers(model, await read_digits(request, limits, batch=False), limits, input)
        # A JSONResponse straight away: FastAPI's encoder would walk the answer again for nothing.
        return JSONResponse({"model": name, **answer, "ms": round((time.perf_counter() - start) * 1000, 3)})

    @app.post("/v1/predict/batch", openapi_extra=_BODY_DOC, summary="Read many digits in one request")
    async def predict_batch(request: Request, input: bool = Query(False)):
        start = time.perf_counter()
        results = answers(model, await read_digits(request, limits, batch=True), limits, input)
        return JSONResponse({"model": name, "results": results, "ms": round((time.perf_counter() - start) * 1000, 3)})

    @app.get("/v1/model", summary="The model's description")
    async def model_info():
        return {"backend": model.backend, "limits": asdict(limits), **meta}

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


def serve(source, backend: str = "pytorch", host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          workers: int = 1, threads: int | None = None, access_log: bool = False):
    """Run the API with uvicorn until interrupted: the model of `source` (see export.open_model) in
    each of `workers` processes, which share the port."""
    import uvicorn

    from .export import open_model

    model = open_model(source, backend, threads)  # here too, so that a bad model fails before a worker starts
    if workers == 1:
        app, factory = create_app(model, limits), False
    else:  # each worker process builds its own app from these settings
        os.environ[_SETTINGS] = json.dumps(dict(source=str(source), backend=backend, threads=threads,
                                                 limits=asdict(limits)))
        app, factory = f"{__name__}:_app_from_environment", True
    uvicorn.run(app, factory=factory, host=host, port=port, workers=workers, access_log=access_log, log_level="info")


_SETTINGS = "MNISTLAB_SERVE_SETTINGS"


def _app_from_environment() -> FastAPI:
    from .export import open_model

    settings = json.loads(os.environ[_SETTINGS])
    model = open_model(settings["source"], settings["backend"], settings["threads"])
    return create_app(model, Limits(**settings["limits"]))
