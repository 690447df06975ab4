"""Local folders and object-storage URLs behind one small interface.

A :class:`Folder` is a local folder (a path, or a ``file://`` URL) or an fsspec URL such as
``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``az://container/prefix``; files in it are named
by their POSIX path relative to it. The operations are the few that conversion needs:

- :meth:`Folder.list`: the files under it (recursive), relative names kept as stored (spaces,
  unicode), hidden names (``.x``) left out, sorted;
- :meth:`Folder.read_bytes`, :meth:`Folder.exists`, :meth:`Folder.names`;
- :meth:`Folder.put`: an atomic write. On disk: temp file in the same folder, fsync, rename. In an
  object store: ONE request carrying the complete bytes (a single S3 ``PutObject``, a GCS simple
  upload), so an object appears only complete and no multipart upload is ever left behind.

Credentials and endpoints come from the usual environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``AZURE_STORAGE_CONNECTION_STRING``...) or from storage options (``--storage-option KEY=VALUE``,
passed to the fsspec filesystem). The cloud filesystems are the ``[cloud]`` extra.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

from .errors import UserError
from .fsutil import atomic_write_bytes, remove_stale_temp_files

LocationLike = Union[str, os.PathLike]

# An S3 PutObject carries at most 5 GiB; larger objects would need a multipart upload.
MAX_SINGLE_PUT = 5 * 2**30
# Protocols whose fsspec pipe_file switches to a multipart/resumable upload above a chunk size
# that can be raised: raised past the data size, every put is one request.
_CHUNKED_PUT = ("s3", "s3a", "gs", "gcs")
_EXTRA_HINT = "install the cloud extra: pip install 'translate-images[cloud]'"


class StorageError(UserError):
    """A location cannot be used: unknown protocol, missing filesystem package, bad option."""


def is_url(location: LocationLike) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path."""
    text = os.fspath(location) if not isinstance(location, str) else location
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum() and len(scheme) > 1


def parse_storage_options(pairs: Optional[Sequence[str]]) -> Dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> the fsspec storage options dict.

    Values are read as JSON when they parse (``true``, ``3``, ``{"a": 1}``) and as strings
    otherwise; dotted keys nest (``client_kwargs.region_name=eu-west-1``).

    Raises:
        StorageError: an item without ``=`` or with an empty key.
    """
    options: Dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise StorageError(f"storage option {pair!r} is not KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.strip().split(".")
        node = options
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise StorageError(f"storage option {pair!r}: {p} is already a value, not a group")
        node[leaf] = value
    return options


def _env_options(protocol: str) -> Dict[str, Any]:
    """Options the environment implies but not every client reads by itself."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if protocol in ("s3", "s3a") and endpoint:
        return {"endpoint_url": endpoint}
    return {}


