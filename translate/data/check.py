"""Validate image files (used by the datasets) and ``translate check-data DIR``.

:func:`validate_files` decodes every file of a dataset once and applies the bad-file policy;
:func:`check_data` inspects a whole folder without training and returns a JSON-serialisable
report, which :func:`format_report` renders.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .discover import (
    DatasetError,
    detect_layout,
    format_items,
    list_images,
    list_splits,
    pair_up,
)
from .io import ImageReadError, read_image
from .labels import id_counts

PathLike = Union[str, os.PathLike]
_SIZES_SHOWN = 5


@dataclass(frozen=True)
class ImageInfo:
    """What decoding a file revealed: size, channels and sample type."""

    path: Path
    width: int
    height: int
    channels: int
    dtype: str  # "uint8", "uint16" or "float32"

    @property
    def mode(self) -> str:
        """Human-readable pixel format, e.g. "RGB", "gray 16-bit", "RGBA float"."""
        name = {1: "gray", 3: "RGB", 4: "RGBA"}[self.channels]
        suffix = {"uint8": "", "uint16": " 16-bit"}.get(self.dtype, " float")
        return name + suffix


def _inspect(path: Path) -> Union[ImageInfo, str]:
    try:
        img = read_image(path)
    except ImageReadError as err:
        return err.reason
    return ImageInfo(path, img.shape[1], img.shape[0], img.shape[2], str(img.dtype))


def scan_images(paths: Iterable[PathLike], workers: Optional[int] = None
                ) -> Tuple[Dict[Path, ImageInfo], List[Tuple[Path, str]]]:
    """Decodes every file once to prove it is readable.

    Decoding runs in a thread pool: OpenCV releases the GIL while decoding.

    Args:
        paths: Files to check (duplicates are checked once).
        workers: Threads; default ``min(8, os.cpu_count())``.

    Returns:
        ``(infos, bad)``: ``ImageInfo`` per readable file, and ``(path, reason)`` for each
        file that failed, in input order.
    """
    unique = list(dict.fromkeys(Path(p) for p in paths))
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_inspect, unique))
    infos: Dict[Path, ImageInfo] = {}
    bad: List[Tuple[Path, str]] = []
    for path, result in zip(unique, results):
        if isinstance(result, str):
            bad.append((path, result))
        else:
            infos[path] = result
    return infos, bad


def validate_files(paths: Sequence[PathLike], skip_bad_images: bool,
                   size_check: Optional[Callable[[ImageInfo], Optional[str]]] = None,
                   ) -> Tuple[Dict[Path, ImageInfo], List[Tuple[Path, str]]]:
    """Decodes every file and applies the bad-file policy of the datasets.

    Args:
        paths: Files to check.
        skip_bad_images: False: raise when any file is bad. True: warn and report them.
        size_check: Optional extra test on each readable file; returns a reason when the
            file cannot be used (e.g. smaller than the crop), else None.

    Returns:
        ``(infos, bad)``: info for each good file; ``(path, reason)`` for each bad one.

    Raises:
        DatasetError: Some files are bad and ``skip_bad_images`` is False.
    """
    infos, bad = scan_images(paths)
    if size_check is not None:
        for path, info in list(infos.items()):
            reason = size_check(info)
            if reason:
                bad.append((path, reason))
                del infos[path]
    if not bad:
        return infos, bad
    order = {Path(p): i for i, p in enumerate(paths)}
    bad.sort(key=lambda item: order.get(item[0], 0))
    listed = [f"{path}: {reason}" for path, reason in bad]
    if not skip_bad_images:
        raise DatasetError(
            f"{len(bad)} of {len(order)} image files cannot be used for training. Fix or "
            f"remove them, or pass --skip-bad-images to train without them:",
            listed,
        )
    warnings.warn(f"Skipping {len(bad)} of {len(order)} image files that cannot be used:"
                  + format_items(listed), stacklevel=3)
    return infos, bad


# ------------------------------------------------------------------------------------- report


def _side_stats(folder: Path, files: Sequence[Path]) -> dict:
    """Decodes ``files`` and summarises sizes, pixel formats and failures."""
    infos, bad = scan_images(files)
    sizes = Counter(f"{i.width}x{i.height}" for i in infos.values())
    modes = Counter(i.mode for i in infos.values())
    widths = [i.width for i in infos.values()]
    heights = [i.height for i in infos.values()]
    return {
        "folder": str(folder),
        "count": len(files),
        "readable": len(infos),
        "sizes": dict(sizes.most_common()),
        "min_size": [min(widths), min(heights)] if infos else None,  # [width, height]
        "max_size": [max(widths), max(heights)] if infos else None,
        "modes": dict(modes.most_common()),
        "odd_widths": sum(w % 2 for w in widths),
        "unreadable": [[str(p), reason] for p, reason in bad],
    }


def _label_sides(entry: dict, found, label_nc: Optional[int]) -> None:
    """Adds ``entry["labels"]``: the class IDs found on the side(s) holding single-channel label maps.

    A side holds label maps when all its images are single-channel; with ``label_nc`` and no such
    side, side A is read as label maps (e.g. palette PNGs, whose indices are the IDs).
    """
    sides = {name: stats for name, stats in entry["sides"].items() if name in ("A", "B")}
    gray = [name for name, stats in sides.items()
            if stats["readable"] and set(stats["modes"]) <= {"gray", "gray 16-bit"}]
    if not gray and label_nc is not None and "A" in sides:
        gray = ["A"]
    for name in gray:
        folder = found.folder_a if name == "A" else found.folder_b
        counts = id_counts(list_images(folder), label_nc)
        entry.setdefault("labels", {})[name] = {"label_nc": label_nc, **counts}
    if label_nc is not None and not gray:
        entry["notes"].append("--label-nc: no side of this split holds single-channel label maps "
                              "(class-ID maps need the a_b layout: A/ labels, B/ images)")


def _check_split(root: Path, split: Optional[str], layout: str, label_nc: Optional[int] = None) -> dict:
    entry: dict = {"split": split, "layout": None, "error": None, "sides": {}, "notes": [],
                   "pairs": None, "only_a": [], "only_b": [], "duplicates": []}
    try:
        found = detect_layout(root, split, layout)
    except DatasetError as err:
        entry["error"] = str(err)
        return entry
    entry["layout"] = found.kind
    entry["description"] = found.describe()
    if found.kind == "ab":
        if split and split[-1] in "AB":
            partner = root / (split[:-1] + ("B" if split[-1] == "A" else "A"))
            entry["notes"].append(
                f"{root / split} was read as side-by-side images; if it is one domain of an "
                f"unpaired dataset, its partner {partner} is missing")
        stats = _side_stats(found.folder, list_images(found.folder))
        entry["sides"]["AB"] = stats
        if stats["odd_widths"]:
            entry["notes"].append(
                f"{stats['odd_widths']} side-by-side images have an odd width; the middle "
                f"column is dropped when splitting them into A|B halves")
        return entry
    if found.kind == "a_b":
        pairs, only_a, only_b, duplicates = pair_up(found.folder_a, found.folder_b)
        entry["pairs"] = len(pairs)
        entry["only_a"] = [str(p) for p in only_a]
        entry["only_b"] = [str(p) for p in only_b]
        entry["duplicates"] = duplicates
    entry["sides"]["A"] = _side_stats(found.folder_a, list_images(found.folder_a))
    entry["sides"]["B"] = _side_stats(found.folder_b, list_images(found.folder_b))
    if found.kind == "a_b":
        entry["notes"].append("the A and B folders can also be used as unpaired domains (CycleGAN)")
    _label_sides(entry, found, label_nc)
    return entry


def _split_ok(entry: dict) -> bool:
    return (entry["error"] is None and not entry["only_a"] and not entry["only_b"]
            and not entry["duplicates"]
            and all(s["count"] > 0 and not s["unreadable"] for s in entry["sides"].values())
            and not any(lab["out_of_range_files"] or lab["unreadable"] for lab in entry.get("labels", {}).values()))


def check_data(root: PathLike, split: Optional[str] = None, layout: str = "auto",
               label_nc: Optional[int] = None) -> dict:
    """Inspects a dataset folder: layout, counts, sizes, pixel formats and bad files.

    Every image is decoded once (in threads), so this takes about as long as a dataset's
    construction-time validation.

    Args:
        root: Dataset folder.
        split: Split to check; None checks every split found (see ``list_splits``).
        layout: "auto" or a layout name to insist on ("ab", "a_b", "unpaired").

    Returns:
        A JSON-serialisable dict: ``root``; ``ok`` (False when the folder is missing or has
        no images, a layout is ambiguous or absent, files are unreadable, or pairs do not
        match); ``problems`` (strings); ``splits``: one dict per split with ``split``,
        ``layout``, ``error``, ``sides`` (``"AB"`` or ``"A"``/``"B"`` -> ``folder``,
        ``count``, ``readable``, ``sizes`` {"WxH": count}, ``min_size``/``max_size``
        [width, height], ``modes`` {"RGB": count, "gray 16-bit": count, ...},
        ``unreadable`` [[path, reason]]), ``pairs``, ``only_a``, ``only_b``,
        ``duplicates`` and ``notes``; and ``labels`` (side -> ``ids`` found, ``pixels`` per
        ID, ``out_of_range`` files with an ID >= ``label_nc``) for sides of single-channel maps.

    Args (continued):
        label_nc: the number of classes a ``--label-nc`` run would use: IDs at or above it are
            problems.
    """
    root = Path(root)
    report: dict = {"root": str(root), "ok": False, "problems": [], "splits": []}
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        report["problems"].append(f"{root} {what}")
        return report
    splits: List[Optional[str]] = [split] if split is not None else list_splits(root)
    if not splits:
        report["problems"].append(
            f"no images found in {root} in any known layout (side-by-side images in "
            f"{root}/SPLIT/, {root}/SPLIT/A/ + {root}/SPLIT/B/, or {root}/SPLITA/ + "
            f"{root}/SPLITB/)")
        return report
    for name in splits:
        entry = _check_split(root, name, layout, label_nc)
        report["splits"].append(entry)
        if not _split_ok(entry):
            label = "(no split)" if name is None else repr(name)
            report["problems"].append(f"split {label} has problems")
    report["ok"] = not report["problems"]
    return report


def _format_side(name: str, stats: dict) -> List[str]:
    sizes = list(stats["sizes"].items())
    size_text = ", ".join(f"{s} ({n})" for s, n in sizes[:_SIZES_SHOWN])
    if len(sizes) > _SIZES_SHOWN:
        size_text += f", ... {len(sizes) - _SIZES_SHOWN} more sizes"
    lines = [f"  {name}: {stats['count']} images in {stats['folder']}"]
    if stats["readable"]:
        (w0, h0), (w1, h1) = stats["min_size"], stats["max_size"]
        lines.append(f"    sizes: {size_text}; min {w0}x{h0}, max {w1}x{h1} (width x height)")
        lines.append("    modes: " + ", ".join(f"{m} ({n})" for m, n in stats["modes"].items()))
    if stats["unreadable"]:
        bad = [f"{p}: {reason}" for p, reason in stats["unreadable"]]
        listed = format_items(bad).replace("\n", "\n    ")
        lines.append(f"    UNREADABLE: {len(bad)} files{listed}")
    return lines


def _format_labels(side: str, lab: dict) -> List[str]:
    ids = lab["ids"]
    shown = ", ".join(map(str, ids[:40])) + (f", ... ({len(ids)} values)" if len(ids) > 40 else "")
    head = f"  {side} as class-ID label maps: {len(ids)} IDs found"
    if ids:
        head += f" (min {ids[0]}, max {ids[-1]}): {shown}"
    lines = [head]
    if lab["label_nc"] is not None:
        if lab["out_of_range_files"]:
            bad = [f"{p}: ID {v} at pixel (x={xy[0]}, y={xy[1]})" for p, v, xy in lab["out_of_range"]]
            lines.append(f"    IDS >= --label-nc {lab['label_nc']}: {lab['out_of_range_files']} files"
                         + format_items(bad).replace("\n", "\n    "))
            lines.append("    out-of-range IDs: " + ", ".join(str(i) for i in ids if i >= lab["label_nc"]))
        else:
            lines.append(f"    all IDs are below --label-nc {lab['label_nc']}")
    for p, reason in lab["unreadable"]:
        lines.append(f"    NOT A LABEL MAP: {reason}")
    return lines


def format_report(report: dict) -> str:
    """Renders a :func:`check_data` report as the text ``translate check-data`` prints."""
    status = "OK" if report["ok"] else "PROBLEMS FOUND"
    lines = [f"Dataset {report['root']}: {status}"]
    if not report["splits"]:
        lines += [f"  {p}" for p in report["problems"]]
    for entry in report["splits"]:
        label = "(no split folders)" if entry["split"] is None else repr(entry["split"])
        if entry["error"]:
            lines.append(f"split {label}: ERROR")
            lines += ["  " + line for line in entry["error"].splitlines()]
            continue
        lines.append(f"split {label}: layout {entry['description']}")
        for name, stats in entry["sides"].items():
            lines += _format_side(name, stats)
        if entry["pairs"] is not None:
            lines.append(f"  matched pairs: {entry['pairs']}")
        unmatched = ([f"only in A: {p}" for p in entry["only_a"]]
                     + [f"only in B: {p}" for p in entry["only_b"]])
        if unmatched:
            lines.append(f"  UNMATCHED: {len(unmatched)} files have no partner"
                         + format_items(unmatched).replace("\n", "\n  "))
        if entry["duplicates"]:
            lines.append("  DUPLICATES (same name, different extension):"
                         + format_items(entry["duplicates"]).replace("\n", "\n  "))
        for side, lab in entry.get("labels", {}).items():
            lines += _format_labels(side, lab)
        lines += [f"  note: {note}" for note in entry["notes"]]
    return "\n".join(lines)
