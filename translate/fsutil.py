"""Crash-safe file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]

# The umask can only be read by setting it; done once at import, before any writer threads.
UMASK = os.umask(0o022)
os.umask(UMASK)


def fsync_path(path: PathLike) -> None:
    """Flush a file's data (or a folder's entries) to disk, so that a rename publishes complete data
    only; a platform without folder descriptors is a no-op."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename.

    The temp file is hidden (``.NAME.XXXX.tmp``) so a crash leftover is never taken for an image
    by folder listings; :func:`remove_stale_temp_files` cleans such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            e.filename = str(path)  # a failed write on the descriptor does not say which file it was
        raise
    fsync_path(path.parent)


TEMP_SUFFIX = ".tmp"


def remove_stale_temp_files(folder: PathLike) -> int:
    """Delete temp files that :func:`atomic_write_bytes` left behind in a crash; returns how many."""
    count = 0
    for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file() and tmp.name.count(".") >= 3:
            tmp.unlink(missing_ok=True)
            count += 1
    return count


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: PathLike) -> None:
    """``torch.save`` with the same guarantees as :func:`atomic_write_bytes`."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def replace_dir(new: Path, target: Path) -> None:
    """Move the complete folder ``new`` to ``target``, replacing what was there.

    At every instant either ``target`` or ``target.old`` is a complete folder: ``target`` is first
    renamed to ``target.old``, ``new`` is renamed to ``target``, then ``target.old`` is deleted.
    :func:`recover_dir` undoes an interruption between the two renames.
    """
    new, target = Path(new), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists() and target.exists():
        shutil.rmtree(old)  # leftover of a crash after the second rename
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    fsync_path(target.parent)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(target: Path) -> Path:
    """Return the complete folder for ``target``: ``target`` itself, or ``target.old`` if a write
    was interrupted between the renames of :func:`replace_dir` (which it then moves back)."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        try:
            os.rename(old, target)
        except OSError:  # read-only location: read the old folder in place
            return old
    return target


# Errors of a write that retrying the same file cannot fix: the job must stop, not fail file by file.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
WRITE_FAILURE_ERRNOS = DISK_FULL_ERRNOS | {errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the filesystem (or the quota) has no room left."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` is a storage failure (full disk or quota, I/O error, read-only, permission)."""
    return isinstance(error, OSError) and error.errno in WRITE_FAILURE_ERRNOS


def describe_os_error(error: OSError) -> str:
    """One line for a failed file operation: ``PATH: No space left on device (ENOSPC)``."""
    name = errno.errorcode.get(error.errno, str(error.errno))
    reason = f"{error.strerror or error} ({name})"
    return f"{error.filename}: {reason}" if error.filename else reason
