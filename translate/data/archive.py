"""Extract a tar or zip archive without trusting it.

Every entry must be a regular file or a folder whose path stays inside the destination: absolute
paths, ``..`` components, backslashes, symbolic and hard links, device files and FIFOs make the
whole archive refused (:class:`ArchiveError` names the entry), and nothing extracted so far is
kept by the caller (it extracts into a fresh folder). Files are written by this module, byte by
byte from the archive, with ordinary permissions: no owner, mode or link metadata is applied.
"""

from __future__ import annotations

import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator, Optional, Tuple

from ..errors import UserError

_CHUNK = 1 << 20
# Entries some archivers add that are not data (macOS resource forks); skipped, not refused.
_SKIPPED_PREFIXES = ("__MACOSX/",)


class ArchiveError(UserError):
    """An archive is damaged, of an unknown kind, or holds an entry that is refused."""


class ExtractWriteError(UserError):
    """Writing an extracted file failed (full disk, permissions): the archive itself may be fine."""


def _safe_relative(name: str, archive: Path) -> Optional[PurePosixPath]:
    """The entry's path relative to the destination, or None for the root itself."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive}: refused entry {name!r}: an absolute or non-POSIX path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"{archive}: refused entry {name!r}: a '..' component would escape the destination")
    return PurePosixPath(*parts) if parts else None


def _write_error(target: Path, archive: Path, e: OSError) -> ExtractWriteError:
    return ExtractWriteError(f"cannot write {target} (from {archive}): {e.strerror or e}")


def _write(src: BinaryIO, target: Path, limit: Optional[int], name: str, archive: Path) -> None:
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")
    except FileExistsError:
        raise ArchiveError(f"{archive}: entry {name!r} appears twice") from None
    except OSError as e:
        raise _write_error(target, archive, e) from None
    with out:
        for block in iter(lambda: src.read(_CHUNK), b""):  # read errors: a damaged archive
            written += len(block)
            if limit is not None and written > limit:
                raise ArchiveError(f"{archive}: entry {name!r} holds more data than its header declares")
            try:
                out.write(block)
            except OSError as e:
                raise _write_error(target, archive, e) from None
    target.chmod(0o644)


def _tar_entries(archive: Path, tar: tarfile.TarFile) -> Iterator[Tuple[str, bool, Optional[BinaryIO], int]]:
    for member in tar:
        if member.isdir():
            yield member.name, True, None, 0
        elif member.isreg():
            yield member.name, False, tar.extractfile(member), member.size
        else:
            kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                    else "a device file" if member.ischr() or member.isblk()
                    else "a FIFO" if member.isfifo() else "not a regular file")
            raise ArchiveError(f"{archive}: refused entry {member.name!r}: {kind}")


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> Iterator[Tuple[str, bool, Optional[BinaryIO], int]]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a device file"
                    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
            raise ArchiveError(f"{archive}: refused entry {info.filename!r}: {kind}")
        if info.is_dir():
            yield info.filename, True, None, 0
        else:
            yield info.filename, False, zf.open(info), info.file_size


def _extract_entries(archive: Path, entries, dest: Path) -> int:
    count = 0
    for name, is_dir, src, size in entries:
        if name.startswith(_SKIPPED_PREFIXES) or PurePosixPath(name).name == ".DS_Store":
            if src is not None:
                src.close()
            continue
        rel = _safe_relative(name, archive)
        if rel is None:
            continue
        target = dest.joinpath(*rel.parts)
        if is_dir:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _write_error(target, archive, e) from None
            continue
        with src:
            _write(src, target, size, name, archive)
        count += 1
    return count


def archive_kind(archive: Path) -> str:
    """``"tar"`` or ``"zip"``, from the file's contents (not its name)."""
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, EOFError, tarfile.TarError):
        pass
    raise ArchiveError(f"{archive}: neither a tar nor a zip archive (or damaged at its start)")


def safe_extract(archive: Path, dest: Path) -> int:
    """Extracts ``archive`` (tar, tar.gz/bz2/xz or zip) into the new folder ``dest``.

    Args:
        archive: The archive file.
        dest: A folder that must not exist yet; on any error it is removed again.

    Returns:
        The number of files written.

    Raises:
        ArchiveError: A refused entry (path escape, link, device file, FIFO), a damaged or
            truncated archive, or a file that is not an archive.
        ExtractWriteError: A file could not be written (e.g. the disk is full).
    """
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    dest.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                return _extract_entries(archive, _zip_entries(archive, zf), dest)
        with tarfile.open(archive, "r:*") as tar:
            return _extract_entries(archive, _tar_entries(archive, tar), dest)
    except UserError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
            lzma.LZMAError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{archive}: damaged or truncated {kind} archive ({type(e).__name__}: {e})") from None
