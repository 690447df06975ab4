"""Helpers shared by the dataset scripts in ``tools/`` (combine_ab, split_ab, make_unpaired).

Not a script of its own. The scripts import the installed ``translate`` package
(``pip install -e .`` in a source checkout).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from translate.data.discover import DatasetError, list_images
from translate.data.io import IMAGE_EXTENSIONS, write_image

EXT_CHOICES = ("same",) + tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
NO_ALPHA_EXTENSIONS = (".jpg", ".jpeg")


# ------------------------------------------------------------------------------ file system


def entry_location(path: Path) -> str:
    """Where a directory entry really lives (parent symlinks resolved, the name itself not).

    Writing ``path`` atomically replaces this entry, so two paths with the same location are
    the same file for overwrite checks even through symlinked folders.
    """
    return os.path.join(os.path.realpath(path.parent), path.name)


def overlapping(a: Path, b: Path) -> bool:
    """True when folder ``a`` and folder ``b`` are the same or one contains the other."""
    ra, rb = os.path.realpath(a), os.path.realpath(b)
    return ra == rb or ra.startswith(rb.rstrip(os.sep) + os.sep) or \
        rb.startswith(ra.rstrip(os.sep) + os.sep)


def list_inputs(*folders: Path) -> Optional[List[List[Path]]]:
    """``list_images`` of each folder; None (after printing the error) when listing fails."""
    try:
        return [list_images(folder) for folder in folders]
    except (DatasetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def input_locations(paths: Iterable[Path]) -> Set[str]:
    """The ``entry_location`` of every input file, for :func:`output_problem`."""
    return {entry_location(p) for p in paths}


def output_problem(dest: Path, inputs: Set[str], overwrite: bool) -> Optional[str]:
    """Why ``dest`` must not be written (an input file, or exists without ``--overwrite``)."""
    if entry_location(dest) in inputs:
        return "is an input file; refusing to overwrite it"
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        return "exists already (pass --overwrite to replace it)"
    return None


# ------------------------------------------------------------------------ command line


def add_ext_option(parser: argparse.ArgumentParser, same: str) -> None:
    """``--ext``: ``same`` (keeps ``same``, e.g. "each file's extension") or an image type."""
    parser.add_argument("--ext", default="same", choices=EXT_CHOICES,
                        help=f"output format: 'same' keeps {same} (default); "
                             "16-bit output needs png or tif")


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs that already exist (inputs are never written)")


def check_out_folder(parser: argparse.ArgumentParser, out: Path) -> None:
    """Usage error (exit 2) when ``--out`` exists and is not a folder."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} exists and is not a folder")


# ------------------------------------------------------------------------------ reporting


def without_path_prefix(message: str, path: Path) -> str:
    """``write_image`` errors start with "PATH: "; drop it where the caller names PATH itself."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def use_lenient_output() -> None:
    # File names that are not valid UTF-8 must not crash the report.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # pragma: no cover - replaced streams
            pass


class Failures:
    """Call with ``(path, reason)`` to report a failure on stderr; ``count`` says how many."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path, reason: str) -> None:
        self.count += 1
        print(f"error: {path}: {reason}", file=sys.stderr)

    def exit_status(self) -> int:
        """0 when nothing failed, else 1."""
        return 0 if self.count == 0 else 1


def write_outputs(fail: Failures, outputs: Sequence[Tuple[Path, object]]) -> bool:
    """``write_image`` each ``(dest, image)`` in turn; on the first error reports it through
    ``fail`` and returns False (later outputs are not written)."""
    for dest, img in outputs:
        try:
            write_image(dest, img)
        except (ValueError, OSError) as err:
            fail(dest, f"cannot write: {without_path_prefix(str(err), dest)}")
            return False
    return True
