"""What a folder conversion will do, before anything is written: inputs, outputs, safety rules.

Free of the image stack (no OpenCV, no torch): the driver of a Ray job plans with it alone.

Inputs and outputs are :class:`translate.storage.Folder` objects (local folders or object-store
URLs) and files are named by their POSIX path relative to them, so an output mirrors its input's
relative name on any storage. Every engine (local threads, torchrun shards, Ray) plans the same
way and then converts the planned :class:`Item` list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from ..formats import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from ..storage import Folder, is_url, split_location

FAILED_FILE = "failed.jsonl"
OUTPUT_EXTS = ("same", "png", "jpg", "webp", "tif")


class ConvertError(UserError):
    """The conversion cannot start (bad paths, unsafe output); nothing was written."""


class OutputFullError(UserError):
    """The output filesystem is full (or over quota): the job stops instead of failing every
    remaining file; the outputs written so far are complete and a rerun skips them."""


@dataclass(frozen=True)
class Item:
    """One file to convert: its name in the input folder and its output's name in the output folder."""

    src: str
    dst: str


@dataclass
class Inputs:
    """The files to convert: ``names`` (images) relative to ``folder``; ``whole_folder`` when INPUT
    was a folder; ``videos``: the video files among them (local folders only), converted by
    :mod:`translate.video` into videos of the same name."""

    folder: Folder
    names: List[str]
    whole_folder: bool = True
    videos: List[str] = field(default_factory=list)

    def video_inputs(self) -> "Inputs":
        """The videos as an :class:`Inputs` of their own (planned with the same rules)."""
        return Inputs(self.folder, self.videos, self.whole_folder)


@dataclass
class ConvertSummary:
    """Counts of a conversion job; ``failures`` are (input location, reason) pairs."""

    output: str
    total: int = 0
    converted: int = 0
    skipped: int = 0  # outputs that already existed
    failures: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self) -> str:
        rate = self.converted / self.seconds if self.seconds > 0 else 0.0
        text = (f"converted {self.converted}, skipped {self.skipped} (already done), failed {self.failed} "
                f"of {self.total} in {self.seconds:.1f}s ({rate:.2f} img/s)")
        if self.failures:
            text += f"; failures listed in {Folder(self.output).join(FAILED_FILE)}"
        if self.interrupted:
            text += "; INTERRUPTED: run the same command again to finish"
        return text


# Images per network call. At 1 image a U-Net's inner levels are bound by reading their weights (4-8 M
# each on maps of 1-8 pixels); in bf16 on a 2-core AMX CPU, 4 per call converted the facades test folder
# 1.5x faster end to end than 1 per call (unet_256 forward alone: 2.7x per image).
DEFAULT_BATCH_SIZE = 4


@dataclass
class StreamOptions:
    """How items are converted (see :func:`translate.conversion.local.convert` for the meanings)."""

    direction: str
    batch_size: int = DEFAULT_BATCH_SIZE
    quality: Optional[int] = None
    resize: object = None
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
    workers: int = 2
    instance_maps: Optional[dict] = None  # relative name without extension -> instance map path


def record_failure(summary: ConvertSummary, src: str, reason: str) -> None:
    """The one place a per-file failure is recorded (it ends up in ``failed.jsonl``)."""
    summary.failures.append((src, reason))


def check_options(ext: str, batch_size: int, quality: Optional[int]) -> None:
    """Validate the options every engine shares (raises :class:`ConvertError`)."""
    if ext not in OUTPUT_EXTS:
        raise ConvertError(f"unknown output extension {ext!r}; valid: {', '.join(OUTPUT_EXTS)}")
    if batch_size < 1:
        raise ConvertError(f"batch size must be >= 1, got {batch_size}")
    if quality is not None and not 1 <= quality <= 100:
        raise ConvertError(f"quality must be within 1-100, got {quality}")


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_inputs(input, paths: Optional[Sequence] = None,
                storage_options: Optional[Dict[str, Any]] = None) -> Inputs:
    """Resolve INPUT to the folder its outputs mirror and the names of its images in it.

    Args:
        input: a folder (searched recursively), a single image file, either local or a URL
            (``s3://bucket/photos/``), or "-" with ``paths`` (local files, e.g. read from
            stdin), mirrored relative to their common folder.
        storage_options: fsspec options for URLs.

    Raises:
        ConvertError: nothing to convert, or INPUT does not exist.
    """
    if str(input) == "-":
        return _listed_inputs(paths)
    try:
        return _folder_inputs(input, storage_options)
    except OSError as e:
        raise ConvertError(f"cannot list the input {input}: {e}") from None


def _folder_inputs(input, storage_options) -> Inputs:
    where = Folder(input, storage_options)
    if where.is_file():
        folder, name = split_location(input, storage_options)
        if folder.local and not _is_image_name(name) and _is_video(folder.join(name)):
            return Inputs(folder, [], whole_folder=False, videos=[name])
        return Inputs(folder, [name], whole_folder=False)
    if where.is_dir():
        names = where.list(keep=_is_image_name)
        videos = _local_videos(where)
        if not names and not videos:
            raise ConvertError(f"{input} holds no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) "
                               "and no videos (mp4, mov, m4v, mkv, webm, avi)")
        return Inputs(where, names, videos=videos)
    raise ConvertError(f"input {input} does not exist")


