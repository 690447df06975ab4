#!/usr/bin/env python3
"""Split side-by-side A|B images into paired A/ and B/ folders (the ``a_b`` dataset layout).

Usage::

    python tools/split_ab.py --src DIR --out DIR [--ext same|png|jpg|...] [--overwrite]

Every image under SRC (recursive; hidden files/folders and non-images ignored) is cut in two:
the left half goes to ``OUT/A/<rel>``, the right half to ``OUT/B/<rel>``. Each half is
``floor(W / 2)`` columns wide, the rule ``translate`` uses when it trains on side-by-side files,
so for an odd width the middle column is dropped (a warning names the file). Bit depth and
channels are kept (16-bit needs png or tif output); alpha is dropped, with a warning, when the
output format cannot store it (JPEG). This is the inverse of ``combine_ab.py``: for PNG files
``combine_ab`` then ``split_ab`` gives back the original pixels exactly.

Inputs are never written; existing outputs are kept (and counted as failures) unless
``--overwrite``; writes are atomic.

Exit status: 0 when every file was split, 1 when some failed (each is named with the reason on
stderr), 2 for usage errors (missing folder, output overlapping the input).

The script imports the installed ``translate`` package; when that fails (running from a source
checkout without installing) it adds the repository root (the parent of ``tools/``) to
``sys.path``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

try:
    import translate  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from translate.data.discover import DatasetError, list_images
from translate.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image, write_image
from translate.data.paired import split_halves

EXT_CHOICES = ("same",) + tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
NO_ALPHA_EXTENSIONS = (".jpg", ".jpeg")


def entry_location(path: Path) -> str:
    """Where a directory entry really lives (parent symlinks resolved, the name itself not)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def overlapping(a: Path, b: Path) -> bool:
    """True when folder ``a`` and folder ``b`` are the same or one contains the other."""
    ra, rb = os.path.realpath(a), os.path.realpath(b)
    return ra == rb or ra.startswith(rb.rstrip(os.sep) + os.sep) or \
        rb.startswith(ra.rstrip(os.sep) + os.sep)


def without_path_prefix(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def use_lenient_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # pragma: no cover
            pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="split_ab.py",
        description="Split side-by-side A|B images into OUT/A/<rel> (left half) and "
                    "OUT/B/<rel> (right half).",
        epilog="Exit status: 0 all split, 1 some files failed, 2 usage error.")
    parser.add_argument("--src", required=True, type=Path, metavar="DIR",
                        help="folder of side-by-side images, searched recursively")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder: gets A/ and B/ with SRC's relative paths (must "
                             "not overlap SRC)")
    parser.add_argument("--ext", default="same", choices=EXT_CHOICES,
                        help="output format: 'same' keeps each file's extension (default); "
                             "16-bit output needs png or tif")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs that already exist (inputs are never written)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    use_lenient_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        parser.error(f"--src {args.src} is not a folder")
    for side in ("A", "B"):
        if overlapping(args.src, args.out / side):
            parser.error(f"--out {args.out}: {args.out / side} overlaps --src {args.src}; "
                         "choose a separate output folder")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    try:
        paths = list_images(args.src)
    except (DatasetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    inputs = {entry_location(p) for p in paths}

    failures = done = 0

    def fail(path, reason: str) -> None:
        nonlocal failures
        failures += 1
        print(f"error: {path}: {reason}", file=sys.stderr)

    claimed: Dict[Path, Path] = {}  # output -> the input that produces it
    for path in paths:
        rel = path.relative_to(args.src)
        ext = path.suffix if args.ext == "same" else "." + args.ext
        rel = rel.with_name(rel.stem + ext)
        dests = (args.out / "A" / rel, args.out / "B" / rel)
        if rel in claimed:
            fail(path, f"gives the same output names as {claimed[rel]} ({rel}); rename one")
            continue
        claimed[rel] = path
        problem = None
        for dest in dests:
            if entry_location(dest) in inputs:
                problem = (dest, "is an input file; refusing to overwrite it")
            elif (dest.exists() or dest.is_symlink()) and not args.overwrite:
                problem = (dest, "exists already (pass --overwrite to replace it)")
            if problem:
                break
        if problem:
            fail(*problem)
            continue
        try:
            img = read_image(path)
        except ImageReadError as err:
            fail(err.path, err.reason)
            continue
        height, width = img.shape[:2]
        if width < 2:
            fail(path, f"is {width} pixel(s) wide; a side-by-side image needs at least 2")
            continue
        if width % 2:
            print(f"warning: {path}: odd width {width}; halves are {width // 2} wide and the "
                  f"middle column is dropped", file=sys.stderr)
        if img.shape[2] == 4 and ext.lower() in NO_ALPHA_EXTENSIONS:
            print(f"warning: {path}: alpha dropped ({ext} cannot store it)", file=sys.stderr)
            img = img[:, :, :3]
        halves = split_halves(img)
        try:
            for dest, half in zip(dests, halves):
                write_image(dest, half)
        except (ValueError, OSError) as err:
            fail(dest, f"cannot write: {without_path_prefix(str(err), dest)}")
            continue
        done += 1

    print(f"split {done} image(s) into {args.out / 'A'} and {args.out / 'B'}; "
          f"{failures} failure(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
