"""Download one file over HTTP(S) (or from a ``file://`` URL), resuming a partial download.

The bytes go to ``DEST.part`` and only a complete file (its size checked against the server's
``Content-Length`` / ``Content-Range``) is renamed to ``DEST``. A partial file left by an
interrupted run is continued with an HTTP ``Range`` request; a server that ignores ranges sends
the whole file, which then replaces the partial one.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Optional, Tuple

from tqdm import tqdm

from ..errors import UserError
from ..version import __version__

_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(UserError):
    """A download failed; the message names the URL, what went wrong, and whether re-running resumes."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_http(url: str, start: int, timeout: float):
    """Opens ``url`` asking for bytes from ``start``; returns (response, offset, total or None)."""
    headers = {"User-Agent": f"translate-images/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            # Nothing left past `start`: the partial file may already be whole.
            m = re.search(r"/(\d+)", e.headers.get("Content-Range", "") or "")
            e.close()
            return None, start, int(m.group(1)) if m else None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start:
            resp.close()
            raise DownloadError(f"{url}: the server answered a resume request with the range "
                                f"{resp.headers.get('Content-Range')!r}, not bytes {start}-")
        total = int(m.group(3)) if m.group(3) != "*" else None
        return resp, start, total
    return resp, 0, length  # 200: the whole file (the server ignored the range, or none asked)


def _open_file(url: str, start: int):
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DownloadError(f"{url}: {e.strerror}") from None
    total = os.fstat(f.fileno()).st_size
    f.seek(min(start, total))
    return f, min(start, total), total


def _copy(resp, part: Path, offset: int, total: Optional[int], desc: str, progress: bool) -> int:
    """Appends the response body to ``part`` from ``offset``; returns the size of ``part``."""
    with open(part, "r+b" if part.exists() else "wb") as out, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                 file=sys.stderr, disable=not progress or None, dynamic_ncols=True) as bar:
        out.seek(offset)
        out.truncate()
        while True:
            block = resp.read(_CHUNK)
            if not block:
                break
            out.write(block)
            bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
        return out.tell()


def _attempt(url: str, part: Path, timeout: float, progress: bool, desc: str) -> Tuple[int, Optional[int]]:
    """One try: continue ``part`` from its size. Returns (bytes on disk, expected total or None)."""
    have = part.stat().st_size if part.exists() else 0
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        resp, offset, total = _open_file(url, have)
    elif scheme in ("http", "https"):
        resp, offset, total = _open_http(url, have, timeout)
    else:
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r} (use http, https or file)")
    if resp is None:  # 416 on a resume: nothing more to read
        return have, total
    with resp:
        size = _copy(resp, part, offset, total, desc, progress)
    return size, total


def fetch(url: str, dest: Path, *, progress: bool = True, retries: int = 3, timeout: float = 60.0,
          expected_size: Optional[int] = None) -> Path:
    """Downloads ``url`` to ``dest``, resuming ``dest.part`` when a previous run left one.

    Args:
        url: ``http://``, ``https://`` or ``file://`` URL.
        dest: Final path; written only once the whole file is there (rename from ``dest.part``).
        progress: Show a tqdm progress bar on stderr.
        retries: Further tries after a broken connection, each resuming where the last stopped.
        timeout: Seconds without data before a try fails.
        expected_size: Known size in bytes; a different total is an error.

    Returns:
        ``dest``.

    Raises:
        DownloadError: HTTP error, wrong size, or a connection that kept breaking (``dest.part``
            is kept, so running again resumes).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
        try:
            size, total = _attempt(url, part, timeout, progress, dest.name)
        except (OSError, HTTPException) as e:  # a broken connection: retry, resuming
            problem = f"the download failed ({type(e).__name__}: {e})"
            continue
        total = total if total is not None else expected_size
        if expected_size is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: the server offers {total} bytes, {expected_size} expected; "
                                f"the partial download was removed")
        if total is None or size == total:
            os.replace(part, dest)
            return dest
        if size > total:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: received {size} bytes, more than the {total} announced; "
                                f"the partial download was removed, run again to start over")
        problem = f"the transfer stopped at {size} of {total} bytes"
    raise DownloadError(f"{url}: {problem}; {part} is kept: run the same command again to resume")
