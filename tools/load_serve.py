#!/usr/bin/env python3
"""Load a running ``translate serve`` with concurrent clients on loopback and report what it did.

Usage::

    python tools/load_serve.py URL --images DIR [--clients 16] [--seconds 30] [--max-requests N]
                               [--mode good|malformed] [--malformed 200] [--direction a2b]
                               [--format png] [--token T] [--warmup S] [--json OUT.json]

Every client sends one request at a time, cycling through the images of DIR, until ``--seconds``
have passed or ``--max-requests`` were sent (both bound the run). Every 200 answer is decoded
and its size compared with the input's: a wrong size counts as an error ("bad_answer").

Modes:
  good       only valid images. Overload is this mode with more clients than the server's
             --max-queue: the surplus is answered 503 (with Retry-After), reported by status.
  malformed  ``--malformed`` bad requests interleaved with good ones (one bad, one good, per
             client): not an image, truncated PNG and JPEG, a PNG header announcing 30000x30000
             pixels, a body over the server's --max-bytes, an empty body, a bad query
             parameter. Each bad one must get its 4xx status; the run ends when all were sent.

Prints throughput (good answers per second), p50/p95/p99 latency of the 200 answers (and of
the 503 ones when there are any), counts by status, and the server's resident memory
(``process_resident_memory_bytes`` from /metrics) at the start, the peak seen, and the end.
Exit status: 0 when every good request was answered correctly and every bad one got its
expected status (503s count as correct refusals only in good mode), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np


def _percentile(values: List[float], q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values else None


async def _metric(client, url: str, name: str) -> Optional[float]:
    """One unlabelled series of the server's /metrics, or None."""
    r = await client.get(url + "/metrics")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def _rss(client, url: str) -> Optional[int]:
    value = await _metric(client, url, "process_resident_memory_bytes")
    return None if value is None else int(value)


def _bomb_png(max_side: int = 30000) -> bytes:
    """A valid-looking PNG header that announces max_side x max_side pixels (a decompression bomb)."""
    ihdr = max_side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    body = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    idat = b"IDAT" + zlib.compress(bytes(1000))
    body += (len(idat) - 4).to_bytes(4, "big") + idat + zlib.crc32(idat).to_bytes(4, "big")
    return body + (0).to_bytes(4, "big") + b"IEND" + zlib.crc32(b"IEND").to_bytes(4, "big")


