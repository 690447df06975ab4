"""Translate a stream of video frames in batches: ``Translator.translate_frames`` and the video job.

Frames are translated as they come (a generator in, a generator out), a batch at a time, so a
long video is never held in memory; padding, tiling of large frames and cropping are the
translator's own (:meth:`translate.Translator.translate_tensor`). With a temporal smoother
(:mod:`translate.temporal`) each output is blended with the previous one in frame order.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Optional

import numpy as np
import torch

from .temporal import DEFAULT_PRESET, DEFAULT_STRENGTH, make_smoother


def translate_batch(translator, images: List[np.ndarray], direction: Optional[str] = None,
                    resize=None) -> List[np.ndarray]:
    """Translate same-size (H, W, C) arrays in one network call; outputs keep each input's dtype and size."""
    if not images:
        return []
    prepared = [translator.prepare(img, direction, resize) for img in images]
    shapes = {tuple(p[0].shape) for p in prepared}
    if len(shapes) > 1:
        raise ValueError(f"frames of one batch must have one size, got {sorted(shapes)}")
    y = translator.translate_tensor(torch.stack([p[0] for p in prepared]), direction)
    return [translator.finish(y_i, img.shape[:2], alpha, dtype, squeeze)
            for img, y_i, (_x, alpha, dtype, squeeze) in zip(images, y, prepared)]


def translate_frames(translator, frames: Iterable[np.ndarray], direction: Optional[str] = None,
                     batch_size: int = 4, temporal: str = "none", temporal_strength: Optional[float] = None,
                     resize=None, flow_preset: str = DEFAULT_PRESET) -> Iterator[np.ndarray]:
    """Translate frames lazily, in order, ``batch_size`` at a time.

    Args:
        translator: a loaded :class:`translate.Translator`.
        frames: (H, W, C) arrays (uint8, uint16 or float in [0, 1]), e.g. from your own decoder.
        direction: "a2b"/"b2a" (required for CycleGAN translators).
        batch_size: frames per network call; a change of frame size starts a new batch.
        temporal: "none" or "flow" (blend the flow-warped previous output, see
            :class:`translate.temporal.FlowSmoother`); frames are taken as one continuous shot.
        temporal_strength: blending weight for "flow" (default
            :data:`translate.temporal.DEFAULT_STRENGTH`).
        resize: see :meth:`translate.Translator.__call__`.
        flow_preset: DIS optical-flow preset for "flow" (see :class:`translate.temporal.DISFlow`).

    Yields:
        One translated array per input frame, same order, size and dtype.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    direction = translator.pick_direction(direction)
    smoother = make_smoother(temporal, DEFAULT_STRENGTH if temporal_strength is None else temporal_strength,
                             flow_preset)
    batch: List[np.ndarray] = []

    def flush():
        outs = translate_batch(translator, batch, direction, resize)
        for inp, out in zip(batch, outs):
            yield smoother(inp, out) if smoother is not None else out
        batch.clear()

    for frame in frames:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frames must be numpy arrays, got {type(frame).__name__}")
        if batch and frame.shape != batch[0].shape:
            yield from flush()
        batch.append(frame)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()
