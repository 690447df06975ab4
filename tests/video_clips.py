"""Short test videos made with PyAV: moving shapes, optional sound, variable frame rate, rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def shapes_frame(i: int, width: int, height: int) -> np.ndarray:
    """A frame of a square and a disc moving over a gradient: (H, W, 3) uint8."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    np.full_like(x, (40 * i) % 256)], axis=2).astype(np.uint8)
    s = max(2, min(width, height) // 4)
    x0, y0 = (3 * i) % max(1, width - s), (2 * i) % max(1, height - s)
    img[y0:y0 + s, x0:x0 + s] = (255, 40, 40)
    cy, cx = height // 2, (width - 1 - 2 * i) % width
    img[(y - cy) ** 2 + (x - cx) ** 2 < (s // 2) ** 2] = (30, 220, 90)
    return img


def make_clip(path: Path, frames: int = 8, width: int = 48, height: int = 32, codec: str = "libx264",
              pix_fmt: str = "yuv420p", rate: int = 10, audio: Optional[str] = "aac",
              pts: Optional[Sequence[int]] = None, time_base: Fraction = Fraction(1, 1000),
              rotation: int = 0, subtitles: bool = False, options: Optional[dict] = None) -> Path:
    """Write a short clip. ``pts`` (in ``time_base``) gives a variable frame rate; ``audio`` is an
    encoder name ("aac", "libopus") or None; ``rotation`` is written as display metadata."""
    import av

    pts = list(pts) if pts is not None else [int(round(i / rate / time_base)) for i in range(frames)]
    duration = float((pts[-1] + 1 / rate / time_base) * time_base)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate, options=options or ({"qp": "0"} if codec == "libx264" else {}))
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = time_base
        if rotation:
            vs.set_display_rotation(rotation)
        aus = None
        if audio:
            aus = out.add_stream(audio, rate=48000)
            aus.layout = "mono"
        srt = _subtitle_source(av, path) if subtitles else None
        sub = out.add_stream_from_template(srt.streams.subtitles[0]) if srt else None
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(shapes_frame(i, width, height), format="rgb24")
            f.pts, f.time_base = p, time_base
            for pkt in vs.encode(f):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        if aus is not None:
            _write_tone(av, out, aus, duration)
        if sub is not None:
            for pkt in srt.demux(srt.streams.subtitles[0]):
                if pkt.dts is not None:
                    pkt.stream = sub
                    out.mux(pkt)
            srt.close()
    return path


def _subtitle_source(av, path: Path):
    """Two SubRip cues, opened as an input whose packets are muxed into the clip (Matroska)."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,100 --> 00:00:00,400\nHello\n\n2\n00:00:00,500 --> 00:00:00,700\nWorld\n")
    return av.open(str(srt))


def _write_tone(av, out, stream, seconds: float) -> None:
    n = int(48000 * seconds)
    t = np.arange(n) / 48000.0
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    step = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name
    for start in range(0, n, step):
        chunk = samples[start:start + step]
        if fmt.startswith("flt") and fmt.endswith("p"):
            frame = av.AudioFrame.from_ndarray(chunk[None], format=fmt, layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start
        frame.time_base = Fraction(1, 48000)
        for pkt in stream.encode(frame):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)


def probe(path: Path) -> dict:
    """What a test compares before and after conversion: video timestamps, size, rotation,
    frame count, and the bytes of every audio packet."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        times, frames, rot = [], [], None
        for f in c.decode(vs):
            times.append(Fraction(f.pts) * Fraction(f.time_base))
            frames.append(f.to_ndarray(format="rgb24"))
            rot = f.rotation if rot is None else rot
        size = (vs.codec_context.width, vs.codec_context.height)
        streams = [s.type for s in c.streams]
        duration = (c.duration, vs.duration and Fraction(vs.duration) * Fraction(vs.time_base))
    audio, subs = [], []
    with av.open(str(path)) as c:
        for kind, found in (("audio", audio), ("subtitles", subs)):
            for stream in getattr(c.streams, kind)[:1]:
                for pkt in c.demux(stream):
                    if pkt.dts is not None:
                        found.append((bytes(pkt), Fraction(pkt.pts) * Fraction(pkt.time_base)))
                c.seek(0)
    return {"times": times, "frames": frames, "size": size,
            "rotation": rot or 0, "audio": audio, "subtitles": subs, "streams": streams, "duration": duration}


def identity_translator(seen: Optional[list] = None):
    """A Translator whose generator returns its input: outputs equal inputs exactly (uint8 in
    [-1, 1] and back is exact). ``seen`` collects the (B, C, H, W) shapes the network was given."""
    import torch

    from translate.translator import Translator

    class Identity(torch.nn.Module):
        config = {"input_nc": 3, "output_nc": 3}

        def forward(self, x):
            if seen is not None:
                seen.append(tuple(x.shape))
            return x

    doc = {"method": "identity", "preprocessing": {"input_nc": 3, "output_nc": 3, "size_multiple": 1},
           "_folder": "."}
    return Translator(doc, {"a2b": Identity()}, torch.device("cpu"))
