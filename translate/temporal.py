"""Temporal consistency for translated video: optical-flow blending and the warping error.

A translator sees each frame alone, so small changes between input frames can change its output
more than the scene changed: the video flickers. :class:`FlowSmoother` (``--temporal flow``)
warps the previous *output* into the current frame with the optical flow between the *input*
frames (OpenCV's DIS flow), and blends it into the current output where a forward-backward check
says the flow holds (occlusions, scene cuts and motion boundaries fail the check and keep the
current output unchanged).

:func:`warping_error` is the flicker measure of Lai et al. 2018 ("Learning Blind Video Temporal
Consistency"): the mean over frame pairs of the occlusion-masked squared difference between an
output frame and the previous output warped into it.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import cv2
import numpy as np

TEMPORAL_MODES = ("none", "flow")
DEFAULT_STRENGTH = 0.4  # docs/video.md: warping error -66 %, FID within 4 %, SSIM 0.96 to the unsmoothed output

# Forward-backward consistency (Sundaram et al. 2010, as used by Ruder et al. 2016 and Lai et al.
# 2018): the round trip x -> x + b(x) -> x + b(x) + f(x + b(x)) must come back within
# ALPHA * (|b|^2 + |f|^2) + BETA pixels^2.
_FB_ALPHA, _FB_BETA = 0.01, 0.5


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (bilinear, border replicated): (H, W[, C]) -> same."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the flow holds: (H, W) bool from the backward flow (t -> t-1) and forward flow (t-1 -> t).

    False where the round trip misses (occlusions, motion boundaries) or leaves the frame.
    """
    h, w = backward.shape[:2]
    xs, ys = _grid(h, w)
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fwd_at = cv2.remap(forward, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = backward + fwd_at
    bound = _FB_ALPHA * ((backward ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + _FB_BETA
    return inside & ((loop ** 2).sum(-1) <= bound)


DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
DEFAULT_PRESET = "fast"


class DISFlow:
    """OpenCV DIS optical flow between two RGB frames (one instance per thread).

    Args:
        preset: "ultrafast", "fast" or "medium" (OpenCV's DIS presets; docs/video.md compares them).
    """

    def __init__(self, preset: str = DEFAULT_PRESET):
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; valid: {', '.join(DIS_PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from ``src`` to ``dst``: (H, W, 2) float32 with ``src(x) ~ dst(x + flow(x))``."""
        return self._dis.calc(_gray(src), _gray(dst), None)


class FlowSmoother:
    """Blend the previous output, warped by input-frame flow, into each new output.

    Call it on consecutive (input, output) frame pairs of one shot, in order; :meth:`reset`
    between videos. Inputs and outputs are (H, W, C) arrays of the same size (uint8 or float).

    Args:
        strength: weight of the warped previous output where the flow holds, in [0, 1): 0 keeps
            the translator's output; higher values flicker less but lag more behind fast changes.
        preset: the DIS flow preset (see :class:`DISFlow`).
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, preset: str = DEFAULT_PRESET):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"temporal strength must be within [0, 1), got {strength}")
        self.strength = float(strength)
        self._flow = DISFlow(preset)
        self.reset()

    def reset(self) -> None:
        self._prev_in: Optional[np.ndarray] = None
        self._prev_out: Optional[np.ndarray] = None
        self.coverage = []  # fraction of pixels blended, per frame (for reports)

    def __call__(self, inp: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self._prev_in is None or self._prev_in.shape[:2] != inp.shape[:2] or self.strength == 0:
            result = out
        else:
            backward = self._flow(inp, self._prev_in)  # t -> t-1: where each pixel was
            forward = self._flow(self._prev_in, inp)
            mask = consistent(backward, forward)
            self.coverage.append(float(mask.mean()))
            warped = warp(self._prev_out.astype(np.float32), backward)
            weight = (self.strength * mask.astype(np.float32))[..., None]
            blended = out.astype(np.float32) * (1 - weight) + warped * weight
            result = _like(blended, out)
        self._prev_in, self._prev_out = inp, result
        return result


def _like(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if np.issubdtype(ref.dtype, np.integer):
        info = np.iinfo(ref.dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(ref.dtype)
    return values.astype(ref.dtype)


def make_smoother(mode: str, strength: float = DEFAULT_STRENGTH,
                  preset: str = DEFAULT_PRESET) -> Optional[FlowSmoother]:
    """The smoother for ``--temporal MODE`` (None for "none"); ValueError lists the modes."""
    if mode not in TEMPORAL_MODES:
        raise ValueError(f"unknown temporal mode {mode!r}; valid: {', '.join(TEMPORAL_MODES)}")
    return FlowSmoother(strength, preset) if mode == "flow" else None


# ----------------------------------------------------------------------------- measuring


def warping_error(outputs: Iterable[np.ndarray], flows: Iterable[np.ndarray],
                  masks: Iterable[np.ndarray]) -> Dict[str, float]:
    """Warping error (Lai et al. 2018) of a sequence of output frames.

    For each t >= 1: ``sum(M_t * |O_t - warp(O_{t-1}, F_t)|^2) / sum(M_t)`` with the squared
    difference summed over RGB in [0, 1], ``F_t`` the backward flow (t -> t-1) between the
    *input* frames and ``M_t`` the non-occlusion mask; averaged over frames.

    Args:
        outputs: O_0, O_1, ... as (H, W, C) uint8 arrays.
        flows: F_1, F_2, ... (one fewer than outputs), (H, W, 2) float32.
        masks: M_1, M_2, ..., (H, W) bool.

    Returns:
        {"warping_error": mean, "frames": pairs measured, "masked_fraction": mean of M}.
    """
    errors, kept = [], []
    it = iter(outputs)
    prev = next(it).astype(np.float32) / 255.0
    for cur, flow, mask in zip(it, flows, masks):
        cur = cur.astype(np.float32) / 255.0
        diff = ((cur - warp(prev, flow)) ** 2).sum(-1)
        m = mask.astype(np.float32)
        if m.sum() > 0:
            errors.append(float((diff * m).sum() / m.sum()))
            kept.append(float(m.mean()))
        prev = cur
    return {"warping_error": float(np.mean(errors)) if errors else float("nan"), "frames": len(errors),
            "masked_fraction": float(np.mean(kept)) if kept else 0.0}
