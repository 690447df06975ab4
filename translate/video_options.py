"""The options of a video conversion (``translate convert`` on videos, ``Translator.translate_video``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .data.video_write import check_codec
from .errors import ArgumentError
from .temporal import DEFAULT_STRENGTH, make_smoother


@dataclass
class VideoOptions:
    """Video-only options of ``translate convert`` (see docs/video.md).

    Attributes:
        codec: output codec name (:data:`translate.data.video_write.CODECS`); None: H.264, or
            VP9 for a .webm output.
        crf: quality of lossy codecs (lower is better); None: the codec's default.
        frames: (start, end) frame indices to convert, end exclusive or None (previews); the
            output then starts at time 0.
        every: convert every N-th frame (previews; kept frames keep their timestamps).
        temporal: "none" or "flow" (see :mod:`translate.temporal`).
        temporal_strength: weight of the flow-warped previous output.
    """

    codec: Optional[str] = None
    crf: Optional[int] = None
    frames: Optional[Tuple[int, Optional[int]]] = None
    every: int = 1
    temporal: str = "none"
    temporal_strength: float = DEFAULT_STRENGTH

    def check(self) -> "VideoOptions":
        if self.every < 1:
            raise ArgumentError(f"--every must be >= 1, got {self.every}")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ArgumentError(f"--crf must be within 0-63, got {self.crf}")
        if self.frames is not None:
            start, end = self.frames
            if start < 0 or (end is not None and end <= start):
                raise ArgumentError(f"--frames START:END needs 0 <= START < END, got {start}:{end}")
        if not 0.0 <= self.temporal_strength < 1.0:
            raise ArgumentError(f"--temporal-strength must be within [0, 1), got {self.temporal_strength}")
        try:
            make_smoother(self.temporal, self.temporal_strength)
        except ValueError as e:
            raise ArgumentError(str(e)) from None
        if self.codec not in (None, "auto"):
            check_codec(self.codec)
        return self

    def keeps(self, index: int) -> bool:
        start, end = self.frames or (0, None)
        return index >= start and (end is None or index < end) and (index - start) % self.every == 0

    def done_after(self, index: int) -> bool:
        return self.frames is not None and self.frames[1] is not None and index >= self.frames[1] - 1

    def expected_frames(self, declared: int) -> Optional[int]:
        """How many frames will be converted of a video that declares ``declared`` (0: unknown)."""
        if not declared:
            return None
        start, end = self.frames or (0, None)
        end = declared if end is None else min(end, declared)
        return max(0, -(-(end - start) // self.every))


def parse_frames(text: Optional[str]) -> Optional[Tuple[int, Optional[int]]]:
    """``"START:END"`` (either side may be empty) -> (start, end or None); None stays None."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(start) if start.strip() else 0, int(end) if end.strip() else None
    except ValueError:
        raise ArgumentError(f"--frames takes START:END frame indices (e.g. 0:100 or 50:), got {text!r}") from None
