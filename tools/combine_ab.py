#!/usr/bin/env python3
"""Combine paired A/ and B/ folders into side-by-side A|B images (the ``ab`` dataset layout).

Usage::

    python tools/combine_ab.py --a DIR_A --b DIR_B --out DIR [--ext same|png|jpg|...] [--overwrite]

Files pair up by relative path without extension, recursively (``A/x/1.png`` <-> ``B/x/1.jpg``),
the same rule ``translate`` uses for the ``a_b`` layout. Each pair becomes ``OUT/x/1.<ext>``:
A on the left, B on the right. Hidden files/folders and non-image files are ignored.

Pixels are made compatible, never silently:

* sizes differ -> B is resized to A's size (a warning names the file; ``--interp`` picks the
  filter, ``--no-resize`` makes it an error instead);
* gray + RGB -> gray is replicated to RGB; RGB + RGBA -> an opaque alpha is added; alpha is
  dropped (with a warning) when the output format cannot store it (JPEG);
* both 16-bit -> the output stays 16-bit (needs ``--ext png`` or ``tif``, or ``same`` with
  such inputs); one 8-bit and one 16-bit -> the 16-bit one is reduced to 8 bits (warning).

Files without a partner, and stems that exist twice in one folder (``1.png`` and ``1.jpg``), are
listed on stderr and counted as failures; every matched pair is still combined. Inputs are never
written; an existing output is kept (and counted as a failure) unless ``--overwrite``. Writes are
atomic.

Exit status: 0 when every file was combined, 1 when some failed (each is named with the reason
on stderr), 2 for usage errors (missing folders, overlapping input/output folders).

The script imports the installed ``translate`` package (``pip install -e .`` in a checkout);
``_common`` is found next to it (Python puts a script's folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from _common import (NO_ALPHA_EXTENSIONS, Failures, add_ext_option,
                     add_overwrite_option, check_out_folder, input_locations, list_inputs,
                     output_problem, overlapping, use_lenient_output, write_outputs)

import cv2
import numpy as np

from translate.data.io import ImageReadError, read_image

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
                  "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


# ------------------------------------------------------------------------------ the pixels


def _to_8bit(img: np.ndarray) -> np.ndarray:
    return np.rint(img.astype(np.float32) / 257.0).astype(np.uint8)


def _add_channels(img: np.ndarray, nc: int) -> np.ndarray:
    """Gray -> RGB (replicate), RGB -> RGBA (opaque alpha); ``nc`` >= current channel count."""
    if img.shape[2] == 1 and nc >= 3:
        img = np.repeat(img, 3, axis=2)
    if img.shape[2] == 3 and nc == 4:
        alpha = np.full(img.shape[:2] + (1,), np.iinfo(img.dtype).max, dtype=img.dtype)
        img = np.concatenate([img, alpha], axis=2)
    return img


def combine(img_a: np.ndarray, img_b: np.ndarray, ext: str, interp: str = "auto",
            resize: bool = True) -> Tuple[np.ndarray, List[str]]:
    """Puts two images side by side, making their sizes, dtypes and channels agree.

    Args:
        img_a, img_b: ``(H, W, C)`` arrays from ``read_image`` (uint8 or uint16).
        ext: Output extension (".png", ...), to know whether alpha can be stored.
        interp: Filter for resizing B: "auto" (area when shrinking, cubic when enlarging),
            "nearest" (label maps), "linear", "cubic" or "area".
        resize: Resize B to A's size when they differ; False makes that an error.

    Returns:
        ``(image, warnings)``: ``(H_a, 2 * W_a, C)`` and what was changed, in words.

    Raises:
        ValueError: Float samples, or sizes differ and ``resize`` is False.
    """
    notes: List[str] = []
    for name, img in (("A", img_a), ("B", img_b)):
        if img.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{name} has {img.dtype} samples; only 8- and 16-bit images can be "
                             "combined (convert float images first)")
    if img_a.dtype != img_b.dtype:
        sixteen = "A" if img_a.dtype == np.uint16 else "B"
        notes.append(f"{sixteen} is 16-bit and the other 8-bit: {sixteen} reduced to 8 bits")
        img_a = _to_8bit(img_a) if img_a.dtype == np.uint16 else img_a
        img_b = _to_8bit(img_b) if img_b.dtype == np.uint16 else img_b

    (ha, wa), (hb, wb) = img_a.shape[:2], img_b.shape[:2]
    if (ha, wa) != (hb, wb):
        if not resize:
            raise ValueError(f"A is {wa}x{ha} but B is {wb}x{hb} (sizes must match with "
                             "--no-resize)")
        if interp == "auto":
            interp = "area" if (wb >= wa and hb >= ha) else "cubic"
        flag = INTERPOLATIONS[interp]
        channels = img_b.shape[2]
        img_b = cv2.resize(img_b, (wa, ha), interpolation=flag)
        img_b = img_b.reshape(ha, wa, channels)  # OpenCV drops a single channel axis
        notes.append(f"B resized from {wb}x{hb} to A's size {wa}x{ha} ({interp} filter)")

    nc = max(img_a.shape[2], img_b.shape[2])
    if nc == 4 and ext.lower() in NO_ALPHA_EXTENSIONS:
        notes.append(f"alpha dropped ({ext} cannot store it)")
        img_a, img_b = img_a[:, :, :3], img_b[:, :, :3]
        nc = max(img_a.shape[2], img_b.shape[2])
    elif img_a.shape[2] != img_b.shape[2]:
        kinds = {1: "gray", 3: "RGB", 4: "RGBA"}
        notes.append(f"channels differ (A {kinds[img_a.shape[2]]}, B {kinds[img_b.shape[2]]}): "
                     f"both made {kinds[nc]}")
    img_a, img_b = _add_channels(img_a, nc), _add_channels(img_b, nc)
    return np.concatenate([img_a, img_b], axis=1), notes  # (H, 2W, C)


# ---------------------------------------------------------------------------- the folders


def keyed_images(folder: Path, paths: List[Path]) -> Dict[str, List[Path]]:
    """relative path without extension -> the image files (``paths``, found in ``folder``)
    with that stem (normally one)."""
    keyed: Dict[str, List[Path]] = defaultdict(list)
    for path in paths:
        keyed[path.relative_to(folder).with_suffix("").as_posix()].append(path)
    return keyed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="combine_ab.py",
        description="Combine paired A/ and B/ folders (matched by relative path without "
                    "extension) into side-by-side A|B images.",
        epilog="Exit status: 0 all combined, 1 some files failed or had no partner, 2 usage error.")
    parser.add_argument("--a", required=True, type=Path, metavar="DIR_A",
                        help="folder of A images (left halves), searched recursively")
    parser.add_argument("--b", required=True, type=Path, metavar="DIR_B",
                        help="folder of B images (right halves), searched recursively")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder; gets the same relative paths as A (created if "
                             "missing; must not overlap the input folders)")
    add_ext_option(parser, same="each A file's extension")
    parser.add_argument("--interp", default="auto", choices=("auto",) + tuple(INTERPOLATIONS),
                        help="filter used when B is resized to A's size: auto = area when "
                             "shrinking, cubic when enlarging; use nearest for label maps")
    parser.add_argument("--no-resize", action="store_true",
                        help="treat a size mismatch between A and B as an error instead of "
                             "resizing B")
    add_overwrite_option(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    use_lenient_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, folder in (("--a", args.a), ("--b", args.b)):
        if not folder.is_dir():
            parser.error(f"{flag} {folder} is not a folder")
        if overlapping(folder, args.out):
            parser.error(f"--out {args.out} overlaps the input folder {flag} {folder}; "
                         "choose a separate output folder")
    check_out_folder(parser, args.out)

    listed = list_inputs(args.a, args.b)
    if listed is None:
        return 2
    keyed_a, keyed_b = keyed_images(args.a, listed[0]), keyed_images(args.b, listed[1])
    inputs = input_locations(p for paths in listed for p in paths)
    fail = Failures()

    for side, keyed in (("A", keyed_a), ("B", keyed_b)):
        for key in sorted(k for k, paths in keyed.items() if len(paths) > 1):
            names = ", ".join(p.name for p in keyed[key])
            fail(args.a if side == "A" else args.b,
                 f"{key}: ambiguous, {len(keyed[key])} files in {side} differ only by extension "
                 f"({names}); keep one")
    only_a = sorted(keyed_a.keys() - keyed_b.keys())
    only_b = sorted(keyed_b.keys() - keyed_a.keys())
    for key in only_a:
        for path in keyed_a[key]:
            fail(path, "only in A (no B file with the same relative path)")
    for key in only_b:
        for path in keyed_b[key]:
            fail(path, "only in B (no A file with the same relative path)")
    matched = sorted(k for k in keyed_a.keys() & keyed_b.keys()
                     if len(keyed_a[k]) == 1 and len(keyed_b[k]) == 1)

    done = 0
    for key in matched:
        path_a, path_b = keyed_a[key][0], keyed_b[key][0]
        ext = path_a.suffix if args.ext == "same" else "." + args.ext
        dest = args.out / (key + ext)
        problem = output_problem(dest, inputs, args.overwrite)
        if problem:
            fail(dest, problem)
            continue
        try:
            img_a, img_b = read_image(path_a), read_image(path_b)
        except ImageReadError as err:
            fail(err.path, err.reason)
            continue
        try:
            img, notes = combine(img_a, img_b, ext, args.interp, resize=not args.no_resize)
        except ValueError as err:
            fail(path_a, f"cannot combine with {path_b}: {err}")
            continue
        for note in notes:
            print(f"warning: {path_a} + {path_b}: {note}", file=sys.stderr)
        if write_outputs(fail, [(dest, img)]):
            done += 1

    print(f"combined {done} pair(s) into {args.out}; {len(only_a)} only in A, {len(only_b)} "
          f"only in B, {fail.count} failure(s) in total")
    return fail.exit_status()


if __name__ == "__main__":
    sys.exit(main())
