"""Batch conversion of image folders: ``translate convert`` and ``Translator.translate_folder``.

:func:`convert_folder` is the whole job behind ``translate convert``: load the checkpoint, convert,
and under ``torchrun`` split the files over the processes and merge their results.
:func:`convert` converts with an already loaded translator.

Guarantees:
- inputs are never written to: OUTPUT equal to or inside INPUT is refused unless asked for
  (``in_place_ok``), and even then no output may replace an input file;
- existing outputs are kept (and skipped) unless ``overwrite``: re-running after an interruption
  converts only what is missing;
- every output is written atomically (temp file + rename): no half-written images, ever;
- a bad input file is reported by path and reason, listed in ``OUTPUT/failed.jsonl``, and the
  rest are converted.

Decoding and encoding run in threads (OpenCV releases the GIL) overlapped with the network,
which sees batches of same-size images.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import UserError
from .fsutil import atomic_write_text, remove_stale_temp_files

FAILED_FILE = "failed.jsonl"
OUTPUT_EXTS = ("same", "png", "jpg", "webp", "tif")


class ConvertError(UserError):
    """The conversion cannot start (bad paths, unsafe output); nothing was written."""


@dataclass
class ConvertSummary:
    output: Path
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
            text += f"; failures listed in {self.output / FAILED_FILE}"
        if self.interrupted:
            text += "; INTERRUPTED: run the same command again to finish"
        return text


def list_inputs(input: Union[str, Path], paths: Optional[Sequence[Union[str, Path]]] = None):
    """Resolve INPUT to (base folder, [files]); outputs mirror paths relative to the base.

    Args:
        input: a folder (searched recursively), a single image file, or "-" with ``paths``
            (e.g. read from stdin); listed paths are mirrored relative to their common folder.
    """
    from .data.discover import list_images

    if str(input) == "-":
        files = [Path(p) for p in (paths or []) if str(p).strip()]
        if not files:
            raise ConvertError("no input paths were given on standard input")
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise ConvertError(f"{len(missing)} listed input(s) are not files: " + ", ".join(missing[:10]))
        files = [_abs(p) for p in files]
        base = Path(os.path.commonpath([str(p.parent) for p in files]))
        return base, files
    input = Path(input)
    if input.is_file():
        return _abs(input).parent, [_abs(input)]
    if input.is_dir():
        files = list_images(input) + _list_videos(input)
        if not files:
            raise ConvertError(f"{input} holds no images (jpg, jpeg, png, bmp, tif, tiff, webp) and no videos")
        return _abs(input), [_abs(f) for f in files]
    raise ConvertError(f"input {input} does not exist")


# ---------------------------------------------------------------- videos (translate.video does the work)
def _list_videos(folder: Path) -> List[Path]:
    from .data.io import IMAGE_EXTENSIONS
    from .data.video import list_videos

    return list_videos(folder, skip_suffixes=IMAGE_EXTENSIONS)


def _split_videos(files: List[Path]) -> Tuple[List[Path], List[Path]]:
    """(images, videos) of the input files; videos are recognised by name or content (files named
    like images are taken as images without being opened)."""
    from .data.io import IMAGE_EXTENSIONS
    from .data.video import is_video_file

    videos = [f for f in files if not f.name.lower().endswith(IMAGE_EXTENSIONS) and is_video_file(f)]
    chosen = set(videos)
    return [f for f in files if f not in chosen], videos


def _video_file_job(input, output) -> bool:
    """``convert CKPT clip.mp4 out.mp4``: one video in, and OUTPUT names a video file, not a folder."""
    from .data.video import VIDEO_EXTENSIONS, is_video_file

    return (str(input) != "-" and Path(input).is_file() and is_video_file(input)
            and Path(output).suffix.lower() in VIDEO_EXTENSIONS and not Path(output).is_dir())


def _convert_videos_into(summary: ConvertSummary, translator, todo, video, **kwargs) -> None:
    """Convert the videos of a job and count them in ``summary`` (see translate/video.py)."""
    from .video import convert_videos

    if todo:
        done = convert_videos(translator, todo, options=video, **kwargs)
        summary.converted += done.converted
        summary.skipped += done.skipped
        summary.failures.extend(done.failures)
        summary.interrupted = summary.interrupted or done.interrupted


def _convert_video_file(translator, input, output, direction, batch_size, video, overwrite, progress,
                        resize) -> ConvertSummary:
    """One video into the named output file; a failure is also listed in failed.jsonl next to it."""
    output = Path(output)
    if _real(output) == _real(input):
        raise ConvertError(f"output {output} is the input video; choose another name")
    summary = ConvertSummary(output=output.parent, total=1)
    t0 = time.perf_counter()
    _convert_videos_into(summary, translator, [(_abs(input), _abs(output))], video, direction=direction,
                         batch_size=batch_size, overwrite=overwrite, progress=progress, resize=resize)
    summary.seconds = time.perf_counter() - t0
    if summary.failures:
        write_failures_file(output.parent, summary.failures)
    return summary


def _abs(p) -> Path:
    """Absolute path without resolving symlinks: outputs mirror the paths as the user sees them
    (a folder of symlinks, as ``tools/make_unpaired.py`` makes, keeps its own names)."""
    return Path(os.path.abspath(p))


def _real(p) -> Path:
    return Path(os.path.realpath(p))


def _out_path(src: Path, base: Path, output: Path, ext: str) -> Path:
    rel = src.relative_to(base)
    if ext != "same":
        rel = rel.with_suffix("." + ext)
    return output / rel


def plan(base: Path, files: List[Path], output: Path, ext: str, overwrite: bool, in_place_ok: bool,
         folder_input: bool = True):
    """Pair inputs with outputs and apply the safety rules. Returns (todo, skipped, failures).

    For a folder input, OUTPUT may not be the folder or inside it unless ``in_place_ok``; for any
    input, an output that would replace an input file is a failure for that file.
    """
    out_res = _abs(output)
    if folder_input and not in_place_ok and (out_res == base or base in out_res.parents
                                             or _real(output) == _real(base) or _real(base) in _real(output).parents):
        raise ConvertError(
            f"output {output} is {'the input folder' if out_res == base else 'inside the input folder'} "
            f"{base}; choose an output folder outside it (or pass --in-place-ok to allow it: inputs "
            "are still never overwritten)")
    inputs = {_real(f) for f in files}
    todo, skipped, failures, seen = [], 0, [], {}
    for src in files:
        if folder_input and out_res != base and out_res in src.parents:
            continue  # earlier outputs inside the input tree are not inputs
        dst = _out_path(src, base, output, ext)
        if _real(dst) in inputs:
            failures.append((str(src), f"its output {dst} would overwrite an input file; use another --ext "
                                       "or output folder"))
            continue
        if dst in seen:
            failures.append((str(src), f"its output {dst} is also the output of {seen[dst]}; use --ext same"))
            continue
        seen[dst] = src
        if dst.exists() and not overwrite:
            skipped += 1
            continue
        todo.append((src, dst))
    return todo, skipped, failures


def _fit_format(arr: np.ndarray, dst: Path) -> np.ndarray:
    """Adapt an output array to what its file format stores (JPEG: 8-bit, no alpha)."""
    from .data.io import fit_to_format

    return fit_to_format(arr, dst.suffix)


def convert(translator, input, output, *, direction: Optional[str] = None, batch_size: int = 4,
            ext: str = "same", quality: Optional[int] = None, overwrite: bool = False,
            in_place_ok: bool = False, resize=None, max_pixels: Optional[int] = None,
            workers: Optional[int] = None, paths: Optional[Sequence] = None, progress: bool = True,
            shard: Tuple[int, int] = (0, 1), write_failures: bool = True,
            clean_temp: bool = True, after_plan=None, instance_dir=None, video=None) -> ConvertSummary:
    """Translate every image of ``input`` into ``output``, mirroring relative paths.

    Args:
        translator: a loaded :class:`translate.Translator`.
        input: folder (recursive), single file, or "-" with ``paths``.
        output: output folder (created).
        direction: "a2b"/"b2a" (required for CycleGAN translators).
        batch_size: images per network call (same-size images are grouped).
        ext: "same" (keep each input's format) or png, jpg, webp, tif.
        quality: JPEG/WebP quality 1-100.
        overwrite: replace existing outputs (default: skip them).
        in_place_ok: allow OUTPUT equal to or inside INPUT (inputs are still never replaced).
        resize: see :meth:`Translator.__call__`.
        max_pixels: refuse inputs with more pixels than this (decompression-bomb guard).
        workers: decode/encode threads (default: from the CPU count).
        shard: (rank, world size) under torchrun: every process plans the same job and converts
            every world-th file of it starting at rank, so each file is converted exactly once;
            files that are skipped or fail in planning are counted by rank 0 only.
        write_failures: write ``output/failed.jsonl`` (the torchrun caller writes a merged one).
        clean_temp: remove temp files left in ``output`` by a killed run (the torchrun caller does
            it once, before the ranks start writing).
        after_plan: called once planning is done, before anything is written (under torchrun a
            barrier, so no rank plans while another already writes).
        instance_dir: for label translators trained with instance boundaries: the folder of
            instance-ID maps, matched to the inputs by relative path without extension.
        video: :class:`translate.video.VideoOptions` for the videos among the inputs (each
            becomes a video of the same name); ``convert(t, "clip.mp4", "out.mp4")`` writes one file.

    Returns:
        ConvertSummary; its ``failures`` are also written to ``output/failed.jsonl``.
    """
    from .data.io import DEFAULT_MAX_PIXELS, ImageReadError, read_image, write_image

    if ext not in OUTPUT_EXTS:
        raise ConvertError(f"unknown output extension {ext!r}; valid: {', '.join(OUTPUT_EXTS)}")
    if batch_size < 1:
        raise ConvertError(f"batch size must be >= 1, got {batch_size}")
    if quality is not None and not 1 <= quality <= 100:
        raise ConvertError(f"quality must be within 1-100, got {quality}")
    direction = translator.pick_direction(direction)
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if _video_file_job(input, output):
        return _convert_video_file(translator, input, output, direction, batch_size, video, overwrite,
                                   progress, resize)
    output = Path(output)
    base, files = list_inputs(input, paths)
    files, videos = _split_videos(files)
    folder_input = str(input) != "-" and Path(input).is_dir()
    todo, skipped, failures = plan(base, files, output, ext, overwrite, in_place_ok, folder_input=folder_input)
    vtodo, vskipped, vfailures = plan(base, videos, output, "same", overwrite, in_place_ok, folder_input)
    if after_plan is not None:
        after_plan()
    rank, world = shard
    todo, vtodo = todo[rank::world], vtodo[rank::world]
    skipped, failures = skipped + vskipped, failures + vfailures
    if rank != 0:
        files, videos, skipped, failures = [], [], 0, []
    output.mkdir(parents=True, exist_ok=True)
    if clean_temp:
        remove_stale_temp_files(output)
    summary = ConvertSummary(output=output, total=len(files) + len(videos), skipped=skipped, failures=failures)
    workers = workers or max(2, min(8, (os.cpu_count() or 2)))
    t0 = time.perf_counter()
    _convert_videos_into(summary, translator, vtodo, video, direction=direction, batch_size=batch_size,
                         overwrite=overwrite, progress=progress, resize=resize)
    if summary.interrupted:
        todo = []

    labels = getattr(translator, "labels", None)
    instances = _instance_maps(labels, instance_dir)

    def decode(src: Path):
        if labels is None:
            arr = read_image(src, max_pixels=max_pixels)
            return arr, translator.prepare(arr, direction, resize)
        arr = translator.read(src, max_pixels=max_pixels)  # class IDs, one-hot encoded by prepare
        inst = None
        if instances is not None:
            key = _relative_key(src, base)
            if key not in instances:
                raise ValueError(f"no instance map for it in {instance_dir} (matched by relative path)")
            inst = translator.read(instances[key], max_pixels=max_pixels)
        return arr, translator.prepare(arr, direction, resize, instance=inst)

    def encode(arr: np.ndarray, dst: Path) -> None:
        write_image(dst, _fit_format(arr, dst), quality=quality)

    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", disable=not progress or None, file=sys.stderr, dynamic_ncols=True)
    window = max(2 * batch_size, 2 * workers)
    pending_writes: deque = deque()
    groups: "OrderedDict[tuple, list]" = OrderedDict()

    def fail(src, reason):
        summary.failures.append((str(src), reason))
        bar.set_postfix(failed=summary.failed, refresh=False)

    def drain_writes(limit: int) -> None:
        while len(pending_writes) > limit:
            src, dst, fut = pending_writes.popleft()
            try:
                fut.result()
                summary.converted += 1
            except (OSError, ValueError) as e:
                fail(src, f"cannot write {dst}: {e}")
            bar.update(1)

    def run_group(items) -> None:
        x = torch.stack([it[2][0] for it in items])
        try:
            y = translator.translate_tensor(x, direction)
        except RuntimeError as e:  # e.g. out of memory on one batch: report, keep going
            for src, *_ in items:
                fail(src, f"translation failed: {e}")
                bar.update(1)
            return
        for (src, dst, (x_i, alpha, dtype, squeeze), hw), y_i in zip(items, y):
            arr = translator.finish(y_i, hw, alpha, dtype, squeeze)
            pending_writes.append((src, dst, writer.submit(encode, arr, dst)))
        drain_writes(2 * workers)

    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as reader, \
            ThreadPoolExecutor(max(1, workers // 2), thread_name_prefix="encode") as writer:
        inflight: deque = deque()
        queue = iter(todo)
        try:
            while True:
                while len(inflight) < window:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    inflight.append((nxt[0], nxt[1], reader.submit(decode, nxt[0])))
                if not inflight:
                    break
                src, dst, fut = inflight.popleft()
                try:
                    arr, prepared = fut.result()
                except ImageReadError as e:
                    fail(src, e.reason)
                    bar.update(1)
                    continue
                except ValueError as e:  # e.g. a channel layout the translator cannot use
                    fail(src, str(e))
                    bar.update(1)
                    continue
                key = tuple(prepared[0].shape)
                group = groups.setdefault(key, [])
                group.append((src, dst, prepared, arr.shape[:2]))
                pixels = key[-1] * key[-2] * len(group)
                if len(group) >= batch_size or pixels >= translator.tile_pixels:
                    run_group(groups.pop(key))
                elif len(groups) > window:  # many different sizes: flush the oldest group
                    run_group(groups.pop(next(iter(groups))))
            while groups:
                run_group(groups.pop(next(iter(groups))))
            drain_writes(0)
        except KeyboardInterrupt:
            summary.interrupted = True
            for _s, _d, fut in inflight:
                fut.cancel()
            drain_writes(0)  # finish what is being written (each write is atomic anyway)
        finally:
            bar.close()
            summary.seconds = time.perf_counter() - t0
            if write_failures:
                write_failures_file(output, summary.failures)
    return summary


def _relative_key(src: Path, base: Path) -> str:
    try:
        rel = Path(src).resolve().relative_to(Path(base).resolve())
    except ValueError:
        rel = Path(Path(src).name)
    return rel.with_suffix("").as_posix()


def _instance_maps(labels, instance_dir):
    """relative path without extension -> instance map file, for label translators that need them."""
    from .data.discover import list_images

    if labels is None or not labels["instance_channel"]:
        if instance_dir is not None:
            raise ConvertError("--instance-dir is only for translators trained with instance maps")
        return None
    if instance_dir is None or not Path(instance_dir).is_dir():
        raise ConvertError("this translator was trained with instance boundaries: give the folder of instance-ID "
                           f"maps with --instance-dir (got {instance_dir})")
    folder = Path(instance_dir)
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in list_images(folder)}


def merge_summaries(parts: Sequence[ConvertSummary]) -> ConvertSummary:
    """One summary for a job split over processes (rank 0's part carries the planning counts)."""
    merged = ConvertSummary(output=parts[0].output, total=parts[0].total, skipped=parts[0].skipped)
    for p in parts:
        merged.converted += p.converted
        merged.failures.extend(p.failures)
        merged.seconds = max(merged.seconds, p.seconds)
        merged.interrupted = merged.interrupted or p.interrupted
    return merged


def write_failures_file(output: Path, failures: List[Tuple[str, str]]) -> None:
    path = output / FAILED_FILE
    if failures:
        atomic_write_text(path, "".join(json.dumps({"path": p, "reason": r}) + "\n" for p, r in failures))
    elif path.exists():
        path.unlink()  # a previous run's list; everything it named has now been handled


@dataclass
class ConvertJob:
    """What :func:`convert_folder` did: the (merged) summary and how many processes shared it."""

    summary: ConvertSummary
    processes: int = 1
    is_main: bool = True  # this process reports the job (rank 0 under torchrun)

    def line(self) -> str:
        procs = f" by {self.processes} processes" if self.processes > 1 else ""
        return self.summary.line() + procs


def convert_folder(checkpoint, input, output, *, device: Optional[str] = None, precision: str = "fp32",
                   tile_pixels: Optional[int] = None, tile_overlap: Optional[int] = None,
                   progress: bool = True, backend: str = "torch", onnx=None, compile: bool = False,
                   **options) -> ConvertJob:
    """Load ``checkpoint`` and translate every image of ``input`` into ``output``.

    Launched by ``torchrun``, every process loads the translator on its own device, plans the
    same job and converts its share of the files (each file exactly once); rank 0 removes
    leftover temp files first, then merges the summaries and writes ``failed.jsonl``. SIGTERM
    stops the job like Ctrl-C: what is being written is finished, and a rerun completes it.

    Args:
        checkpoint: a run folder or its ``translator/`` folder.
        input, output: see :func:`convert`.
        device: "cpu", "cuda", "cuda:N" (default: CUDA when available; under torchrun each
            process takes its local GPU).
        precision: "fp32", "bf16" or "fp16".
        tile_pixels, tile_overlap: see :meth:`translate.Translator.load` (None: its defaults).
        progress: show a progress bar (rank 0 only under torchrun).
        backend, onnx, compile: see :meth:`translate.Translator.load`.
        **options: the options of :func:`convert` (direction, batch_size, ext, quality,
            overwrite, in_place_ok, resize, max_pixels, workers, paths).

    Returns:
        ConvertJob with the merged summary (``interrupted`` set when stopped by a signal).
    """
    import signal

    from . import distributed as D
    from .runtime import resolve_device
    from .translator import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_PIXELS, Translator

    info = D.DistInfo()
    if D.launched_by_torchrun():  # torchrun: each process converts its share of the files
        want = resolve_device(device)
        info = D.setup(want)
        device = D.rank_device(want, info)
    try:
        t = Translator.load(checkpoint, device=device, precision=precision,
                            tile_pixels=DEFAULT_TILE_PIXELS if tile_pixels is None else tile_pixels,
                            tile_overlap=DEFAULT_TILE_OVERLAP if tile_overlap is None else tile_overlap,
                            backend=backend, onnx=onnx, compile=compile)
        if info.enabled:
            if info.is_main and Path(output).is_dir():
                remove_stale_temp_files(output)  # once, before any rank starts writing
            D.barrier(info)

        def on_term(signum, _frame):
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGTERM, on_term)
        try:
            summary = convert(t, input, output, progress=progress and info.is_main,
                              shard=(info.rank, info.world_size), write_failures=not info.enabled,
                              clean_temp=not info.enabled,
                              after_plan=(lambda: D.barrier(info)) if info.enabled else None, **options)
        finally:
            signal.signal(signal.SIGTERM, old)
        if info.enabled:
            summary = merge_summaries(D.gather_objects(summary, info))
            if info.is_main:
                write_failures_file(Path(output), summary.failures)
    finally:
        D.shutdown()
    return ConvertJob(summary, info.world_size if info.enabled else 1, info.is_main)
