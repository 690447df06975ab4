"""Convert video files: decode -> batch frames -> translate -> encode, overlapped in threads.

:func:`convert_video` is one file end to end, :func:`convert_videos` a list of them for
``translate convert`` (which hands videos found among its inputs to it). Guarantees:

- streaming with bounded memory: a reader thread decodes, the calling thread translates a batch
  at a time, a writer thread encodes and muxes; bounded queues between them keep a few batches
  of frames in memory whatever the video's length;
- kept: frame count and every frame's timestamp (variable frame rates included), the frame size
  (odd sizes too), the rotation metadata (frames are turned upright for the network and back),
  and the audio and subtitle streams, whose packets are copied unchanged (no re-encoding);
- nothing half-done: the output is written to a hidden temporary file next to it and renamed
  only when complete; on any failure or interruption the temporary file is deleted (a killed
  process leaves one, which the next ``convert`` into that folder removes); an existing output
  is skipped unless ``overwrite``, so a rerun converts only the videos not finished;
- a corrupt or truncated input raises :class:`translate.data.video.VideoReadError` naming the
  frame where decoding failed; ``convert_videos`` records it and goes on.
"""

from __future__ import annotations

import glob
import os
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .data.video import Frame, VideoReader, VideoReadError, describe_error, quiet, require_av, rotate
from .data.video_write import VideoWriter, container_format, pick_codec
from .errors import ArgumentError
from .fsutil import TEMP_SUFFIX, UMASK, fsync_path
from .frames import translate_batch
from .temporal import make_smoother
from .video_options import VideoOptions, parse_frames  # noqa: F401 - part of this module's API

_END = object()  # end of the stream through a queue
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


@dataclass
class VideoResult:
    """What :func:`convert_video` did: frames written, seconds, or ``skipped`` (output existed)."""

    src: Path
    dst: Path
    frames: int = 0
    seconds: float = 0.0
    skipped: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Another stage failed: this one stops quietly."""


@dataclass
class _Pipeline:
    """The shared state of one conversion: queues, the stop flag and the first error."""

    size: int
    stop: threading.Event = field(default_factory=threading.Event)
    error: Optional[BaseException] = None
    written: int = 0

    def __post_init__(self):
        self.decoded: "queue.Queue" = queue.Queue(self.size)
        self.translated: "queue.Queue" = queue.Queue(self.size)

    def fail(self, err: BaseException) -> None:
        if self.error is None:
            self.error = err
        self.stop.set()

    def put(self, q: "queue.Queue", item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def get(self, q: "queue.Queue"):
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue


def _read_stage(reader: VideoReader, pipe: _Pipeline, options: VideoOptions) -> None:
    """Reader thread: frames to keep (turned upright) and the other streams' packets."""
    try:
        for item in reader.items():
            if not isinstance(item, Frame):
                pipe.put(pipe.decoded, item)
                continue
            if options.keeps(item.index):
                pipe.put(pipe.decoded, (item, rotate(item.image, item.rotation)))
            if options.done_after(item.index):
                break
        pipe.put(pipe.decoded, _END)
    except _Stopped:
        pass
    except BaseException as e:  # noqa: BLE001 - handed to the calling thread, which raises it
        pipe.fail(e)


