"""``translate serve``: a translator behind an HTTP API and a web page.

    translate serve checkpoints/facades            # http://127.0.0.1:8000/
    curl --data-binary @labels.png 127.0.0.1:8000/v1/translate -o photo.png

The web stack (FastAPI, uvicorn, python-multipart, prometheus_client) is the optional extra
``translate-images[serve]``; this module imports it only when a server is built, so the rest of
the toolkit works without it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from typing import Optional

from ..errors import UserError
from ..runtime import AUTO, PRECISION_CHOICES
from ..runtimes import list_backends
from ..storage import parse_storage_options
from ..translator import Translator

TOKEN_ENV = "TRANSLATE_SERVE_TOKEN"
_EXTRA = ("fastapi", "uvicorn", "multipart", "prometheus_client")


class ServeSetupError(UserError):
    """The server cannot start: a missing extra, an unsafe bind address, a bad limit."""


def require_extra() -> None:
    """Raise :class:`ServeSetupError` naming the missing packages of the ``serve`` extra."""
    missing = [m for m in _EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        names = {"multipart": "python-multipart"}
        raise ServeSetupError(
            "translate serve needs the optional web packages, missing here: "
            + ", ".join(names.get(m, m) for m in missing)
            + '; install them with: pip install "translate-images[serve]"')


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ServeSetupError(
            f"--host {host} accepts connections from other machines; give a token with --token or "
            f"the environment variable {TOKEN_ENV} (clients then send 'Authorization: Bearer TOKEN'), "
            "or bind to 127.0.0.1")


def build_app(checkpoint, device=None, precision: Optional[str] = None, backend: str = "torch", storage_options=None,
              **options):
    """Load ``checkpoint`` (a path or URL; its generators run with ``backend``, see
    :mod:`translate.runtimes`) and return the app serving it (``options``: :class:`ServeOptions` fields)."""
    require_extra()
    from .app import ServeOptions, create_app  # the web packages: an optional extra

    for name in ("max_batch", "max_queue", "max_pixels", "max_bytes", "workers"):
        if name in options and options[name] is not None and options[name] < 1:
            raise ServeSetupError(f"--{name.replace('_', '-')} must be at least 1, got {options[name]}")
    if options.get("max_wait_ms") is not None and options["max_wait_ms"] < 0:
        raise ServeSetupError(f"--max-wait-ms must be 0 or more, got {options['max_wait_ms']}")
    translator = Translator.load(checkpoint, device=device, precision=precision, backend=backend,
                                 storage_options=storage_options)
    opts = ServeOptions(**{k: v for k, v in options.items() if v is not None})
    return create_app(translator, opts)


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, device=None, precision: Optional[str] = None,
          backend: str = "torch", token: Optional[str] = None, log_level: str = "info", graceful_timeout_s: int = 30,
          storage_options=None, **options) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests are answered before it exits."""
    require_extra()
    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    app = build_app(checkpoint, device=device, precision=precision, backend=backend, token=token,
                    storage_options=storage_options, **options)
    import uvicorn

    # uvicorn stops accepting on SIGTERM, waits for open requests (up to the timeout), then runs
    # the app's shutdown, which drains the batcher.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=graceful_timeout_s)
    uvicorn.Server(config).run()


def add_serve_parser(sub) -> None:
    """The ``translate serve`` subcommand."""
    p = sub.add_parser(
        "serve", help="serve a translator over HTTP (API + web page)",
        description="Serve a translator: POST /v1/translate, GET /v1/info, /healthz, /metrics, a web page "
                    "at / and the API schema at /docs. Needs the extra: pip install \"translate-images[serve]\".")
    p.add_argument("checkpoint", help="a run folder or its translator/ folder (a path or an s3:// gs:// az:// URL)")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="fsspec option for a URL checkpoint (repeatable); credentials also come from the environment")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--precision", default=AUTO, choices=PRECISION_CHOICES,
                   help="inference precision (default auto: bf16 where the device runs it natively, else fp32)")
    p.add_argument("--backend", default="torch", choices=list_backends(),
                   help="runtime for the generator (as translate convert --backend; default torch)")
    p.add_argument("--max-batch", type=int, default=8, help="most same-size images per network call (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others of its size (default 10)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="most requests waiting for the network; more get 503 (default 64)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096,
                   help="refuse images with more pixels, read from the header (default 4096*4096)")
    p.add_argument("--max-bytes", type=int, default=32 * 1024 * 1024,
                   help="refuse request bodies larger than this (default 32 MiB)")
    p.add_argument("--workers", type=int, default=2, help="decode/encode threads (default 2)")
    p.add_argument("--token", default=None,
                   help=f"bearer token required on every route but /healthz (or env {TOKEN_ENV})")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log detail (default info: one line per request)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args, argv) -> int:
    serve(args.checkpoint, host=args.host, port=args.port, device=args.device, precision=args.precision,
          backend=args.backend, token=args.token, log_level=args.log_level, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, max_pixels=args.max_pixels, max_bytes=args.max_bytes,
          workers=args.workers, storage_options=parse_storage_options(args.storage_option))
    return 0
