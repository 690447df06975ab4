"""The videos among a conversion's inputs: planned with the images' rules, converted by
:mod:`translate.video` into videos of the same name (local folders; PyAV, the [video] extra)."""

from __future__ import annotations

import os
import time
from typing import List, Tuple

from ..data.video import VIDEO_EXTENSIONS, is_video_file
from ..storage import Folder, is_url
from ..video import convert_videos
from .plan import ConvertError, ConvertSummary, Inputs, Item, StreamOptions, plan, write_failures_file


def is_video_file_job(input, output, paths) -> bool:
    """``convert CKPT clip.mp4 out.mp4``: one local video in, and OUTPUT names a video file, not a folder."""
    if str(input) == "-" or paths or is_url(str(input)) or is_url(str(output)):
        return False
    return (os.path.isfile(input) and is_video_file(input)
            and os.path.splitext(str(output))[1].lower() in VIDEO_EXTENSIONS and not os.path.isdir(output))


def convert_video_file(translator, input, output, opts: StreamOptions, video, overwrite: bool,
                       progress: bool) -> ConvertSummary:
    """One video into the named output file; a failure is also listed in failed.jsonl next to it."""
    src, dst = os.path.abspath(input), os.path.abspath(output)
    if os.path.realpath(src) == os.path.realpath(dst):
        raise ConvertError(f"output {output} is the input video; choose another name")
    summary = ConvertSummary(output=os.path.dirname(dst), total=1)
    t0 = time.perf_counter()
    add_videos(summary, translator, [(src, dst)], video, opts, overwrite, progress)
    summary.seconds = time.perf_counter() - t0
    if summary.failures:
        write_failures_file(Folder(os.path.dirname(dst)), summary.failures)
    return summary


def plan_videos(inputs: Inputs, out: Folder, overwrite: bool, in_place_ok: bool):
    """(todo, skipped, failures) of the videos of ``inputs``, as :func:`plan` returns them."""
    if not inputs.videos:
        return [], 0, []
    if not out.local:
        return [], 0, [(inputs.folder.join(v), f"videos are converted into local folders only, not {out}")
                       for v in inputs.videos]
    return plan(inputs.video_inputs(), out, "same", overwrite, in_place_ok)


def video_pairs(inputs: Inputs, out: Folder, todo: List[Item]) -> List[Tuple[str, str]]:
    """(source path, output path) of planned video items."""
    return [(inputs.folder.join(item.src), out.join(item.dst)) for item in todo]


def add_videos(summary: ConvertSummary, translator, pairs: List[Tuple[str, str]], video, opts: StreamOptions,
               overwrite: bool, progress: bool) -> None:
    """Convert (source, output) video pairs and count them in ``summary`` (Ctrl-C sets ``interrupted``)."""
    if not pairs:
        return
    done = convert_videos(translator, pairs, options=video, direction=opts.direction, batch_size=opts.batch_size,
                          overwrite=overwrite, progress=progress, resize=opts.resize)
    summary.converted += done.converted
    summary.skipped += done.skipped
    summary.failures.extend(done.failures)
    summary.interrupted = summary.interrupted or done.interrupted


