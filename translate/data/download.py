"""``translate datasets download NAME``: fetch a standard dataset, check it, extract it safely.

Steps, each safe to interrupt and re-run:

1. download ``ARCHIVE`` (e.g. ``facades.tar.gz``) into ``DEST/ARCHIVE.part``, resuming a
   partial file, and rename it to ``DEST/ARCHIVE`` once its size is right;
2. check its sha256: against the package's pinned value where one is known, and against
   ``DEST/ARCHIVE.sha256`` (``sha256sum`` format), which the first download writes and every
   later download of the same archive is compared with;
3. extract it into a hidden temporary folder in ``DEST`` (see :mod:`translate.data.archive`)
   and rename the dataset folder to ``DEST/NAME`` (``.download.json`` in it says where it came
   from);
4. remove the archive (unless ``keep_archive``) and run :func:`translate.data.check_data`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .archive import ArchiveError, ExtractWriteError, safe_extract
from .catalog import MIRROR_ENV, DatasetEntry, get_dataset
from .check import check_data
from .fetch import DownloadError, fetch, sha256_file

__all__ = ["ChecksumError", "DownloadResult", "download_dataset", "resolve_mirror"]


class ChecksumError(UserError):
    """A downloaded archive's sha256 differs from the pinned or recorded one."""


@dataclass
class DownloadResult:
    """What :func:`download_dataset` did.

    Attributes:
        root: The dataset folder (``DEST/NAME``).
        url: Where the archive came from (None when the folder was already there).
        sha256: The archive's sha256 (None when nothing was downloaded).
        report: The :func:`check_data` report of ``root``.
        already_there: True when ``root`` existed and nothing was downloaded.
    """

    root: Path
    url: Optional[str]
    sha256: Optional[str]
    report: dict
    already_there: bool = False


def resolve_mirror(mirror: Optional[str]) -> Optional[str]:
    """``mirror`` when given, else the ``TRANSLATE_DATASETS_MIRROR`` environment variable, else None."""
    return mirror or os.environ.get(MIRROR_ENV) or None


def _check_sha256(entry: DatasetEntry, archive: Path, record: Path) -> str:
    """Compares the archive's sha256 with the pinned and recorded ones; removes it when they differ."""
    digest = sha256_file(archive)
    if entry.sha256 and digest != entry.sha256:
        archive.unlink()
        raise ChecksumError(f"{entry.archive}: sha256 {digest} differs from the known {entry.sha256}; "
                            f"the download was removed (a damaged or altered copy)")
    words = record.read_text().split() if record.exists() else []
    if words and digest != words[0]:
        archive.unlink()
        raise ChecksumError(
            f"{entry.archive}: sha256 {digest} differs from {words[0]} recorded in {record} by an "
            f"earlier download; the download was removed. If the publisher changed the archive on "
            f"purpose, delete {record} and run again")
    return digest


def _record_sha256(entry: DatasetEntry, record: Path, digest: str) -> None:
    """Writes ``record`` (``sha256sum`` format) the first time an archive was extracted."""
    if not record.exists():
        tmp = record.with_name(record.name + ".tmp")
        tmp.write_text(f"{digest}  {entry.archive}\n")
        os.replace(tmp, record)


def _dataset_folder(staging: Path, entry: DatasetEntry) -> Path:
    """The extracted dataset: the archive's one top folder (``facades/``), else the staging folder."""
    children = [p for p in staging.iterdir() if not p.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return staging


def _install(entry: DatasetEntry, archive: Path, root: Path, url: str, digest: str) -> None:
    """Extracts ``archive`` next to ``root`` and renames the dataset folder to ``root``."""
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.extracting-", dir=root.parent))
    try:
        inner = staging / "x"
        safe_extract(archive, inner)
        folder = _dataset_folder(inner, entry)
        info = {"name": entry.name, "url": url, "archive": entry.archive, "sha256": digest,
                "bytes": archive.stat().st_size, "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (folder / ".download.json").write_text(json.dumps(info, indent=2) + "\n")
        os.replace(folder, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(name: str, dest="datasets", *, mirror: Optional[str] = None, progress: bool = True,
                     keep_archive: bool = False, retries: int = 3, timeout: float = 60.0) -> DownloadResult:
    """Downloads, checks and extracts the standard dataset ``name`` into ``dest/name``.

    Args:
        name: A name from :func:`translate.data.catalog.list_datasets`.
        dest: The data root (created when missing).
        mirror: Base URL replacing the authors' (the archive keeps its published name); None
            reads ``TRANSLATE_DATASETS_MIRROR``.
        progress: tqdm progress bar on stderr.
        keep_archive: Keep ``dest/ARCHIVE`` after extracting (a later run re-checks and reuses it).
        retries: Further tries, each resuming, after a broken connection.
        timeout: Seconds without data before a try fails.

    Returns:
        A :class:`DownloadResult`; ``result.report["ok"]`` says whether check-data found problems.

    Raises:
        UnknownDatasetError, DownloadError, ChecksumError, ArchiveError: the message says what
            failed; a partial download is kept for the next run to resume.
    """
    entry = get_dataset(name)
    dest = Path(dest)
    root = dest / entry.name
    if root.exists():
        return DownloadResult(root, None, None, check_data(root, layout=entry.layout), already_there=True)
    mirror = resolve_mirror(mirror)
    if entry.note and not mirror:
        raise DownloadError(f"{entry.name}: {entry.note}")
    url = entry.url(mirror)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / entry.archive
    if not archive.exists():
        fetch(url, archive, progress=progress, retries=retries, timeout=timeout)
    record = dest / (entry.archive + ".sha256")
    digest = _check_sha256(entry, archive, record)
    try:
        _install(entry, archive, root, url, digest)
    except ArchiveError as e:
        archive.unlink()
        raise ArchiveError(f"{e}; the archive was removed, run again to download it anew") from None
    except ExtractWriteError as e:
        raise ExtractWriteError(f"{e}; {archive} is kept (its sha256 matched): fix that and run again") from None
    _record_sha256(entry, record, digest)
    if not keep_archive:
        archive.unlink()
    return DownloadResult(root, url, digest, check_data(root, layout=entry.layout))
