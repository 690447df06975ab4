"""Encode translated frames into a video file and copy the source's other streams unchanged.

:class:`VideoWriter` writes one video stream (frames given with their source timestamps, so a
variable frame rate and the exact timing are kept) plus copies of the source's audio and subtitle
streams (packets remuxed, never re-encoded). It writes to the path it is given; the conversion
job gives it a temporary name and renames the file when it is complete.

Codecs are a plain registry (:data:`CODECS`); :func:`list_codecs` names those whose encoder the
installed FFmpeg has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ArgumentError
from .video import VideoInfo, require_av

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Codec:
    """An output video codec.

    Attributes:
        encoder: FFmpeg encoder name.
        pix_fmt: Pixel format for even frame sizes (odd sizes use ``odd_pix_fmt``).
        odd_pix_fmt: Pixel format for odd sizes (4:2:0 needs even sizes), or None if unsupported.
        crf: Default quality (lower is better), or None for a lossless codec.
        options: Extra encoder options.
        tag: Codec tag for MP4/MOV (e.g. "hvc1", which Apple players need for HEVC).
        min_side: Smallest width or height accepted (libx265 corrupts memory below about 24 pixels).
    """

    encoder: str
    pix_fmt: str
    odd_pix_fmt: Optional[str]
    crf: Optional[int]
    options: Tuple[Tuple[str, str], ...] = ()
    tag: Optional[str] = None
    min_side: int = 1


CODECS: Dict[str, Codec] = {
    "h264": Codec("libx264", "yuv420p", "yuv444p", 18, (("preset", "medium"),)),
    "hevc": Codec("libx265", "yuv420p", "yuv444p", 22, (("preset", "medium"), ("x265-params", "log-level=error")),
                  tag="hvc1", min_side=32),
    "vp9": Codec("libvpx-vp9", "yuv420p", "yuv444p", 32, (("b", "0"), ("row-mt", "1"))),
    "av1": Codec("libsvtav1", "yuv420p", None, 32),
    "ffv1": Codec("ffv1", "bgr0", "bgr0", None, (("level", "3"),)),
}
"""Output codecs by name. H.264 (yuv420p) is the default; FFV1 is lossless (8-bit RGB, bgr0)."""

# Container formats by output file ending; WebM holds only VP8/VP9/AV1 video.
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_WEBM_CODECS = ("vp9", "av1")


def list_codecs() -> List[str]:
    """Names of :data:`CODECS` whose encoder the installed FFmpeg (PyAV's) has."""
    av = require_av()
    names = []
    for name, codec in CODECS.items():
        try:
            av.codec.Codec(codec.encoder, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        names.append(name)
    return names


def container_format(path: PathLike) -> str:
    """FFmpeg muxer for an output file, from its ending (mp4 for endings it does not know)."""
    return FORMATS.get(Path(path).suffix.lower(), "mp4")


def check_codec(name: str) -> str:
    """``name`` when it is a :data:`CODECS` name the installed FFmpeg can encode; else ArgumentError
    listing the valid names, or those this FFmpeg has."""
    if name not in CODECS:
        raise ArgumentError(f"unknown video codec {name!r}; valid: {', '.join(CODECS)}")
    available = list_codecs()
    if name not in available:
        raise ArgumentError(f"video codec {name} ({CODECS[name].encoder}) is not in this FFmpeg; "
                            f"available: {', '.join(available)}")
    return name


def pick_codec(name: Optional[str], path: PathLike) -> str:
    """The codec to write ``path`` with: ``name``, or the default for its container (VP9 for WebM,
    else H.264). Raises ArgumentError for unknown or uninstalled codecs and impossible pairs."""
    fmt = container_format(path)
    if name in (None, "auto"):
        name = "vp9" if fmt == "webm" else "h264"
    check_codec(name)
    if fmt == "webm" and name not in _WEBM_CODECS:
        raise ArgumentError(f"{Path(path).name}: a WebM file holds only {' or '.join(_WEBM_CODECS)} video, "
                            f"not {name}; use --codec vp9 or an .mp4/.mkv output")
    return name


class VideoWriter:
    """Write frames (with their source timestamps) and copied packets into one container.

    Create it when the first frame is known (its size and rotation), then call :meth:`frame`
    and :meth:`packet` in the source's storage order, then :meth:`close`; :meth:`abort` closes
    without caring about the result (the caller deletes the file).

    Args:
        path: File to write (its container is ``format``).
        info: The source's :class:`VideoInfo` (time base, frame rate).
        size: (width, height) of the frames as they will be given (stored orientation).
        rotation: Counter-clockwise display rotation written into the container.
        copy_streams: The source's PyAV streams to copy (audio, subtitles).
        codec: A :data:`CODECS` name.
        crf: Quality for lossy codecs (None: the codec's default).
        format: FFmpeg muxer name (default: from the file ending).
        threads: Encoder threads (0: FFmpeg decides).
    """

    def __init__(self, path: PathLike, info: VideoInfo, size: Tuple[int, int], rotation: int, copy_streams,
                 codec: str = "h264", crf: Optional[int] = None, format: Optional[str] = None, threads: int = 0):
        av = require_av()
        self.path = Path(path)
        spec = CODECS[codec]
        width, height = size
        pix_fmt = spec.pix_fmt if width % 2 == 0 and height % 2 == 0 else spec.odd_pix_fmt
        if pix_fmt is None:
            raise ArgumentError(f"the {codec} encoder needs an even frame size, got {width}x{height}; "
                                "use --codec h264, hevc, vp9 or ffv1")
        if min(width, height) < spec.min_side:
            raise ArgumentError(f"the {codec} encoder needs frames of at least {spec.min_side} pixels on each "
                                f"side, got {width}x{height}; use --codec h264, vp9 or ffv1")
        if spec.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its settings to stderr otherwise
        self.container = av.open(str(self.path), "w", format=format or container_format(self.path))
        try:
            self.stream = self._video_stream(av, spec, info, width, height, pix_fmt, crf, threads)
            if rotation:
                self.stream.set_display_rotation(rotation)
            self.copies = {s.index: self.container.add_stream_from_template(s) for s in copy_streams}
        except BaseException:
            self.container.close()
            raise
        self._format = pix_fmt
        self._durations: Dict[int, int] = {}  # pts -> source frame duration, until its packet is muxed
        self._span = (float("inf"), float("-inf"))  # first pts, last pts + duration (time base units)
        self._held = None  # the last video packet, muxed in _finish_video
        self._first_dts: Optional[int] = None
        self._mp4 = self.container.format.name in ("mp4", "mov")

    def _video_stream(self, av, spec: Codec, info: VideoInfo, width, height, pix_fmt, crf, threads):
        options = dict(spec.options)
        if spec.crf is not None:
            options["crf"] = str(spec.crf if crf is None else crf)
        rate = info.average_rate if info.average_rate and info.average_rate > 0 else Fraction(25)
        stream = self.container.add_stream(spec.encoder, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # the source's time base: frames keep their exact timestamps (variable frame rate too)
        stream.codec_context.time_base = info.time_base
        stream.time_base = info.time_base
        if threads:
            stream.codec_context.thread_count = threads
        if spec.tag and self.container.format.name in ("mp4", "mov", "mov,mp4,m4a,3gp,3g2,mj2"):
            stream.codec_tag = spec.tag
        return stream

    def frame(self, image: np.ndarray, pts: Optional[int], duration: int = 0) -> None:
        """Encode an (H, W, 3) uint8 RGB frame shown at ``pts`` for ``duration`` (in the source's
        time base; the duration of the last frame sets where the video ends)."""
        av = require_av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = pts
        frame.time_base = self.stream.codec_context.time_base
        if duration and pts is not None:
            frame.duration = duration
            self._durations[pts] = duration
        if pts is not None:
            self._span = (min(self._span[0], pts), max(self._span[1], pts + (duration or 0)))
        for packet in self.stream.encode(frame):
            self._mux_video(packet)

    def _mux_video(self, packet) -> None:
        """Give each packet its source frame's duration (encoders guess it from the mean frame rate)
        and mux it; the last packet is held back for :meth:`_finish_video`."""
        duration = self._durations.pop(packet.pts, None) if packet.pts is not None else None
        if duration:
            packet.duration = duration
        if self._first_dts is None:
            self._first_dts = packet.dts
        if self._held is not None:
            self.container.mux(self._held)
        self._held = packet

    def _finish_video(self) -> None:
        """MP4/MOV measure a track from the first packet's decoding time to the last packet's plus its
        duration; with B-frames (decoding times run ahead) and a variable frame rate that only equals
        the source's length when the last packet's duration makes up the difference."""
        last, self._held = self._held, None
        if last is None:
            return
        start, end = self._span
        if (self._mp4 and end > start and last.dts is not None and self._first_dts is not None):
            rest = (end - start) - (last.dts - self._first_dts)
            if rest > 0:
                last.duration = rest
        self.container.mux(last)

    def packet(self, packet, offset: Optional[Fraction] = None) -> None:
        """Copy a packet of a copied stream unchanged (``offset`` seconds earlier, for previews)."""
        out = self.copies.get(packet.stream.index)
        if out is None:
            return
        if offset:
            shift = int(round(offset / Fraction(packet.time_base)))
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = out
        self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (the container's index is written now)."""
        for packet in self.stream.encode(None):
            self._mux_video(packet)
        self._finish_video()
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
