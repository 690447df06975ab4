"""The HTTP application: routes, limits, errors, metrics and the web page.

Every request goes through one guard (token check, request metrics); ``POST /v1/translate``
reads the body under a byte limit, recognises the image by its bytes, checks its pixel count
from the header, decodes and prepares it in a thread, waits for the micro-batcher's result and
encodes the answer in a thread, so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import ProcessCollector
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from ..data.io import ImageReadError, ImageTooLargeError, decode_image, encode_image, fit_to_format, probe_image
from ..errors import DirectionError
from ..version import __version__
from .batcher import BatcherClosed, MicroBatcher, QueueFull, batch_sizes_buckets

STATIC = Path(__file__).resolve().parent / "static"
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
TOKEN_COOKIE = "translate_token"
OPEN_PATHS = ("/healthz",)  # answered without the token (load balancers, liveness probes)
ROUTES = ("/", "/v1/translate", "/v1/info", "/healthz", "/metrics", "/docs", "/openapi.json")


@dataclass
class ServeOptions:
    """Limits and batching of a server (the ``translate serve`` options)."""

    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 64
    max_pixels: int = 4096 * 4096
    max_bytes: int = 32 * 1024 * 1024
    token: Optional[str] = None
    workers: int = 2  # decode/encode threads
    retry_after_s: int = 1


class ServeError(Exception):
    """An error answered as JSON ``{"error": code, "detail": message}`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "detail": self.detail}, status_code=self.status,
                            headers=self.headers)


class Metrics:
    """The Prometheus series of one app (its own registry, so apps in one process stay apart)."""

    def __init__(self, max_batch: int, depth):
        self.registry = CollectorRegistry()
        self.requests = Counter("translate_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("translate_request_duration_seconds", "Time from request to answer",
                                 ["route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.batch = Histogram("translate_batch_size", "Images per network call",
                               registry=self.registry, buckets=batch_sizes_buckets(max_batch))
        self.queue = Gauge("translate_queue_depth", "Requests waiting for the network",
                           registry=self.registry)
        self.queue.set_function(depth)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else ("/static" if path.startswith("/static/") else "other")
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


class _Guard:
    """ASGI middleware: the bearer token on every route but /healthz, and request metrics."""

    def __init__(self, app, token: Optional[str], metrics: Metrics):
        self.app, self.token, self.metrics = app, token, metrics

    def _authorized(self, scope) -> bool:
        headers = Headers(scope=scope)
        given = None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        else:
            for part in headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == TOKEN_COOKIE:
                    given = value
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [499]  # stays 499 when no answer could be sent (client gone)

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            path = scope["path"]
            if self.token and path not in OPEN_PATHS and not self._authorized(scope):
                if path == "/" and _query_token(scope) is not None:
                    await self.app(scope, receive, send_status)  # the page route checks ?token=
                else:
                    await ServeError(401, "unauthorized", "this server needs a token: send the header "
                                     "'Authorization: Bearer TOKEN'",
                                     {"WWW-Authenticate": "Bearer"}).response()(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope["path"], status[0], time.perf_counter() - t0)


def _query_token(scope) -> Optional[str]:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class Service:
    """The translator behind the routes: batcher, decode/encode threads, metrics."""

    def __init__(self, translator, options: ServeOptions):
        self.translator, self.options = translator, options
        self.metrics = Metrics(options.max_batch, lambda: self.batcher.depth)
        self.batcher = MicroBatcher(translator.translate_tensor, max_batch=options.max_batch,
                                    max_wait_ms=options.max_wait_ms, max_queue=options.max_queue,
                                    max_batch_pixels=translator.tile_pixels,
                                    on_batch=self.metrics.batch.observe)
        self.pool = ThreadPoolExecutor(max(1, options.workers), thread_name_prefix="translate-codec")
        self.started = time.time()

    def close(self) -> None:
        self.batcher.close(drain=True)
        self.pool.shutdown(wait=True)

    # ------------------------------------------------------------------ steps of a request
    def decode(self, data: bytes, direction: str):
        """Bytes -> (network input, what ``finish`` needs, input format); runs in a thread."""
        probe = probe_image(data)
        if probe.format is None:
            raise ServeError(415, "unsupported_media_type",
                             f"the body is not a JPEG, PNG, WebP, BMP or TIFF image (it starts with "
                             f"{bytes(data[:12])!r}); send the image file's bytes")
        if probe.problem:
            raise ServeError(422, "bad_image", probe.problem)
        max_pixels = self.options.max_pixels
        if probe.size is not None and probe.size[0] * probe.size[1] > max_pixels:
            w, h = probe.size
            raise ServeError(413, "too_many_pixels", f"the image is {w}x{h} = {w * h} pixels, more than "
                             f"this server's limit of {max_pixels} (--max-pixels)")
        try:
            arr = decode_image(data, "upload", max_pixels=max_pixels)
        except ImageTooLargeError as e:
            raise ServeError(413, "too_many_pixels", e.reason) from None
        except ImageReadError as e:
            raise ServeError(422, "bad_image", e.reason) from None
        try:
            prepared = self.translator.prepare(arr, direction)
        except ValueError as e:
            raise ServeError(422, "bad_image", str(e)) from None
        return arr.shape[:2], prepared, probe.format

    def encode(self, y, hw, prepared, fmt: str, quality: Optional[int]) -> bytes:
        _x, alpha, dtype, squeeze = prepared
        arr = self.translator.finish(y, hw, alpha, dtype, squeeze)
        if np.issubdtype(arr.dtype, np.floating):  # float TIFF in: 16-bit samples out
            arr = np.rint(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
        ext = FORMATS[fmt]
        return encode_image(fit_to_format(arr, ext), ext, quality=quality, name="output")

    async def in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def info(self) -> Dict[str, Any]:
        t = self.translator
        doc = {k: v for k, v in t.doc.items() if not k.startswith("_")}
        gens = {d: {"input_nc": g.config.get("input_nc"), "output_nc": g.config.get("output_nc")}
                for d, g in t.generators.items()}
        return {"version": __version__, "method": t.method, "directions": t.directions,
                "generators": gens, "device": str(t.device), "precision": t.precision,
                "precision_choice": t.precision_choice.to_json(),
                "size_multiple": t.size_multiple, "tile_pixels": t.tile_pixels,
                "formats": list(FORMATS), "limits": {k: v for k, v in asdict(self.options).items()
                                                     if k != "token"},
                "translator": doc}


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_bytes``."""
    too_big = ServeError(413, "body_too_large", f"the request body is larger than this server's limit "
                         f"of {max_bytes} bytes (--max-bytes)")
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > max_bytes:
                raise too_big
        except ValueError:
            raise ServeError(400, "bad_request", f"Content-Length {length!r} is not a number") from None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:  # chunked uploads announce no length: count what arrives
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, body: bytes) -> bytes:
    """The uploaded image: the body itself, or the first file of a multipart form."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return body

    async def replay():
        yield body

    try:
        form = await MultiPartParser(request.headers, replay(), max_files=4, max_fields=16,
                                     max_part_size=len(body) + 1).parse()
    except Exception as e:  # noqa: BLE001 - python-multipart raises several kinds
        raise ServeError(400, "bad_multipart", f"cannot parse the multipart form: {e}") from None
    files = [v for _k, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise ServeError(400, "no_file", "the multipart form holds no file; send the image as a "
                         "file field (e.g. curl -F file=@image.png)")
    data = await files[0].read()
    await form.close()
    return data


async def _until_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has already been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(translator, options: Optional[ServeOptions] = None) -> FastAPI:
    """The FastAPI app serving ``translator`` (see docs/serve.md for the API)."""
    options = options or ServeOptions()
    service = Service(translator, options)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        # The server stopped taking connections and answered what was in flight; finish any
        # queued batch, then let the worker and codec threads go.
        await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(title="translate", version=__version__, lifespan=lifespan,
                  description="Image-to-image translation with a trained translator.")
    app.state.service = service

    _add_error_handlers(app)
    _add_translate_route(app, service)
    _add_info_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Guard, token=options.token, metrics=service.metrics)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers as JSON ``{"error": {"code", "message"}}`` (:class:`ServeError`)."""
    @app.exception_handler(ServeError)
    async def _serve_error(_request, exc: ServeError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        return ServeError(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _bug(_request, exc: Exception):
        return ServeError(500, "internal_error", f"{type(exc).__name__}: {exc}").response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return ServeError(422, "bad_parameter", detail).response()


def _add_translate_route(app: FastAPI, service: Service) -> None:
    """``POST /v1/translate``: one image in, its translation out, through the micro-batcher."""
    translator, options = service.translator, service.options

    @app.post("/v1/translate", response_class=Response, summary="Translate one image",
              responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()},
                               "description": "The translated image, same width and height"},
                         413: {"description": "Body over --max-bytes or image over --max-pixels"},
                         415: {"description": "The body is not an image"},
                         422: {"description": "Truncated/corrupt image or a bad parameter"},
                         503: {"description": "Queue full (see Retry-After) or shutting down"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "image/*": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"}}}}}}})
    async def translate_image(
            request: Request,
            direction: Optional[str] = Query(None, description="a2b or b2a; required when the translator has both"),
            format: Optional[str] = Query(None, pattern="^(png|jpg|webp)$",
                                          description="output format (default: the input's when png/jpg/webp, else png)"),
            quality: Optional[int] = Query(None, ge=1, le=100, description="JPEG/WebP quality")):
        """Body: the image file's bytes, or a multipart form with one file. The answer has the
        input's exact width and height; alpha is carried over and 16-bit PNG stays 16-bit."""
        if service.batcher.depth >= options.max_queue:  # refuse before reading the body
            raise _busy(service)
        try:
            direction = translator.pick_direction(direction)
        except DirectionError as e:
            raise ServeError(422, "bad_direction", str(e)) from None
        body = await _read_body(request, options.max_bytes)
        data = await _image_bytes(request, body)
        if not data:
            raise ServeError(422, "empty_body", "the request has no image: send the file's bytes as the body")
        hw, prepared, in_fmt = await service.in_thread(service.decode, data, direction)
        fmt = format or {"png": "png", "jpeg": "jpg", "webp": "webp"}.get(in_fmt, "png")
        try:
            fut = service.batcher.submit(prepared[0], direction)
        except QueueFull:
            raise _busy(service) from None
        except BatcherClosed:
            raise ServeError(503, "shutting_down", "the server is shutting down", {"Retry-After": "5"}) from None
        result = asyncio.wrap_future(fut)
        gone = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not result.done():  # the client went away: drop its request before the network runs it
            result.cancel()
            return Response(status_code=499)
        try:
            y = result.result()
        except Exception as e:  # noqa: BLE001 - e.g. out of memory on this batch; the server goes on
            raise ServeError(500, "translation_failed", f"the network failed on this request: {e}") from None
        out = await service.in_thread(service.encode, y, hw, prepared, fmt, quality)
        return Response(out, media_type=MEDIA_TYPES[fmt])


def _add_info_routes(app: FastAPI, service: Service) -> None:
    """``/v1/info``, ``/healthz``, ``/metrics`` and the web page."""
    options = service.options

    @app.get("/v1/info", summary="What the translator is and this server's limits")
    async def info():
        return service.info()

    @app.get("/healthz", summary="Liveness: 200 while the server takes requests")
    async def healthz():
        if service.batcher.closed:
            raise ServeError(503, "shutting_down", "the server is shutting down")
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics():
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page(token: Optional[str] = None):
        if token is not None and options.token:
            if not hmac.compare_digest(token.encode(), options.token.encode()):
                raise ServeError(401, "unauthorized", "wrong token")
            # Keep the token in a cookie and drop it from the address bar (and the history).
            resp = RedirectResponse("/", status_code=303)
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return resp
        return FileResponse(STATIC / "index.html", media_type="text/html")


def _busy(service: Service) -> ServeError:
    return ServeError(503, "queue_full", f"{service.batcher.depth} requests are waiting, the most this "
                      f"server queues (--max-queue {service.options.max_queue}); retry shortly",
                      {"Retry-After": str(service.options.retry_after_s)})
