"""The local engine: convert a folder in this process, with decode/encode threads around the
network (also each process's share under torchrun). ``Translator.translate_folder`` runs it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from ..data.discover import list_images
from ..formats import DEFAULT_MAX_PIXELS
from ..storage import Folder
from .plan import (DEFAULT_BATCH_SIZE, ConvertError, ConvertSummary, Item, StreamOptions, check_options,
                   list_inputs, plan, record_failure, write_failures_file)
from .stream import Stream
from .videos import add_videos, convert_video_file, is_video_file_job, plan_videos, video_pairs


def default_workers() -> int:
    """Decode/encode threads when not given: from the CPU count, 2 to 8."""
    return max(2, min(8, (os.cpu_count() or 2)))


def instance_maps(labels, instance_dir) -> Optional[Dict[str, str]]:
    """relative name without extension -> instance map file, for label translators that need them."""
    if labels is None or not labels["instance_channel"]:
        if instance_dir is not None:
            raise ConvertError("--instance-dir is only for translators trained with instance maps")
        return None
    if instance_dir is None or not Path(instance_dir).is_dir():
        raise ConvertError("this translator was trained with instance boundaries: give the folder of instance-ID "
                           f"maps with --instance-dir (got {instance_dir})")
    folder = Path(instance_dir)
    return {p.relative_to(folder).with_suffix("").as_posix(): str(p) for p in list_images(folder)}


def convert(translator, input, output, *, direction: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE,
            ext: str = "same", quality: Optional[int] = None, overwrite: bool = False,
            in_place_ok: bool = False, resize=None, max_pixels: Optional[int] = None,
            workers: Optional[int] = None, paths: Optional[Sequence] = None, progress: bool = True,
            shard: Tuple[int, int] = (0, 1), write_failures: bool = True,
            clean_temp: bool = True, after_plan=None, instance_dir=None,
            storage_options: Optional[Dict[str, Any]] = None, video=None) -> ConvertSummary:
    """Translate every image (and video) of ``input`` into ``output``, mirroring relative paths.

    Args:
        translator: a loaded :class:`translate.Translator`.
        input: folder (recursive) or single file, a local path or a URL (``s3://bucket/in/``),
            or "-" with ``paths`` (local files).
        output: output folder, a local path (created) or a URL.
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
        storage_options: fsspec options (credentials, ``endpoint_url``) for URL inputs/outputs.
        video: :class:`translate.video_options.VideoOptions` for the videos among local inputs (each
            becomes a video of the same name); ``convert(t, "clip.mp4", "out.mp4")`` writes one file.

    Returns:
        ConvertSummary; its ``failures`` are also written to ``output/failed.jsonl``.
    """
    check_options(ext, batch_size, quality)
    opts = StreamOptions(translator.pick_direction(direction), batch_size, quality, resize,
                         DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, workers or default_workers(),
                         instance_maps(getattr(translator, "labels", None), instance_dir))
    if is_video_file_job(input, output, paths):
        return convert_video_file(translator, input, output, opts, video, overwrite, progress)
    out = Folder(output, storage_options)
    inputs = list_inputs(input, paths, storage_options)
    todo, skipped, failures = plan(inputs, out, ext, overwrite, in_place_ok)
    vtodo, vskipped, vfailures = plan_videos(inputs, out, overwrite, in_place_ok)
    if after_plan is not None:
        after_plan()
    rank, world = shard
    main = rank == 0
    summary = ConvertSummary(output=out.root, total=len(inputs.names) + len(inputs.videos) if main else 0,
                             skipped=skipped + vskipped if main else 0, failures=failures + vfailures if main else [])
    out.make()
    if clean_temp:
        out.clean_temp()
    add_videos(summary, translator, video_pairs(inputs, out, vtodo[rank::world]), video, opts, overwrite, progress)
    if not summary.interrupted:
        run_local(translator, inputs.folder, out, todo[rank::world], opts, summary, progress)
    if write_failures:
        write_failures_file(out, summary.failures)
    return summary


def run_local(translator, inputs: Folder, output: Folder, todo, opts: StreamOptions, summary: ConvertSummary,
              progress: bool) -> None:
    """Convert ``todo`` in this process, counting into ``summary`` (Ctrl-C sets ``interrupted``)."""
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", disable=not progress or None, file=sys.stderr, dynamic_ncols=True)

    def on_done(item: Item, error: Optional[str]) -> None:
        if error is None:
            summary.converted += 1
        else:
            record_failure(summary, inputs.join(item.src), error)
            bar.set_postfix(failed=summary.failed, refresh=False)
        bar.update(1)

    t0 = time.perf_counter()
    try:
        Stream(translator, inputs, output, opts, on_done).run(todo)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0