def _local_videos(where: Folder) -> List[str]:
    """Relative names of the videos in a local folder (by name or content; image files are not opened)."""
    if not where.local:
        return []
    from ..data.video import list_videos  # here, not at the top: the data package loads torch, which a
    #                                       Ray driver planning object-storage jobs never needs

    root = where.root
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in list_videos(root, skip_suffixes=IMAGE_EXTENSIONS)]


def _is_video(path: str) -> bool:
    from ..data.video import is_video_file  # see _local_videos

    return is_video_file(path)


def _listed_inputs(paths: Optional[Sequence]) -> Inputs:
    files = [str(p) for p in (paths or []) if str(p).strip()]
    if not files:
        raise ConvertError("no input paths were given on standard input")
    urls = [p for p in files if is_url(p)]
    if urls:
        raise ConvertError(f"paths read from standard input must be local files, got {urls[0]}; "
                           "give a URL folder as INPUT instead")
    missing = [p for p in files if not os.path.isfile(p)]
    if missing:
        raise ConvertError(f"{len(missing)} listed input(s) are not files: " + ", ".join(missing[:10]))
    files = [os.path.abspath(p) for p in files]
    base = os.path.commonpath([os.path.dirname(p) for p in files])
    names = [os.path.relpath(p, base).replace(os.sep, "/") for p in files]
    videos = [n for n, p in zip(names, files) if not _is_image_name(n) and _is_video(p)]
    return Inputs(Folder(base), [n for n in names if n not in set(videos)], whole_folder=False, videos=videos)


def output_name(name: str, ext: str) -> str:
    """The output's relative name for input ``name``: the same, or with its extension replaced."""
    if ext == "same":
        return name
    stem, _dot, _old = name.rpartition(".")
    return f"{stem or name}.{ext}"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/" + os.sep) + ("/" if is_url(folder) else os.sep))


def _refuse_output_in_input(inputs: Inputs, output: Folder, in_place_ok: bool) -> None:
    if not inputs.whole_folder or in_place_ok or inputs.folder.local != output.local:
        return
    base = inputs.folder.root
    same = output.root == base or (output.local and os.path.realpath(output.root) == os.path.realpath(base))
    inside = _inside(output.root, base) or (output.local and _inside(os.path.realpath(output.root),
                                                                    os.path.realpath(base)))
    if same or inside:
        raise ConvertError(
            f"output {output} is {'the input folder' if same else 'inside the input folder'} {base}; choose an "
            "output folder outside it (or pass --in-place-ok to allow it: inputs are still never overwritten)")


def plan(inputs: Inputs, output: Folder, ext: str, overwrite: bool, in_place_ok: bool):
    """Pair inputs with outputs and apply the safety rules.

    For a folder input, OUTPUT may not be the folder or inside it unless ``in_place_ok``; for any
    input, an output that would replace an input file is a failure for that file; outputs that
    exist are skipped unless ``overwrite``.

    Returns:
        (todo: list of :class:`Item`, skipped count, failures: list of (input, reason)).
    """
    _refuse_output_in_input(inputs, output, in_place_ok)
    src_root = inputs.folder
    same_store = src_root.local == output.local
    real = (lambda p: os.path.realpath(p)) if output.local else (lambda p: p)
    input_locations = {real(src_root.join(n)) for n in inputs.names} if same_store else set()
    out_prefix = None  # earlier outputs inside the input tree are not inputs
    if same_store and inputs.whole_folder and _inside(output.root, src_root.root) and output.root != src_root.root:
        out_prefix = os.path.relpath(output.root, src_root.root).replace(os.sep, "/") + "/" if output.local \
            else output.root[len(src_root.root) + 1:] + "/"
    try:
        existing = output.names() if not overwrite else set()
    except OSError as e:
        raise ConvertError(f"cannot list the output {output}: {e}") from None
    todo, skipped, failures, seen = [], 0, [], {}
    for name in inputs.names:
        if out_prefix is not None and name.startswith(out_prefix):
            continue
        dst = output_name(name, ext)
        where = output.join(dst)
        if real(where) in input_locations:
            failures.append((src_root.join(name), f"its output {where} would overwrite an input file; use another "
                                                  "--ext or output folder"))
            continue
        if dst in seen:
            failures.append((src_root.join(name), f"its output {where} is also the output of "
                                                  f"{src_root.join(seen[dst])}; use --ext same"))
            continue
        seen[dst] = name
        if dst in existing:
            skipped += 1
            continue
        todo.append(Item(name, dst))
    return todo, skipped, failures


def write_failures_file(output: Folder, failures: List[Tuple[str, str]]) -> None:
    """Write ``failed.jsonl`` (one {"path", "reason"} per line), or remove a previous run's list.

    A list identical to the one already there is not rewritten: a rerun that finds nothing new
    writes nothing.
    """
    if not failures:
        if output.exists(FAILED_FILE):
            output.delete(FAILED_FILE)  # a previous run's list; everything it named has now been handled
        return
    text = "".join(json.dumps({"path": p, "reason": r}, ensure_ascii=False) + "\n" for p, r in failures)
    try:
        if output.read_text(FAILED_FILE) == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    output.put_text(FAILED_FILE, text)


def merge_summaries(parts: Sequence[ConvertSummary]) -> ConvertSummary:
    """One summary for a job split over processes (rank 0's part carries the planning counts)."""
    merged = ConvertSummary(output=parts[0].output, total=parts[0].total, skipped=parts[0].skipped)
    for p in parts:
        merged.converted += p.converted
        merged.failures.extend(p.failures)
        merged.seconds = max(merged.seconds, p.seconds)
        merged.interrupted = merged.interrupted or p.interrupted
    return merged
