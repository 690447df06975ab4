"""translate serve: every route and every error of the HTTP API, the micro-batcher, the process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (for FastAPI's TestClient) is not installed")

from conftest import make_translator, repo_root, write_image_file  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from translate import Translator  # noqa: E402
from translate.data.io import decode_image, encode_image, probe_image  # noqa: E402
from translate.serve import ServeSetupError, check_bind, is_loopback, require_extra  # noqa: E402
from translate.serve.app import ServeOptions, create_app  # noqa: E402
from translate.serve.batcher import BatcherClosed, MicroBatcher, QueueFull  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _img(h=37, w=50, c=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    hi = 65535 if dtype == np.uint16 else 255
    return rng.integers(0, hi + 1, (h, w, c) if c else (h, w), dtype=dtype)


def _png(img) -> bytes:
    return encode_image(img, ".png")


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    folder = make_translator(tmp_path_factory.mktemp("serve") / "p2p")
    return Translator.load(folder, device="cpu")


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory):
    folder = make_translator(tmp_path_factory.mktemp("serve") / "cyc", method="cyclegan")
    return Translator.load(folder, device="cpu")


@pytest.fixture
def client(pix2pix):
    with TestClient(create_app(pix2pix, ServeOptions(max_pixels=200 * 200, max_bytes=200_000))) as c:
        yield c


# ----------------------------------------------------------------------------- translate


def test_raw_body_gives_the_same_image_as_the_translator(client, pix2pix):
    img = _img()
    r = client.post("/v1/translate", content=_png(img))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = decode_image(r.content)
    assert out.shape == (37, 50, 3)  # odd size: padded for the network, cropped back
    np.testing.assert_array_equal(out, pix2pix(img))


def test_multipart_upload_and_output_formats(client):
    img = _img(40, 30)
    r = client.post("/v1/translate", files={"file": ("photo.png", _png(img), "image/png")})
    assert r.status_code == 200 and decode_image(r.content).shape == (40, 30, 3)
    for fmt, media, magic in (("jpg", "image/jpeg", b"\xff\xd8\xff"), ("webp", "image/webp", b"RIFF")):
        r = client.post(f"/v1/translate?format={fmt}&quality=80", content=_png(img))
        assert r.status_code == 200 and r.headers["content-type"] == media
        assert r.content.startswith(magic) and decode_image(r.content).shape == (40, 30, 3)


def test_default_format_follows_the_input(client):
    r = client.post("/v1/translate", content=encode_image(_img(), ".jpg"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = client.post("/v1/translate", content=encode_image(_img(), ".bmp"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_sixteen_bit_alpha_and_gray_follow_convert_rules(client):
    deep = _img(20, 24, 3, np.uint16)
    out = decode_image(client.post("/v1/translate", content=_png(deep)).content)
    assert out.dtype == np.uint16 and out.shape == (20, 24, 3)
    rgba = _img(20, 24, 4)
    out = decode_image(client.post("/v1/translate", content=_png(rgba)).content)
    assert out.shape == (20, 24, 4)
    np.testing.assert_array_equal(out[:, :, 3], rgba[:, :, 3])  # alpha carried over unchanged
    out = decode_image(client.post("/v1/translate?format=jpg", content=_png(rgba)).content)
    assert out.shape == (20, 24, 3)  # JPEG stores no alpha
    gray = _img(20, 24, 0)
    assert decode_image(client.post("/v1/translate", content=_png(gray)).content).shape[:2] == (20, 24)


def test_direction_is_required_for_two_generators(cyclegan):
    with TestClient(create_app(cyclegan)) as c:
        assert c.get("/v1/info").json()["directions"] == ["a2b", "b2a"]
        r = c.post("/v1/translate", content=_png(_img()))
        assert r.status_code == 422 and r.json()["error"] == "bad_direction"
        assert "a2b" in r.json()["detail"]
        r = c.post("/v1/translate?direction=b2a", content=_png(_img()))
        assert r.status_code == 200 and decode_image(r.content).shape == (37, 50, 3)
        r = c.post("/v1/translate?direction=sideways", content=_png(_img()))
        assert r.status_code == 422 and r.json()["error"] == "bad_direction"


# ----------------------------------------------------------------------------- errors


def test_content_is_sniffed_not_the_name_or_header(client):
    r = client.post("/v1/translate", content=b"GIF89a not really" * 10, headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = client.post("/v1/translate", files={"file": ("cat.png", b"%PDF-1.7 ...", "image/png")})
    assert r.status_code == 415
    # A real PNG sent as text/plain with a .txt name is still an image.
    r = client.post("/v1/translate", files={"file": ("notes.txt", _png(_img()), "text/plain")})
    assert r.status_code == 200


def test_truncated_and_empty_images_are_422(client):
    for data in (_png(_img())[:200], encode_image(_img(), ".jpg")[:300]):
        r = client.post("/v1/translate", content=data)
        assert r.status_code == 422 and r.json()["error"] == "bad_image"
        assert "truncated" in r.json()["detail"]
    r = client.post("/v1/translate", content=b"")
    assert r.status_code == 422 and r.json()["error"] == "empty_body"
    r = client.post("/v1/translate", files={"other": (None, "text")})
    assert r.status_code == 400 and r.json()["error"] == "no_file"


def test_body_over_max_bytes_is_413_from_length_and_from_the_stream(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(300_000)
    r = client.post("/v1/translate", content=big)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    # No Content-Length (chunked upload): counted as it arrives, refused before the end.
    app = client.app
    chunks = [bytes(10_000)] * 100
    status, served = _asgi_post(app, chunks)
    assert status == 413 and served < 100


def test_too_many_pixels_is_413_from_the_header_without_decoding(client, monkeypatch):
    import translate.serve.app as app_module

    def no_decode(*a, **k):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(app_module, "decode_image", no_decode)
    big = np.zeros((220, 220, 3), np.uint8)  # 48 400 pixels > 40 000
    for ext in (".png", ".jpg", ".webp", ".bmp", ".tif"):
        data = encode_image(big, ext)
        assert probe_image(data).size == (220, 220), ext
        r = client.post("/v1/translate", content=data)
        assert r.status_code == 413 and r.json()["error"] == "too_many_pixels", ext


def test_bad_query_parameters_are_422_json(client):
    r = client.post("/v1/translate?format=gif", content=_png(_img()))
    assert r.status_code == 422 and r.json()["error"] == "bad_parameter" and "format" in r.json()["detail"]
    r = client.post("/v1/translate?quality=0", content=_png(_img()))
    assert r.status_code == 422 and "quality" in r.json()["detail"]
    r = client.get("/nowhere")
    assert r.status_code == 404 and set(r.json()) == {"error", "detail"}


class _Gate:
    """Wraps translate_tensor so a test decides when the network may run."""

    def __init__(self, fn):
        self.fn, self.open, self.entered, self.calls = fn, threading.Event(), threading.Event(), []

    def __call__(self, x, direction=None):
        self.entered.set()
        assert self.open.wait(30)
        self.calls.append(x.shape[0])
        return self.fn(x, direction)


def test_full_queue_is_503_with_retry_after(tmp_path):
    t = Translator.load(make_translator(tmp_path / "t"), device="cpu")
    gate = _Gate(t.translate_tensor)
    t.translate_tensor = gate
    app = create_app(t, ServeOptions(max_queue=1, max_batch=1, max_wait_ms=0))
    batcher = app.state.service.batcher
    with TestClient(app) as c:
        x = torch.zeros(3, 8, 8)
        running = batcher.submit(x, "a2b")  # taken by the worker, blocked in the network
        assert gate.entered.wait(10)
        waiting = batcher.submit(x, "a2b")  # fills the queue
        r = c.post("/v1/translate", content=_png(_img()))
        assert r.status_code == 503 and r.json()["error"] == "queue_full"
        assert r.headers["retry-after"] == "1"
        assert 'translate_queue_depth 1.0' in c.get("/metrics").text
        gate.open.set()
        assert running.result(10).shape == (3, 8, 8) and waiting.result(10).shape == (3, 8, 8)
        assert c.post("/v1/translate", content=_png(_img())).status_code == 200  # serving again


def test_client_disconnect_cancels_the_request(tmp_path):
    t = Translator.load(make_translator(tmp_path / "t"), device="cpu")
    gate = _Gate(t.translate_tensor)
    gate.open.set()
    t.translate_tensor = gate
    # The request waits 30 s for company; the client leaves at once.
    app = create_app(t, ServeOptions(max_wait_ms=30_000))
    t0 = time.monotonic()
    status, _ = _asgi_post(app, [_png(_img())], then_disconnect=True)
    assert time.monotonic() - t0 < 10 and status is None  # did not wait for the batch window
    service = app.state.service
    service.close()  # drains: the cancelled request is dropped, not run
    assert gate.calls == []
    assert 'status="499"' in service_metrics(service)


def _asgi_post(app, chunks, then_disconnect=False, path="/v1/translate"):
    """Calls the ASGI app directly with a body in ``chunks`` (no Content-Length).

    Returns (response status or None, how many chunks the app read).
    """
    served, statuses = [0], []

    async def receive():
        if served[0] < len(chunks):
            served[0] += 1
            return {"type": "http.request", "body": chunks[served[0] - 1], "more_body": served[0] < len(chunks)}
        if then_disconnect:
            await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start" and message["status"] != 499:
            statuses.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 20))
    return (statuses[0] if statuses else None), served[0]


def service_metrics(service) -> str:
    from prometheus_client import generate_latest

    return generate_latest(service.metrics.registry).decode()


# ----------------------------------------------------------------------------- other routes


def test_info_health_metrics_docs_and_page(client):
    info = client.get("/v1/info").json()
    assert info["method"] == "pix2pix" and info["directions"] == ["a2b"]
    choice = info["precision_choice"]  # what runs (auto by default) and why
    assert choice["precision"] == info["precision"] and choice["requested"] == "auto" and choice["reason"]
    assert info["limits"]["max_pixels"] == 40_000 and "token" not in info["limits"]
    assert client.get("/healthz").json() == {"status": "ok"}
    client.post("/v1/translate", content=_png(_img()))
    client.post("/v1/translate", content=b"junk")
    text = client.get("/metrics").text
    assert 'translate_requests_total{route="/v1/translate",status="200"}' in text
    assert 'translate_requests_total{route="/v1/translate",status="415"}' in text
    assert 'translate_request_duration_seconds_bucket{le="0.5",route="/v1/translate"}' in text
    assert "translate_batch_size_bucket" in text and "translate_queue_depth" in text
    assert "process_resident_memory_bytes" in text
    schema = client.get("/openapi.json").json()
    assert {"/v1/translate", "/v1/info", "/healthz", "/metrics"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/translate"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_token_guards_every_route_but_healthz(pix2pix):
    with TestClient(create_app(pix2pix, ServeOptions(token="s3cret"))) as c:
        assert c.get("/healthz").status_code == 200
        for method, path in (("get", "/v1/info"), ("get", "/metrics"), ("get", "/"), ("get", "/openapi.json"),
                             ("post", "/v1/translate")):
            r = getattr(c, method)(path)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
        r = c.get("/v1/info", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = c.post("/v1/translate", content=_png(_img()), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
        # The page: ?token= once, then a cookie carries it for the page's own requests.
        assert c.get("/?token=wrong", follow_redirects=False).status_code == 401
        r = c.get("/?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and "translate_token" in r.headers["set-cookie"]
        assert c.get("/v1/info").status_code == 200  # cookie kept by the client


def test_bind_rules_and_missing_extra(monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ServeSetupError, match="--token"):
        check_bind("0.0.0.0", None)

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(ServeSetupError, match=r"uvicorn.*translate-images\[serve\]"):
        require_extra()


def test_cli_refuses_a_public_host_without_token(tmp_path, capsys, monkeypatch):
    from translate.cli import main

    monkeypatch.delenv("TRANSLATE_SERVE_TOKEN", raising=False)
    folder = make_translator(tmp_path / "t")
    assert main(["serve", str(folder), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["serve", str(folder), "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err


# ----------------------------------------------------------------------------- batcher


def _recorder(delay=0.0):
    sizes = []

    def run(x, direction):
        sizes.append((direction, tuple(x.shape)))
        time.sleep(delay)
        return -x

    return run, sizes


def test_batcher_groups_same_size_requests():
    run, sizes = _recorder()
    b = MicroBatcher(run, max_batch=4, max_wait_ms=300, max_queue=16)
    futs = [b.submit(torch.full((3, 8, 8), float(k)), "a2b") for k in range(4)]
    futs.append(b.submit(torch.zeros(3, 16, 8), "a2b"))  # another size: its own batch
    for k, f in enumerate(futs[:4]):
        assert torch.equal(f.result(5), torch.full((3, 8, 8), -float(k)))  # each gets its own answer
    assert futs[4].result(5).shape == (3, 16, 8)
    b.close()
    assert ("a2b", (4, 3, 8, 8)) in sizes and ("a2b", (1, 3, 16, 8)) in sizes


def test_batcher_respects_max_wait_and_pixel_budget():
    run, sizes = _recorder()
    b = MicroBatcher(run, max_batch=8, max_wait_ms=20, max_queue=16, max_batch_pixels=2 * 64)
    t0 = time.monotonic()
    assert b.submit(torch.zeros(3, 8, 8), "a2b").result(5) is not None
    assert time.monotonic() - t0 < 2  # alone, it waited about max_wait, not forever
    futs = [b.submit(torch.zeros(3, 8, 8), "a2b") for _ in range(4)]
    [f.result(5) for f in futs]
    b.close()
    assert max(s[1][0] for s in sizes) <= 2  # two 8x8 images fill the 128-pixel budget


def test_batcher_queue_bound_drain_and_errors():
    release = threading.Event()

    def run(x, direction):
        release.wait(10)
        if direction == "bad":
            raise RuntimeError("out of memory")
        return x

    b = MicroBatcher(run, max_batch=1, max_wait_ms=0, max_queue=2)
    first = b.submit(torch.zeros(1, 2, 2), "a2b")
    deadline = time.monotonic() + 5
    while b.depth and time.monotonic() < deadline:  # the worker takes it and blocks
        time.sleep(0.01)
    queued = [b.submit(torch.zeros(1, 2, 2), "a2b"), b.submit(torch.zeros(1, 2, 2), "bad")]
    with pytest.raises(QueueFull):
        b.submit(torch.zeros(1, 2, 2), "a2b")
    release.set()
    b.close(drain=True)  # the queued ones are finished, not dropped
    assert first.done() and queued[0].result(0).shape == (1, 1, 2, 2)[1:]
    with pytest.raises(RuntimeError, match="out of memory"):
        queued[1].result(0)
    with pytest.raises(BatcherClosed):
        b.submit(torch.zeros(1, 2, 2), "a2b")


def test_batcher_hands_cached_memory_back_between_batches(monkeypatch):
    import translate.serve.batcher as batcher_module

    calls = []
    monkeypatch.setattr(batcher_module, "release_free_memory", lambda: calls.append(1) or True)
    run, _ = _recorder()
    b = MicroBatcher(run, max_batch=1, max_wait_ms=0, max_queue=8, trim_every_s=0.0)
    [f.result(5) for f in [b.submit(torch.zeros(3, 4, 4), "a2b") for _ in range(3)]]
    b.close()
    assert len(calls) == 3  # after every batch when the interval is 0
    calls.clear()
    b = MicroBatcher(run, max_batch=1, max_wait_ms=0, max_queue=8, trim_every_s=None)
    [f.result(5) for f in [b.submit(torch.zeros(3, 4, 4), "a2b") for _ in range(3)]]
    b.close()
    assert calls == []


# ----------------------------------------------------------------------------- the process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: Path, *args: str, env=None):
    """``python -m translate serve`` on a free loopback port; returns (process, base URL)."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "translate", "serve", str(checkpoint), "--port", str(port),
                             "--device", "cpu", "--log-level", "warning", *args],
                            cwd=repo_root(), env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stdout.read()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start within 60 s")