class Folder:
    """A folder on local disk or in object storage; files are named relative to it.

    Picklable (it is sent to Ray workers): the filesystem is opened lazily in each process.

    Args:
        location: a local path, a ``file://`` URL or an fsspec URL (``s3://bucket/prefix``).
        options: fsspec storage options (credentials, ``endpoint_url``...), merged over those the
            environment implies.
    """

    def __init__(self, location: LocationLike, options: Optional[Dict[str, Any]] = None):
        text = os.fspath(location)
        self.options = dict(options or {})
        if is_url(text) and text.split("://", 1)[0].lower() == "file":
            text = text.split("://", 1)[1]
        self.local = not is_url(text)
        if self.local:
            self.root = os.path.abspath(text)
            self.protocol = "file"
        else:
            self.protocol = text.split("://", 1)[0].lower()
            self.root = text.rstrip("/")
            # resolved here, so that the folder carries its endpoint to other processes (Ray workers)
            self.options = {**_env_options(self.protocol), **self.options}
        self._fs = None

    def __getstate__(self):
        return {**self.__dict__, "_fs": None}

    def __repr__(self) -> str:
        return f"Folder({self.root!r})"

    def __str__(self) -> str:
        return self.root

    # ------------------------------------------------------------------ names
    @property
    def fs(self):
        """The fsspec filesystem of a URL folder (opened on first use)."""
        if self._fs is None:
            self._fs = open_filesystem(self.protocol, self.options)
        return self._fs

    def join(self, rel: str = "") -> str:
        """The full location (path or URL) of ``rel``."""
        if not rel:
            return self.root
        return os.path.join(self.root, *rel.split("/")) if self.local else f"{self.root}/{rel}"

    def _key(self, rel: str = "") -> str:
        """The fsspec path (without protocol) of ``rel``."""
        return self.fs._strip_protocol(self.join(rel))

    def child(self, rel: str) -> "Folder":
        """The subfolder ``rel`` of this folder, with the same options."""
        return Folder(self.join(rel), self.options)

    # ------------------------------------------------------------------ queries
    def is_dir(self) -> bool:
        """Whether the folder exists (an object-store prefix exists when it holds an object)."""
        if self.local:
            return os.path.isdir(self.root)
        return _call(self.fs.isdir, self._key())

    def is_file(self, rel: str = "") -> bool:
        if self.local:
            return os.path.isfile(self.join(rel))
        return _call(self.fs.isfile, self._key(rel))

    def exists(self, rel: str = "") -> bool:
        if self.local:
            return os.path.exists(self.join(rel))
        return _call(self.fs.exists, self._key(rel))

    def list(self, keep: Optional[Callable[[str], bool]] = None) -> List[str]:
        """Relative POSIX names of the files under this folder (recursive), sorted.

        Hidden names (any path component starting with ".") are left out; ``keep`` filters the
        rest by name. A folder that does not exist lists as empty.
        """
        if self.local:
            names = self._list_local()
        else:
            base = self._key().rstrip("/")
            try:
                found = _call(self.fs.find, base, withdirs=False, detail=False)
            except FileNotFoundError:
                found = []
            names = [p[len(base) + 1:] for p in found if p.startswith(base + "/")]
        names = [n for n in names if n and not any(part.startswith(".") for part in n.split("/"))]
        return sorted(n for n in names if keep is None or keep(n))

    def _list_local(self) -> List[str]:
        names = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in filenames:
                rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                names.append(Path(rel).as_posix())
        return names

    def names(self) -> Set[str]:
        """Every file name under the folder (one listing; hidden ones included)."""
        if self.local:
            return set(self._list_local()) if os.path.isdir(self.root) else set()
        base = self._key().rstrip("/")
        try:
            found = _call(self.fs.find, base, withdirs=False, detail=False)
        except FileNotFoundError:
            return set()
        return {p[len(base) + 1:] for p in found if p.startswith(base + "/")}

    # ------------------------------------------------------------------ reads and writes
    def read_bytes(self, rel: str = "") -> bytes:
        """The bytes of ``rel``. Raises OSError (FileNotFoundError when it is missing)."""
        if self.local:
            with open(self.join(rel), "rb") as f:
                return f.read()
        return _call(self.fs.cat_file, self._key(rel))

    def download(self, rel: str, dest: LocationLike) -> None:
        """Copy ``rel`` to the local file ``dest`` (streamed; not held in memory)."""
        if self.local:
            shutil.copyfile(self.join(rel), dest)
        else:
            _call(self.fs.get_file, self._key(rel), os.fspath(dest))

    def read_text(self, rel: str = "") -> str:
        return self.read_bytes(rel).decode("utf-8")

    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` atomically, creating parent folders; replaces what was there.

        Raises:
            OSError: the write failed (nothing is left behind: no partial file or object).
            ValueError: the data is too large for one object-store request (5 GiB).
        """
        if self.local:
            atomic_write_bytes(self.join(rel), data)
            return
        if len(data) >= MAX_SINGLE_PUT:
            raise ValueError(f"{self.join(rel)}: {len(data)} bytes is more than one object-store PUT takes "
                             f"({MAX_SINGLE_PUT} bytes)")
        kwargs = {"chunksize": max(len(data) + 1, 2**20)} if self.protocol in _CHUNKED_PUT else {}
        _call(self.fs.pipe_file, self._key(rel), bytes(data), **kwargs)

    def put_text(self, rel: str, text: str) -> None:
        self.put(rel, text.encode("utf-8"))

    def delete(self, rel: str) -> None:
        """Remove ``rel`` if it exists."""
        if self.local:
            try:
                os.unlink(self.join(rel))
            except FileNotFoundError:
                pass
            return
        try:
            _call(self.fs.rm_file, self._key(rel))
        except FileNotFoundError:
            pass

    def make(self) -> None:
        """Create the folder (object stores have no folders: nothing to do)."""
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def clean_temp(self) -> int:
        """Remove temp files a killed local writer left; object stores never hold any."""
        return remove_stale_temp_files(self.root) if self.local and os.path.isdir(self.root) else 0


def _call(fn, *args, **kwargs):
    """Run a filesystem call; errors of the storage client (no credentials, endpoint unreachable...)
    come out as OSError, like those of local files, with the client's one-line message."""
    try:
        return fn(*args, **kwargs)
    except (OSError, ValueError):
        raise
    except Exception as e:  # botocore/google/azure client errors have no common base class
        raise OSError(f"{type(e).__name__}: {e}") from e


def open_filesystem(protocol: str, options: Optional[Dict[str, Any]] = None):
    """The fsspec filesystem for ``protocol`` with ``options`` over the environment's.

    Raises:
        StorageError: fsspec or the protocol's package is not installed, or the protocol is unknown.
    """
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"{protocol}:// locations need fsspec; {_EXTRA_HINT}") from None
    merged = {**_env_options(protocol), **(options or {})}
    try:
        return fsspec.filesystem(protocol, **merged)
    except ImportError as e:
        raise StorageError(f"{protocol}:// locations need a package that is not installed ({e}); "
                           f"{_EXTRA_HINT}") from None
    except ValueError as e:
        raise StorageError(f"{protocol}:// is not a storage protocol fsspec knows ({e})") from None
    except TypeError as e:
        raise StorageError(f"bad storage options for {protocol}://: {e}") from None


def split_location(location: LocationLike, options: Optional[Dict[str, Any]] = None):
    """``location`` of a single file -> (its folder, its name in that folder)."""
    folder = Folder(location, options)
    if folder.local:
        return Folder(os.path.dirname(folder.root), options), os.path.basename(folder.root)
    parent, _, name = folder.root.rpartition("/")
    return Folder(parent, options), name
