#!/usr/bin/env python3
"""Build an unpaired (CycleGAN) dataset folder from two arbitrary folders of images.

Usage::

    python tools/make_unpaired.py --a DIR --b DIR --out DIR [--split train] [--link | --copy]
                                  [--overwrite]

Creates ``OUT/<split>A/`` and ``OUT/<split>B/`` (``trainA``/``trainB`` by default; ``--split
test`` gives ``testA``/``testB``), the ``unpaired`` layout ``translate train cyclegan`` reads.
Images are found recursively (extensions as in ``translate.data.io.IMAGE_EXTENSIONS``, any
case); hidden files/folders and non-image files are skipped and counted. Relative paths are
kept. Every image is decoded first: unreadable ones are reported (path and reason) and left out.

Files are placed by symbolic link by default, pointing at the absolute real path of the source
(so the dataset folder can be moved, the sources cannot); where symlinks cannot be made (some
file systems, Windows without the privilege) it copies instead and says so. ``--link`` insists
on links (a file that cannot be linked is a failure); ``--copy`` always copies.

Inputs are never written; existing outputs are kept (and counted as failures) unless
``--overwrite``. Links and copies are created under a temporary name and renamed into place.

Exit status: 0 when every image was placed, 1 when some failed (bad images, existing outputs,
an input folder without images), 2 for usage errors (missing folder, overlapping folders).

The script imports the installed ``translate`` package (``pip install -e .`` in a checkout);
``_common`` is found next to it (Python puts a script's folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Optional, Sequence

from _common import (Failures, add_overwrite_option, check_out_folder,
                     input_locations, list_inputs, output_problem, overlapping,
                     use_lenient_output)

from translate.data.io import ImageReadError, read_image
from translate.fsutil import TEMP_SUFFIX, atomic_write_bytes


def atomic_symlink(target: str, dest: Path) -> None:
    """Makes ``dest`` a symlink to ``target``, replacing any existing entry in one rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def count_other_files(folder: Path, n_images: int) -> int:
    """Files under ``folder`` that ``list_images`` skipped (non-images, hidden files)."""
    total = 0
    for _dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        total += len(filenames)
    return total - n_images


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_unpaired.py",
        description="Build OUT/<split>A and OUT/<split>B (an unpaired CycleGAN dataset) from "
                    "two folders of images, by symlink (default) or copy.",
        epilog="Exit status: 0 all placed, 1 some images failed, 2 usage error.")
    parser.add_argument("--a", required=True, type=Path, metavar="DIR",
                        help="folder of domain-A images, searched recursively")
    parser.add_argument("--b", required=True, type=Path, metavar="DIR",
                        help="folder of domain-B images, searched recursively")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="dataset folder to create or add to (must not overlap the inputs)")
    parser.add_argument("--split", default="train", metavar="NAME",
                        help="split name: the folders are NAME + 'A' and NAME + 'B' "
                             "(default: train, giving trainA/ and trainB/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--link", dest="mode", action="store_const", const="link",
                      help="symlink every file; fail where a link cannot be made (default: "
                           "symlink, falling back to copying where links are not supported)")
    mode.add_argument("--copy", dest="mode", action="store_const", const="copy",
                      help="copy every file instead of linking")
    add_overwrite_option(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    use_lenient_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.split or os.sep in args.split or args.split.startswith("."):
        parser.error(f"--split {args.split!r} must be a plain, non-hidden folder name")
    sides = [("A", args.a, args.out / f"{args.split}A"), ("B", args.b, args.out / f"{args.split}B")]
    for side, src, dst in sides:
        if not src.is_dir():
            parser.error(f"--{side.lower()} {src} is not a folder")
    for _, src, _ in sides:
        for _, _, dst in sides:
            if overlapping(src, dst):
                parser.error(f"output folder {dst} overlaps the input folder {src}; choose "
                             "another --out")
    check_out_folder(parser, args.out)

    found = list_inputs(*(src for _, src, _ in sides))
    if found is None:
        return 2
    listed = [(side, src, dst, paths) for (side, src, dst), paths in zip(sides, found)]
    inputs = input_locations(p for paths in found for p in paths)

    mode = args.mode or "auto"
    fail = Failures()

    for side, src, dst, paths in listed:
        linked = copied = bad = 0
        for path in paths:
            dest = dst / path.relative_to(src)
            problem = output_problem(dest, inputs, args.overwrite)
            if problem:
                fail(dest, problem)
                continue
            try:
                read_image(path)
            except ImageReadError as err:
                fail(err.path, f"{err.reason} (left out)")
                bad += 1
                continue
            try:
                if mode in ("auto", "link"):
                    try:
                        atomic_symlink(os.path.realpath(path), dest)
                        linked += 1
                    except (OSError, NotImplementedError) as err:
                        if mode == "link":
                            raise
                        print(f"note: cannot create symlinks in {dst} ({err}); copying files "
                              f"instead", file=sys.stderr)
                        mode = "copy"
                if mode == "copy":
                    atomic_write_bytes(dest, path.read_bytes())
                    copied += 1
            except (OSError, NotImplementedError) as err:
                fail(dest, f"cannot {'link' if mode == 'link' else 'copy'} from {path}: {err}")
                continue
        if not paths:
            fail(src, "contains no images")
        other = count_other_files(src, len(paths))
        print(f"{dst}: {linked} linked + {copied} copied from {src}; {bad} unreadable left "
              f"out; {other} non-image or hidden file(s) skipped")

    print(f"{'done' if fail.count == 0 else 'finished with errors'}: {fail.count} failure(s)")
    return fail.exit_status()


if __name__ == "__main__":
    sys.exit(main())
