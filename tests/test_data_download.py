"""translate datasets list|download against a real local HTTP server serving archives built here."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import make_ab_dataset, make_unpaired_dataset
from translate.cli import main
from translate.data.archive import ArchiveError, ExtractWriteError, safe_extract
from translate.data.catalog import DATASETS, MIRROR_ENV, UnknownDatasetError, get_dataset, list_datasets
from translate.data.download import ChecksumError, download_dataset
from translate.data.fetch import DownloadError, fetch


class _Handler(BaseHTTPRequestHandler):
    """Serves files from server.root with Range support; can cut a body short or ignore ranges."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        path = srv.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, status = 0, 200
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if m and not srv.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if srv.cut_after is not None:  # announce the whole body, send part of it, hang up
            cut, srv.cut_after = srv.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root, srv.requests, srv.cut_after, srv.ignore_range = root, [], None, False
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    yield srv
    srv.shutdown()
    srv.server_close()


def _tar_gz(folder: Path, out: Path, arcname: str) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return out


def _zip(folder: Path, out: Path, arcname: str) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{arcname}/{path.relative_to(folder).as_posix()}")
    return out


@pytest.fixture
def facades_archive(tmp_path, server) -> Path:
    src = tmp_path / "src" / "facades"
    for split in ("train", "val", "test"):
        make_ab_dataset(src, n=3, size=16, split=split)
    return _tar_gz(src, server.root / "facades.tar.gz", "facades")


def test_registry_names_and_urls():
    names = list_datasets()
    for name in ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day",
                 "horse2zebra", "monet2photo", "summer2winter_yosemite", "apple2orange"):
        assert name in names
    assert get_dataset("facades").url() == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert get_dataset("horse2zebra").url("https://example.org/copy/") == "https://example.org/copy/horse2zebra.zip"
    assert get_dataset("maps_unpaired").archive == "maps.zip"
    assert all(e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256) for e in DATASETS.values())
    with pytest.raises(UnknownDatasetError, match="valid names: facades"):
        get_dataset("facade")


def test_download_pix2pix_tar_gz(tmp_path, server, facades_archive, capsys):
    dest = tmp_path / "datasets"
    rc = main(["datasets", "download", "facades", "--dest", str(dest), "--mirror", server.url, "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    root = dest / "facades"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["test", "train", "val"]
    assert "layout" in out and "OK" in out  # check-data ran on the result
    digest = hashlib.sha256(facades_archive.read_bytes()).hexdigest()
    assert (dest / "facades.tar.gz.sha256").read_text() == f"{digest}  facades.tar.gz\n"
    assert json.loads((root / ".download.json").read_text())["sha256"] == digest
    assert not (dest / "facades.tar.gz").exists() and not (dest / "facades.tar.gz.part").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".facades")]  # no staging left
    # A second run leaves the folder alone and checks it again.
    assert main(["datasets", "download", "facades", "--dest", str(dest), "--mirror", server.url]) == 0
    assert "already exists" in capsys.readouterr().err


def test_download_cyclegan_zip_from_env_mirror(tmp_path, server, monkeypatch):
    src = make_unpaired_dataset(tmp_path / "src" / "horse2zebra", n_a=2, n_b=3, size=16)
    make_unpaired_dataset(tmp_path / "tmp_test", n_a=1, n_b=1, size=16)
    for side in "AB":
        (tmp_path / "tmp_test" / f"train{side}").rename(src / f"test{side}")
    _zip(src, server.root / "horse2zebra.zip", "horse2zebra")
    monkeypatch.setenv(MIRROR_ENV, server.url)
    result = download_dataset("horse2zebra", tmp_path / "d", progress=False)
    assert result.report["ok"], result.report
    assert sorted(p.name for p in result.root.iterdir() if not p.name.startswith(".")) == [
        "testA", "testB", "trainA", "trainB"]
    assert server.requests[0][0] == "/horse2zebra.zip"


def test_recorded_checksum_is_checked_on_the_next_download(tmp_path, server, facades_archive):
    dest = tmp_path / "d"
    download_dataset("facades", dest, mirror=server.url, progress=False)
    (dest / "facades.tar.gz.sha256").write_text("0" * 64 + "  facades.tar.gz\n")
    import shutil

    shutil.rmtree(dest / "facades")
    with pytest.raises(ChecksumError, match="recorded in"):
        download_dataset("facades", dest, mirror=server.url, progress=False)
    assert not (dest / "facades").exists() and not (dest / "facades.tar.gz").exists()


def test_pinned_checksum_mismatch_is_refused(tmp_path, server, facades_archive, monkeypatch):
    import dataclasses

    import translate.data.download as download

    pinned = dataclasses.replace(get_dataset("facades"), sha256="f" * 64)
    monkeypatch.setattr(download, "get_dataset", lambda name: pinned)
    with pytest.raises(ChecksumError, match="differs from the known"):
        download_dataset("facades", tmp_path / "d", mirror=server.url, progress=False)
    assert not (tmp_path / "d" / "facades").exists()
    assert not (tmp_path / "d" / "facades.tar.gz.sha256").exists()


