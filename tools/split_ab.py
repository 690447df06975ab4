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

The script imports the installed ``translate`` package (``pip install -e .`` in a checkout);
``_common`` is found next to it (Python puts a script's folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from _common import (NO_ALPHA_EXTENSIONS, Failures, add_ext_option,
                     add_overwrite_option, check_out_folder, input_locations, list_inputs,
                     output_problem, overlapping, use_lenient_output, write_outputs)

from translate.data.io import ImageReadError, read_image
from translate.data.paired import split_halves


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
    add_ext_option(parser, same="each file's extension")
    add_overwrite_option(parser)
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
    check_out_folder(parser, args.out)
    listed = list_inputs(args.src)
    if listed is None:
        return 2
    paths = listed[0]
    inputs = input_locations(paths)
    fail = Failures()
    done = 0

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
        problems = [(dest, problem) for dest in dests
                    for problem in [output_problem(dest, inputs, args.overwrite)] if problem]
        if problems:
            fail(*problems[0])
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
        if write_outputs(fail, list(zip(dests, split_halves(img)))):
            done += 1

    print(f"split {done} image(s) into {args.out / 'A'} and {args.out / 'B'}; "
          f"{fail.count} failure(s)")
    return fail.exit_status()


if __name__ == "__main__":
    sys.exit(main())
