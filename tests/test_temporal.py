"""Temporal consistency: flow warping, the forward-backward check, the smoother, the warping error."""

import numpy as np
import pytest

from translate.temporal import FlowSmoother, consistent, make_smoother, warp, warping_error


def _texture(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    import cv2

    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def _shifted(img, dx):
    return np.roll(img, dx, axis=1)


def test_warp_with_a_constant_flow_shifts_the_image():
    img = _texture()
    flow = np.zeros(img.shape[:2] + (2,), np.float32)
    flow[..., 0] = -2  # each pixel of the result comes from 2 pixels to the left
    assert np.array_equal(warp(img, flow)[:, 2:], _shifted(img, 2)[:, 2:])


def test_consistency_check_rejects_a_round_trip_that_misses_and_pixels_leaving_the_frame():
    h, w = 20, 30
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -3
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = 3
    ok = consistent(back, fwd)
    assert ok[:, 3:].all() and not ok[:, :3].any()  # the first columns came from outside
    fwd[:, :15, 0] = -3  # the left half does not come back
    assert not consistent(back, fwd)[:, 3:18].any()


def test_smoother_lowers_the_flicker_of_a_flickering_translation():
    base = _texture(seed=1)
    frames = [_shifted(base, 2 * i) for i in range(8)]
    rng = np.random.default_rng(3)
    # a "translation" that flickers: the true output plus fresh noise each frame
    outputs = [np.clip(f.astype(int) + rng.integers(-30, 31, f.shape), 0, 255).astype(np.uint8) for f in frames]
    smoother = FlowSmoother(0.6)
    smoothed = [smoother(i, o) for i, o in zip(frames, outputs)]
    h, w = base.shape[:2]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = -2
    mask = np.zeros((h, w), bool)
    mask[:, 4:-4] = True
    flows, masks = [flow] * 7, [mask] * 7
    before = warping_error(outputs, flows, masks)["warping_error"]
    after = warping_error(smoothed, flows, masks)["warping_error"]
    assert after < 0.6 * before
    assert min(smoother.coverage) > 0.8 and smoothed[0] is outputs[0]


def test_warping_error_is_zero_for_a_perfectly_consistent_video():
    base = _texture()
    frames = [_shifted(base, i) for i in range(4)]
    flow = np.zeros(base.shape[:2] + (2,), np.float32)
    flow[..., 0] = -1
    mask = np.ones(base.shape[:2], bool)
    mask[:, :1] = False
    result = warping_error(frames, [flow] * 3, [mask] * 3)
    assert result["warping_error"] == 0.0 and result["frames"] == 3


def test_modes_and_strength_are_checked():
    assert make_smoother("none") is None
    with pytest.raises(ValueError, match="valid: none, flow"):
        make_smoother("blur")
    with pytest.raises(ValueError, match=r"within \[0, 1\)"):
        FlowSmoother(1.0)


def test_study_camera_flow_is_exact():
    """tools/video_study.py measures the warping error with the camera's exact flow: check it."""
    import importlib.util
    from pathlib import Path

    import cv2

    path = Path(__file__).resolve().parents[1] / "tools" / "video_study.py"
    spec = importlib.util.spec_from_file_location("video_study", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    canvas = cv2.resize(_texture(40, 200, seed=5), (400, 80), interpolation=cv2.INTER_LINEAR)
    size = (64, 48)
    cams = [study.camera(t, 30, size, canvas.shape) for t in (9, 10)]
    frames = [cv2.warpAffine(canvas, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP) for m in cams]
    flow, mask = study.exact_backward_flow(cams[1], cams[0], size)
    assert 0.5 < mask.mean() < 1.0 and np.abs(flow[..., 0]).mean() > 3  # a real move, partly out of view
    err = np.abs(warp(frames[0].astype(np.float32), flow) - frames[1])[mask].mean()
    wrong = np.abs(frames[0].astype(np.float32) - frames[1])[mask].mean()
    assert err < 3 and wrong > 4 * err
