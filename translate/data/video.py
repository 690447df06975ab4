"""Video files through PyAV (FFmpeg): recognise, probe and decode them frame by frame.

Frames come out as ``(H, W, 3)`` uint8 RGB arrays together with their presentation timestamps
(exact, as :class:`fractions.Fraction` seconds and as ``pts`` in the stream's time base), so a
variable-frame-rate video keeps its timing. The rotation a phone writes into the container is
reported with each frame (counter-clockwise degrees), never silently applied: the caller decides whether to turn
frames upright (:func:`rotate`) and back. Packets of the other streams (sound, subtitles) are
passed through in demux order for :mod:`translate.data.video_write` to copy unchanged.

PyAV is an optional extra (``pip install 'translate-images[video]'``); importing this module
works without it, :func:`require_av` says what to install when a video is actually opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import UserError

PathLike = Union[str, os.PathLike]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
"""File name endings treated as videos (compared case-insensitively); other files are recognised
by content (:func:`sniff_video`)."""

INSTALL_HINT = "install the video extra: pip install 'translate-images[video]' (PyAV)"
_AUDIO_ONLY_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")


class VideoUnavailable(UserError):
    """PyAV is not installed."""


class VideoReadError(Exception):
    """A video cannot be read. ``str(err)`` is ``"{path}: {reason}"``.

    Attributes:
        path: The file.
        reason: What is wrong, in words (names the frame where decoding stopped, when it did).
        frame: Index of the frame where decoding failed, or None (failed before any frame).
    """

    def __init__(self, path: PathLike, reason: str, frame: Optional[int] = None):
        self.path, self.reason, self.frame = Path(path), reason, frame
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.frame))


def require_av():
    """Import and return PyAV, or raise :class:`VideoUnavailable` saying how to install it."""
    try:
        import av
    except ImportError:
        raise VideoUnavailable(f"video files need PyAV: {INSTALL_HINT}") from None
    av.logging.set_level(av.logging.ERROR)  # errors only: they are attached to the exceptions raised
    return av


def quiet():
    """Context manager that keeps FFmpeg's messages off stderr in this thread (errors still reach
    the exceptions PyAV raises, whose text :func:`describe_error` gives)."""
    return require_av().logging.Capture()


def describe_error(err: Exception) -> str:
    """One line for an FFmpeg/OS error: what failed and FFmpeg's own last message, without the path."""
    strerror = getattr(err, "strerror", None)
    log = getattr(err, "log", None)
    text = strerror or (str(err).strip().splitlines() or [type(err).__name__])[-1]
    if log and len(log) == 3 and str(log[2]).strip():
        text += f" ({log[1]}: {str(log[2]).strip()})"
    return text


# ----------------------------------------------------------------------------- recognising


def sniff_video(head: bytes) -> Optional[str]:
    """The container a file's first bytes (at least 12) announce: "mp4", "matroska", "avi", or None.

    MP4/QuickTime ("ftyp" box; audio-only brands such as M4A excluded), Matroska/WebM (EBML
    header) and AVI (RIFF ... "AVI "). Nothing is decoded.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return None if head[8:12] in _AUDIO_ONLY_BRANDS else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"  # QuickTime files without an ftyp box
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def is_video_file(path: PathLike) -> bool:
    """True when ``path`` is named like a video or its content is one (see :func:`sniff_video`)."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            return sniff_video(f.read(16)) is not None
    except OSError:
        return False