def test_sigterm_answers_in_flight_requests_then_exits(tmp_path):
    import httpx

    folder = make_translator(tmp_path / "t")
    # Each request waits 3 s for company, so it is in flight when SIGTERM arrives.
    proc, url = start_server(folder, "--max-wait-ms", "3000")
    try:
        result = {}

        def call():
            r = httpx.post(url + "/v1/translate", content=_png(_img()), timeout=30)
            result["status"], result["body"] = r.status_code, r.content

        th = threading.Thread(target=call)
        th.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        th.join(30)
        assert result.get("status") == 200 and decode_image(result["body"]).shape == (37, 50, 3)
        # uvicorn re-raises the signal once it has shut down, so the exit reads "killed by SIGTERM".
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_load_tool_checks_every_answer_under_malformed_traffic(tmp_path):
    import json

    folder = make_translator(tmp_path / "t")
    images = tmp_path / "images"
    for k, (h, w) in enumerate(((32, 40), (33, 21), (32, 40))):
        write_image_file(images / f"{k}.png", _img(h, w, seed=k))
    proc, url = start_server(folder, "--max-bytes", "100000")
    try:
        out = tmp_path / "report.json"
        res = subprocess.run([sys.executable, str(repo_root() / "tools" / "load_serve.py"), url, "--images",
                              str(images), "--clients", "3", "--seconds", "60", "--mode", "malformed",
                              "--malformed", "14", "--json", str(out)],
                             cwd=repo_root(), env={**os.environ, "PYTHONPATH": str(repo_root())},
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        report = json.loads(out.read_text())
        assert report["by_status"]["200"] == 14 and report["wrong_count"] == 0
        kinds = {k.split(":")[1] for k in report["by_status"] if k.startswith("bad:")}
        assert kinds == {"not_an_image", "truncated_png", "truncated_jpeg", "pixel_bomb", "over_max_bytes",
                         "empty_body", "bad_format"}
        assert report["server_alive_after"] and report["rss_mb"]["start"] > 0
        assert report["latency_200_s"]["p99"] >= report["latency_200_s"]["p50"] > 0
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_failing_batch_is_a_json_500_and_the_server_goes_on(tmp_path):
    t = Translator.load(make_translator(tmp_path / "t"), device="cpu")
    real, calls = t.translate_tensor, []

    def flaky(x, direction=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(x, direction)

    t.translate_tensor = flaky
    with TestClient(create_app(t, ServeOptions(max_wait_ms=0))) as c:
        r = c.post("/v1/translate", content=_png(_img()))
        assert r.status_code == 500 and r.json()["error"] == "translation_failed"
        assert "out of memory" in r.json()["detail"]
        assert c.post("/v1/translate", content=_png(_img())).status_code == 200