def test_interrupted_download_resumes_with_range(tmp_path, server, facades_archive):
    data = facades_archive.read_bytes()
    dest = tmp_path / "dl" / "facades.tar.gz"
    server.cut_after = len(data) // 3
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        fetch(server.url + "facades.tar.gz", dest, progress=False, retries=0, timeout=10)
    part = dest.with_name("facades.tar.gz.part")
    assert part.stat().st_size == len(data) // 3 and not dest.exists()
    fetch(server.url + "facades.tar.gz", dest, progress=False, retries=0, timeout=10)
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1][1] == f"bytes={len(data) // 3}-"


def test_broken_connection_is_retried_within_one_run(tmp_path, server, facades_archive):
    server.cut_after = 100
    result = download_dataset("facades", tmp_path / "d", mirror=server.url, progress=False, retries=2)
    assert result.report["ok"]
    assert [r for _p, r in server.requests] == [None, "bytes=100-"]


def test_server_ignoring_range_restarts(tmp_path, server, facades_archive):
    data = facades_archive.read_bytes()
    dest = tmp_path / "x.tar.gz"
    dest.with_name("x.tar.gz.part").write_bytes(b"garbage-that-is-not-a-prefix")
    server.ignore_range = True
    fetch(server.url + "facades.tar.gz", dest, progress=False)
    assert dest.read_bytes() == data


def test_missing_archive_is_a_clear_error(tmp_path, server, capsys):
    rc = main(["datasets", "download", "maps", "--dest", str(tmp_path / "d"), "--mirror", server.url,
               "--no-progress"])
    assert rc == 2 and "maps.tar.gz: HTTP 404" in capsys.readouterr().err


def test_mirror_only_entry_needs_a_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(DownloadError, match="cityscapes-dataset.com"):
        download_dataset("cityscapes", tmp_path / "d", progress=False)


def test_truncated_archive_is_refused_and_removed(tmp_path, server, facades_archive):
    data = facades_archive.read_bytes()
    facades_archive.write_bytes(data[: len(data) // 2])  # the server itself holds a damaged copy
    dest = tmp_path / "d"
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        download_dataset("facades", dest, mirror=server.url, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == []  # no archive, no record, no staging, no dataset


def _malicious_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("facades/train/1.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo({"dotdot": "facades/../../evil.txt", "absolute": "/tmp/evil.txt"}.get(kind, "facades/x"))
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "facades/train/1.txt"
        elif kind == "device":
            bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "fifo":
            bad.type = tarfile.FIFOTYPE
        bad.size = 4 if kind in ("dotdot", "absolute") else 0
        tar.addfile(bad, io.BytesIO(b"evil") if bad.size else None)
    return path


@pytest.mark.parametrize("kind, message", [
    ("dotdot", "'..' component"), ("absolute", "absolute"), ("symlink", "symbolic link"),
    ("hardlink", "hard link"), ("device", "device file"), ("fifo", "FIFO")])
def test_malicious_tar_is_refused(tmp_path, kind, message):
    archive = _malicious_tar(tmp_path / "bad.tar.gz", kind)
    with pytest.raises(ArchiveError, match=message):
        safe_extract(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "x").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize("kind, message", [("dotdot", "'..' component"), ("symlink", "symbolic link"),
                                           ("backslash", "non-POSIX"), ("device", "device file")])
def test_malicious_zip_is_refused(tmp_path, kind, message):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("h2z/trainA/1.txt", b"ok")
        if kind == "dotdot":
            zf.writestr("h2z/../../evil.txt", b"evil")
        elif kind == "backslash":
            zf.writestr("h2z\\..\\evil.txt", b"evil")
        else:
            info = zipfile.ZipInfo("h2z/link")
            info.create_system = 3
            info.external_attr = ((0o120777 if kind == "symlink" else 0o020644) << 16)
            zf.writestr(info, b"/etc/passwd")
    with pytest.raises(ArchiveError, match=message):
        safe_extract(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "evil.txt").exists()


def test_malicious_archive_served_is_refused_end_to_end(tmp_path, server, capsys):
    _malicious_tar(server.root / "facades.tar.gz", "dotdot")
    dest = tmp_path / "deep" / "d"
    rc = main(["datasets", "download", "facades", "--dest", str(dest), "--mirror", server.url, "--no-progress"])
    assert rc == 2 and "'..' component" in capsys.readouterr().err
    assert not (dest / "facades").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveError, match="neither a tar nor a zip"):
        safe_extract(junk, tmp_path / "out")


def test_check_data_problems_give_exit_status_1(tmp_path, server, capsys):
    src = tmp_path / "src" / "facades" / "train"
    src.mkdir(parents=True)
    (src / "1.jpg").write_bytes(b"not an image")
    _tar_gz(src.parent, server.root / "facades.tar.gz", "facades")
    rc = main(["datasets", "download", "facades", "--dest", str(tmp_path / "d"), "--mirror", server.url,
               "--no-progress"])
    assert rc == 1 and "PROBLEMS FOUND" in capsys.readouterr().out


def test_list_command(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "facades" in out and "horse2zebra" in out
    assert main(["datasets", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(list_datasets())


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_while_extracting_is_a_write_error(tmp_path, tiny_tmpfs):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big/trainA/1.bin", os.urandom(300_000))
    with pytest.raises(ExtractWriteError, match="cannot write"):
        safe_extract(archive, tiny_tmpfs / "x")
    assert not (tiny_tmpfs / "x").exists() and archive.exists()