def list_videos(folder: PathLike, skip_suffixes: Tuple[str, ...] = ()) -> List[Path]:
    """Videos under ``folder`` (recursive): named like one, or recognised by content.

    Hidden files and folders are skipped; files whose ending is in ``skip_suffixes`` (e.g. the
    image endings, listed elsewhere) are not opened. Sorted by relative POSIX path.
    """
    folder = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or name.lower().endswith(skip_suffixes) or not path.is_file():
                continue
            if is_video_file(path):
                found.append((path.relative_to(folder).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


# ----------------------------------------------------------------------------- reading


@dataclass
class VideoInfo:
    """What a video holds, from its headers.

    Attributes:
        width, height: Stored frame size (before any rotation).
        time_base: The video stream's time base (``pts * time_base`` = seconds).
        average_rate: Mean frame rate, or None when unknown.
        frames: Frame count the container declares (0 when it does not say).
        duration: Seconds of the video stream (of the whole file when ``duration_is_video`` is
            False), or None when unknown.
        codec: Name of the video codec.
        pix_fmt: Stored pixel format, e.g. "yuv420p".
        format: Container format name(s), as FFmpeg reports them.
        other_streams: ``(index, type, codec)`` of each audio/subtitle/data stream.
    """

    width: int
    height: int
    time_base: Fraction
    average_rate: Optional[Fraction]
    frames: int
    duration: Optional[float]
    codec: str
    pix_fmt: str
    format: str
    other_streams: List[Tuple[int, str, str]] = field(default_factory=list)
    duration_is_video: bool = True  # False: the container's duration (the sound may run longer)


@dataclass
class Frame:
    """A decoded video frame: ``image`` (H, W, 3) uint8 RGB as stored, ``index`` in decode order,
    ``pts`` in the stream's time base (``time`` is the same in seconds), ``duration`` how long it
    is shown (time base units, 0 when unknown), ``rotation`` the counter-clockwise display rotation
    in degrees (0, 90, 180, 270) the container gives it."""

    image: np.ndarray
    index: int
    pts: Optional[int]
    time: Optional[Fraction]
    rotation: int = 0
    duration: int = 0


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Turn an (H, W, ...) array counter-clockwise by a multiple of 90 degrees (contiguous copy)."""
    k = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _rotation_of(frame) -> int:
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


class VideoReader:
    """An open video file: its :class:`VideoInfo`, then its frames and other packets in demux order.

    Use as a context manager. ``items()`` yields :class:`Frame` objects for the (first) video
    stream and PyAV packets for every other stream, in the order they are stored, so a writer
    that handles them in that order keeps the file interleaved.

    Raises:
        VideoReadError: The file cannot be opened, holds no video stream, or decoding fails
            (with the index of the frame where it did).
    """

    def __init__(self, path: PathLike, threads: int = 0):
        av = require_av()
        self.path = Path(path)
        self._av = av
        try:
            with quiet():
                self.container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoReadError(self.path, f"cannot open the video: {describe_error(e)} (corrupt, truncated or "
                                            "not a video)", 0) from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoReadError(self.path, "the file holds no video stream", 0)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        if threads:
            self.stream.codec_context.thread_count = threads
        self.copied = [s for s in self.container.streams
                       if s.index != self.stream.index and s.type in ("audio", "subtitle")]
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        s, cc = self.stream, self.stream.codec_context
        duration, own = _stream_duration(s), True
        if duration is None and self.container.duration:
            duration, own = self.container.duration / 1_000_000, False
        return VideoInfo(
            width=cc.width, height=cc.height,
            time_base=Fraction(s.time_base) if s.time_base else Fraction(1, 90000),
            average_rate=Fraction(s.average_rate) if s.average_rate else None, frames=int(s.frames or 0),
            duration=duration, codec=cc.name, pix_fmt=cc.pix_fmt or "", format=self.container.format.name,
            other_streams=[(c.index, c.type, c.codec_context.name if c.codec_context else "?") for c in self.copied],
            duration_is_video=own)

    def items(self) -> Iterator[Union[Frame, object]]:
        """Frames of the video stream and packets of the copied streams, in storage order."""
        index, last = 0, None
        streams = [self.stream] + self.copied
        try:
            with quiet():
                for packet in self.container.demux(streams):
                    if packet.stream.index != self.stream.index:
                        if packet.dts is not None:  # the last packet of each stream is an empty flush packet
                            yield packet
                        continue
                    for frame in packet.decode():
                        last = self._frame(frame, index)
                        yield last
                        index += 1
        except (self._av.FFmpegError, OSError) as e:
            raise VideoReadError(self.path, f"decoding failed at frame {index}: {describe_error(e)}", index) from None
        self._check_complete(index, last)

    def _frame(self, frame, index: int) -> Frame:
        image = frame.to_ndarray(format="rgb24")
        time = Fraction(frame.pts) * Fraction(frame.time_base) if frame.pts is not None and frame.time_base else None
        return Frame(image, index, frame.pts, time, _rotation_of(frame), int(frame.duration or 0))

    def _check_complete(self, decoded: int, last: Optional[Frame]) -> None:
        """A truncated file often just ends early: compare with the frame count or the duration
        the container declares (Matroska declares no count)."""
        info = self.info
        if decoded == 0:
            raise VideoReadError(self.path, "no frame could be decoded (corrupt or truncated)", 0)
        if info.frames and decoded < info.frames:
            raise VideoReadError(self.path, f"decoding ended at frame {decoded} of the {info.frames} the file "
                                            "declares (truncated or corrupt)", decoded)
        if info.frames or not info.duration or last is None or last.time is None:
            return
        step = 1 / float(info.average_rate) if info.average_rate else 0.1
        start = float(self.stream.start_time * self.stream.time_base) if self.stream.start_time else 0.0
        slack = 1.5 * step if info.duration_is_video else max(2 * step, 0.5)
        if float(last.time) - start + step < info.duration - slack:
            raise VideoReadError(self.path, f"decoding ended at frame {decoded}, {float(last.time):.2f}s into a "
                                            f"{info.duration:.2f}s video (truncated or corrupt)", decoded)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stream_duration(stream) -> Optional[float]:
    """Seconds from the stream header, or from the DURATION tag Matroska muxers write per track."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    try:
        hours, minutes, seconds = str(tag).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (TypeError, ValueError):
        return None


def read_frames(path: PathLike) -> Iterator[Frame]:
    """Decode every frame of a video as :class:`Frame` (stored orientation), for quick scripts."""
    with VideoReader(path) as reader:
        for item in reader.items():
            if isinstance(item, Frame):
                yield item