def malformed_cases(good_png: bytes, good_jpg: bytes, max_bytes: int) -> List[Tuple[str, bytes, str, int]]:
    """(name, body, query, expected status) for each kind of bad request."""
    return [
        ("not_an_image", b"<html>hello</html>" * 20, "", 415),
        ("truncated_png", good_png[: len(good_png) // 2], "", 422),
        ("truncated_jpeg", good_jpg[: len(good_jpg) // 2], "", 422),
        ("pixel_bomb", _bomb_png(), "", 413),
        ("over_max_bytes", b"\x89PNG\r\n\x1a\n" + bytes(max_bytes), "", 413),
        ("empty_body", b"", "", 422),
        ("bad_format", good_png, "format=gif", 422),
    ]


async def run(args) -> Dict:
    import httpx

    from translate.data.io import decode_image, encode_image, read_image

    files = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not files:
        raise SystemExit(f"error: no images under {args.images}")
    files = files[: args.limit_images]
    images = []
    for p in files:
        arr = read_image(p)
        images.append((p.read_bytes(), arr.shape[:2]))
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
    query = {"format": args.format}
    if args.direction:
        query["direction"] = args.direction
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=args.timeout) as client:
        info = (await client.get(args.url + "/v1/info")).json()
        max_bytes = info["limits"]["max_bytes"]
        sample = read_image(files[0])
        bad_cases = malformed_cases(encode_image(sample, ".png"), encode_image(sample[:, :, :3], ".jpg"), max_bytes)
        if args.warmup > 0:  # first requests allocate buffers once: not counted, not in RSS start
            warm_end = time.perf_counter() + args.warmup

            async def warm(c: int) -> None:
                k = c
                while time.perf_counter() < warm_end:
                    data, _hw = images[k % len(images)]
                    try:
                        await client.post(args.url + "/v1/translate", params=query, content=data)
                    except httpx.HTTPError:
                        pass
                    k += args.clients

            await asyncio.gather(*(warm(c) for c in range(args.clients)))
        rss_start = await _rss(client, args.url)
        batches0 = [await _metric(client, args.url, f"translate_batch_size_{k}") or 0.0 for k in ("sum", "count")]
        rss_peak = [rss_start or 0]
        stats: Dict[str, List[float]] = {}
        counts: Dict[str, int] = {}
        wrong: List[str] = []
        sent = [0]
        bad_sent = [0]
        t0 = time.perf_counter()
        deadline = t0 + args.seconds

        def note(key: str, seconds: float) -> None:
            counts[key] = counts.get(key, 0) + 1
            stats.setdefault(key, []).append(seconds)

        async def one_good(k: int) -> None:
            data, hw = images[k % len(images)]
            t = time.perf_counter()
            try:
                r = await client.post(args.url + "/v1/translate", params=query, content=data)
            except httpx.HTTPError as e:
                note(f"transport:{type(e).__name__}", time.perf_counter() - t)
                return
            dt = time.perf_counter() - t
            if r.status_code == 200:
                out = decode_image(r.content)
                if out.shape[:2] != hw:
                    wrong.append(f"{files[k % len(files)].name}: got {out.shape[:2]}, expected {hw}")
                    note("bad_answer", dt)
                    return
            note(str(r.status_code), dt)

        async def one_bad(k: int) -> None:
            name, body, q, expected = bad_cases[k % len(bad_cases)]
            t = time.perf_counter()
            try:
                r = await client.post(args.url + "/v1/translate" + (f"?{q}" if q else ""), content=body)
                status = r.status_code
                ok = status == expected and set(r.json()) == {"error", "detail"}
            except httpx.HTTPError as e:  # the server may close the connection after a 413
                status, ok = type(e).__name__, False
            note(f"bad:{name}:{status}", time.perf_counter() - t)
            if not ok:
                wrong.append(f"{name}: got {status}, expected {expected}")

        async def worker(c: int) -> None:
            k = c
            while time.perf_counter() < deadline and sent[0] < args.max_requests:
                if args.mode == "malformed":
                    if bad_sent[0] >= args.malformed:
                        return
                    bad_sent[0] += 1
                    sent[0] += 1
                    await one_bad(bad_sent[0])
                sent[0] += 1
                await one_good(k)
                k += args.clients

        async def watch_rss() -> None:
            while time.perf_counter() < deadline:
                await asyncio.sleep(2)
                try:
                    rss_peak[0] = max(rss_peak[0], await _rss(client, args.url) or 0)
                except httpx.HTTPError:
                    pass

        watcher = asyncio.ensure_future(watch_rss())
        await asyncio.gather(*(worker(c) for c in range(args.clients)))
        wall = time.perf_counter() - t0
        watcher.cancel()
        await asyncio.sleep(0.5)
        rss_end = await _rss(client, args.url)
        batches1 = [await _metric(client, args.url, f"translate_batch_size_{k}") or 0.0 for k in ("sum", "count")]
        alive = (await client.get(args.url + "/healthz")).status_code == 200

    ok200 = stats.get("200", [])
    busy = stats.get("503", [])
    report = {
        "mode": args.mode, "clients": args.clients, "seconds": round(wall, 2), "requests": sent[0],
        "images": len(files), "throughput_img_s": round(len(ok200) / wall, 3),
        "latency_200_s": {f"p{q}": _r(_percentile(ok200, q)) for q in (50, 95, 99)},
        "latency_503_s": {f"p{q}": _r(_percentile(busy, q)) for q in (50, 99)} if busy else None,
        "by_status": dict(sorted(counts.items())),
        "mean_batch_size": (round((batches1[0] - batches0[0]) / (batches1[1] - batches0[1]), 2)
                            if batches1[1] > batches0[1] else None),
        "wrong": wrong[:20], "wrong_count": len(wrong),
        "rss_mb": {"start": _mb(rss_start), "peak": _mb(rss_peak[0]), "end": _mb(rss_end)},
        "rss_growth_pct": round(100.0 * (rss_end - rss_start) / rss_start, 2) if rss_start and rss_end else None,
        "server_alive_after": alive,
    }
    return report


def _r(v):
    return None if v is None else round(v, 4)


def _mb(v):
    return None if not v else round(v / 2**20, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="server base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--images", required=True, help="folder of input images (PNG/JPEG/WebP)")
    p.add_argument("--limit-images", type=int, default=None, help="use only the first N images")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--seconds", type=float, default=30.0, help="stop after this long (default 30)")
    p.add_argument("--warmup", type=float, default=0.0,
                   help="seconds of load before measuring (not counted; RSS start is taken after it)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    p.add_argument("--mode", choices=["good", "malformed"], default="good")
    p.add_argument("--malformed", type=int, default=200, help="bad requests to send in malformed mode")
    p.add_argument("--direction", default=None, help="a2b or b2a (two-generator translators)")
    p.add_argument("--format", default="png", choices=["png", "jpg", "webp"], help="answer format")
    p.add_argument("--token", default=None, help="bearer token, when the server has one")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    p.add_argument("--json", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        p.error("--clients must be >= 1 and --seconds > 0")
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    bad = report["wrong_count"] or not report["server_alive_after"] or any(
        k.startswith("transport") or k in ("500", "bad_answer") for k in report["by_status"])
    if args.mode == "malformed" and "503" in report["by_status"]:
        bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