class _WriteStage:
    """Writer thread: temporal smoothing, turning frames back, encoding, copying packets."""

    def __init__(self, pipe: _Pipeline, reader: VideoReader, tmp: Path, fmt: str, codec: str,
                 options: VideoOptions, bar):
        self.pipe, self.reader, self.tmp, self.fmt, self.codec = pipe, reader, tmp, fmt, codec
        self.options, self.bar = options, bar
        self.smoother = make_smoother(options.temporal, options.temporal_strength)
        self.writer: Optional[VideoWriter] = None
        self.pending: list = []  # packets that come before the first frame (the header needs it)
        self.offset, self.offset_pts = Fraction(0), 0

    def run(self) -> None:
        with quiet():
            self._run()

    def _run(self) -> None:
        try:
            while True:
                item = self.pipe.get(self.pipe.translated)
                if item is _END:
                    break
                if isinstance(item, tuple):
                    self._frame(*item)
                elif self.writer is None:
                    self.pending.append(item)
                else:
                    self._packet(item)
            if self.writer is None:
                raise VideoReadError(self.reader.path, "no frame was selected (check --frames / --every)", 0)
            self.writer.close()
        except _Stopped:
            self._abort()
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread, which raises it
            self._abort()
            self.pipe.fail(e)

    def _open(self, frame: Frame, out) -> None:
        if self.options.frames is not None and frame.time is not None:
            self.offset, self.offset_pts = frame.time, frame.pts or 0
        h, w = out.shape[:2] if frame.rotation % 180 == 0 else out.shape[1::-1]
        self.writer = VideoWriter(self.tmp, self.reader.info, (w, h), frame.rotation, self.reader.copied,
                                  codec=self.codec, crf=self.options.crf, format=self.fmt)
        for packet in self.pending:
            self._packet(packet)
        self.pending = []

    def _frame(self, frame: Frame, upright_in, upright_out) -> None:
        if self.writer is None:
            self._open(frame, upright_out)
        if self.smoother is not None:
            upright_out = self.smoother(upright_in, upright_out)
        pts = None if frame.pts is None else frame.pts - self.offset_pts
        self.writer.frame(rotate(upright_out, -frame.rotation), pts, frame.duration)
        self.pipe.written += 1
        self.bar.update(1)

    def _packet(self, packet) -> None:
        if self.offset and packet.pts is not None and packet.pts * Fraction(packet.time_base) < self.offset:
            return  # sound before the first kept frame of a --frames preview
        self.writer.packet(packet, self.offset)

    def _abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _translate_stage(translator, pipe: _Pipeline, direction, batch_size: int, resize) -> None:
    """Calling thread: batches of upright frames through the network, in order."""
    batch: List[tuple] = []

    def flush():
        outs = translate_batch(translator, [up for _f, up in batch], direction, resize)
        for (frame, up), out in zip(batch, outs):
            pipe.put(pipe.translated, (frame, up, out))
        batch.clear()

    while True:
        item = pipe.get(pipe.decoded)
        if item is _END:
            break
        if not isinstance(item, tuple):
            pipe.put(pipe.translated, item)
            continue
        batch.append(item)
        h, w = item[1].shape[:2]
        # at most the tile pixel budget per network call (large frames go one at a time, tiled if needed)
        if len(batch) >= max(1, min(batch_size, translator.tile_pixels // (h * w))):
            flush()
    if batch:
        flush()
    pipe.put(pipe.translated, _END)


def _temp_path(dst: Path) -> Path:
    """A hidden temp file next to ``dst`` that :func:`translate.fsutil.remove_stale_temp_files` cleans;
    leftovers of a killed run for the same output are removed first."""
    for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    os.chmod(name, 0o666 & ~UMASK)  # the mode a plain open() gives, not mkstemp's 0600
    return Path(name)


def convert_video(translator, src, dst, *, direction: Optional[str] = None, batch_size: int = 4,
                  options: Optional[VideoOptions] = None, overwrite: bool = False, progress: bool = True,
                  resize=None) -> VideoResult:
    """Translate every frame of the video ``src`` into the video ``dst`` (see the module notes).

    Args:
        translator: a loaded :class:`translate.Translator`.
        src: input video (any container and codec FFmpeg decodes).
        dst: output file; its ending picks the container (.mp4, .mov, .mkv, .webm, .avi).
        direction: "a2b"/"b2a" (required for CycleGAN translators).
        batch_size: frames per network call.
        options: :class:`VideoOptions` (codec, crf, frame selection, temporal smoothing).
        overwrite: replace an existing ``dst`` (default: skip it).
        progress: show frames done, frames/s and the time left on stderr.
        resize: see :meth:`translate.Translator.__call__`.

    Raises:
        VideoReadError: the input cannot be decoded (names the frame where it failed).
        ArgumentError: bad options, or a codec the output container or frame size cannot take.
        OSError, av.FFmpegError, RuntimeError: writing or translating failed.
    """
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    options = (options or VideoOptions()).check()
    if dst.exists() and os.path.samefile(src, dst):
        raise ArgumentError(f"the output {dst} is the input video; choose another name")
    if dst.exists() and not overwrite:
        return VideoResult(src, dst, skipped=True)
    direction = translator.pick_direction(direction)
    codec = pick_codec(options.codec, dst)
    require_av()
    t0 = time.perf_counter()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with VideoReader(src) as reader:
        total = options.expected_frames(reader.info.frames)
        pipe = _Pipeline(size=2 * batch_size + 4)
        tmp = _temp_path(dst)
        with tqdm(total=total, unit="frame", desc=src.name, disable=not progress or None, file=sys.stderr,
                  dynamic_ncols=True, leave=False) as bar:
            stage = _WriteStage(pipe, reader, tmp, container_format(dst), codec, options, bar)
            threads = [threading.Thread(target=_read_stage, args=(reader, pipe, options), daemon=True),
                       threading.Thread(target=stage.run, daemon=True)]
            try:
                for t in threads:
                    t.start()
                _run_translate(translator, pipe, direction, batch_size, resize)
                for t in threads:
                    t.join()
                if pipe.error is not None:
                    raise pipe.error
                fsync_path(tmp)
                os.replace(tmp, dst)
                fsync_path(dst.parent)
            except BaseException:
                pipe.stop.set()
                for t in threads:
                    t.join()
                tmp.unlink(missing_ok=True)
                raise
    return VideoResult(src, dst, pipe.written, time.perf_counter() - t0)


def _run_translate(translator, pipe: _Pipeline, direction, batch_size, resize) -> None:
    try:
        _translate_stage(translator, pipe, direction, batch_size, resize)
    except _Stopped:
        pass  # the reader or the writer failed: its error is raised by the caller
    except BaseException as e:
        pipe.fail(e)
        raise


@dataclass
class VideosDone:
    """What :func:`convert_videos` did."""

    converted: int = 0
    skipped: int = 0
    frames: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False


def convert_videos(translator, todo: Sequence[Tuple[Path, Path]], *, options: Optional[VideoOptions] = None,
                   **kwargs) -> VideosDone:
    """Convert (src, dst) video pairs one after the other; a failed video is recorded, not raised.

    ``kwargs`` are those of :func:`convert_video` (direction, batch_size, overwrite, progress,
    resize). Ctrl-C (or SIGTERM turned into KeyboardInterrupt) stops after cleaning up the video
    being written and sets ``interrupted``.
    """
    import av

    done = VideosDone()
    for src, dst in todo:
        try:
            result = convert_video(translator, src, dst, options=options, **kwargs)
        except KeyboardInterrupt:
            done.interrupted = True
            break
        except VideoReadError as e:
            done.failures.append((str(src), e.reason))
            continue
        except ArgumentError as e:
            done.failures.append((str(src), str(e)))
            continue
        except (ValueError, OSError, RuntimeError, av.FFmpegError) as e:
            done.failures.append((str(src), f"cannot convert the video into {dst}: {describe_error(e)}"))
            continue
        done.skipped += result.skipped
        done.converted += not result.skipped
        done.frames += result.frames
    return done
