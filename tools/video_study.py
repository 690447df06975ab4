#!/usr/bin/env python3
"""Measure video conversion: flicker with and without ``--temporal flow``, and throughput.

Two steps (docs/video.md gives the exact commands and the figures measured with them):

``clip``: build a real clip from a paired dataset's test images (e.g. facades): the photos
(domain A) and their label maps (domain B) are laid side by side into two aligned canvases and a
virtual camera pans and slowly zooms over them. Because the camera moves over a flat picture,
the exact optical flow between any two frames is known (an affine map), so the warping error
needs no estimated flow; the label canvas seen through the same camera gives the ground-truth
output video. Writes ``clip.mp4`` (H.264, CRF 12), ``labels/`` (ground truth, PNG) and
``camera.json`` (one affine map per frame).

``measure``: translate the clip's decoded frames with ``--temporal none`` and ``flow`` at a few
strengths, and report the warping error (Lai et al. 2018) with the exact flow and with
Farneback flow (a second estimate, independent of the DIS flow the smoother uses), the SSIM of
each smoothed output to the unsmoothed one, FID of each output set against the ground truth and
against the unsmoothed set; then time ``convert`` of the video against ``convert`` of the same
frames as PNG files, alternating, in the same process.

    python tools/video_study.py clip --data datasets/facades --out study/
    flock /tmp/translate-measure.lock python tools/video_study.py measure --checkpoint RUN --dir study/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import torch

from translate import metrics
from translate.convert import convert
from translate.data.io import read_image, write_image
from translate.data.video import read_frames
from translate.temporal import consistent, warping_error
from translate.translator import Translator
from translate.video import VideoOptions, convert_video


# ----------------------------------------------------------------------------- the clip


def _canvases(data: Path, images: int, side: int):
    """Photo and label canvases: ``images`` test pairs (A|B side by side) resized to side x side."""
    files = sorted((data / "test").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    if len(files) < images:
        raise SystemExit(f"{data}/test holds {len(files)} images, {images} needed")
    photos, labels = [], []
    for f in files[:images]:
        ab = read_image(f)
        half = ab.shape[1] // 2
        photos.append(cv2.resize(ab[:, :half], (side, side), interpolation=cv2.INTER_AREA))
        labels.append(cv2.resize(ab[:, half:], (side, side), interpolation=cv2.INTER_NEAREST))
    return np.concatenate(photos, axis=1), np.concatenate(labels, axis=1)


def camera(t: int, frames: int, size, canvas_shape) -> np.ndarray:
    """2x3 affine map from frame pixel (x, y, 1) to canvas pixel, for frame ``t``: a pan from left to
    right with a slow zoom in and out (scale 0.85 -> 0.7 -> 0.85 canvas pixels per frame pixel)."""
    w, h = size
    ch, cw = canvas_shape[:2]
    u = t / max(1, frames - 1)
    scale = 0.85 - 0.15 * np.sin(np.pi * u)
    x0 = u * (cw - w * scale - 1)
    y0 = (ch - h * scale) / 2 + 0.1 * ch * np.sin(2 * np.pi * u)
    return np.array([[scale, 0, x0], [0, scale, y0]], dtype=np.float64)


def exact_backward_flow(m_t: np.ndarray, m_prev: np.ndarray, size):
    """(flow t -> t-1, mask): where each pixel of frame t was in frame t-1, and whether it was inside."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = m_t[0, 0] * xs + m_t[0, 1] * ys + m_t[0, 2]
    cy = m_t[1, 0] * xs + m_t[1, 1] * ys + m_t[1, 2]
    inv = cv2.invertAffineTransform(m_prev)
    px = inv[0, 0] * cx + inv[0, 1] * cy + inv[0, 2]
    py = inv[1, 0] * cx + inv[1, 1] * cy + inv[1, 2]
    flow = np.stack([px - xs, py - ys], axis=-1).astype(np.float32)
    mask = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return flow, mask


def make_clip(args) -> None:
    import av

    out = Path(args.out)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.size.split("x"))
    photo, label = _canvases(Path(args.data), args.images, args.side)
    cams = [camera(t, args.frames, size, photo.shape) for t in range(args.frames)]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    with av.open(str(out / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=args.fps, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for t, m in enumerate(cams):
            frame = cv2.warpAffine(photo, m, size, flags=flags, borderMode=cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            gt = cv2.warpAffine(label, m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
            write_image(out / "labels" / f"{t:05d}.png", gt)
        for packet in stream.encode(None):
            container.mux(packet)
    (out / "camera.json").write_text(json.dumps({"size": size, "fps": args.fps, "source": str(args.data),
                                                 "images": args.images, "side": args.side,
                                                 "affine": [m.tolist() for m in cams]}, indent=1))
    print(f"wrote {out / 'clip.mp4'}: {args.frames} frames {size[0]}x{size[1]} at {args.fps} fps")


# ----------------------------------------------------------------------------- measuring


def _to_tensor(frames: List[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def _features(inception, frames: List[np.ndarray]) -> np.ndarray:
    return np.concatenate([inception(_to_tensor(frames[i:i + 16])).numpy() for i in range(0, len(frames), 16)])


def _farneback(cur: np.ndarray, prev: np.ndarray):
    """A second flow estimate (not the DIS flow the smoother uses), with its own consistency mask."""
    g1, g0 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY), cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    back = cv2.calcOpticalFlowFarneback(g1, g0, None, 0.5, 4, 21, 5, 7, 1.5, 0)
    fwd = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 4, 21, 5, 7, 1.5, 0)
    return back, consistent(back, fwd)


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def quality(t: Translator, frames: List[np.ndarray], study: Path, strengths: List[float], presets: List[str],
            batch: int) -> Dict:
    cam = json.loads((study / "camera.json").read_text())
    size = tuple(cam["size"])
    mats = [np.array(m) for m in cam["affine"]]
    exact = [exact_backward_flow(mats[i], mats[i - 1], size) for i in range(1, len(frames))]
    estimated = [_farneback(frames[i], frames[i - 1]) for i in range(1, len(frames))]
    labels = [read_image(p) for p in sorted((study / "labels").glob("*.png"))][:len(frames)]
    inception, _ = metrics.load_inception()
    real = _features(inception, labels)
    _log("flows and ground-truth features done")
    outputs = {"none": list(t.translate_frames(frames, batch_size=batch))}
    for preset in presets:
        for s in strengths:
            outputs[f"flow {s} {preset}"] = list(t.translate_frames(frames, batch_size=batch, temporal="flow",
                                                                    temporal_strength=s, flow_preset=preset))
    _log(f"translated {len(outputs)} output sets")
    feats = {k: _features(inception, v) for k, v in outputs.items()}
    _log("Inception features done")
    rows = {}
    for name, outs in outputs.items():
        rows[name] = {
            "warping_error_exact_flow": warping_error(outs, [f for f, _ in exact], [m for _, m in exact])["warping_error"],
            "warping_error_farneback": warping_error(outs, [f for f, _ in estimated], [m for _, m in estimated])["warping_error"],
            "fid_vs_ground_truth": metrics.fid_from_features(feats[name], real),
            "fid_vs_unsmoothed": metrics.fid_from_features(feats[name], feats["none"]) if name != "none" else 0.0,
            "ssim_vs_unsmoothed": float(metrics.ssim(_to_tensor(outs), _to_tensor(outputs["none"])).mean()),
            "ssim_vs_ground_truth": float(metrics.ssim(_to_tensor(outs), _to_tensor(labels)).mean()),
        }
    rows["input frames (reference)"] = {
        "warping_error_exact_flow": warping_error(frames, [f for f, _ in exact], [m for _, m in exact])["warping_error"],
        "warping_error_farneback": warping_error(frames, [f for f, _ in estimated], [m for _, m in estimated])["warping_error"]}
    base = rows["none"]
    for name, row in rows.items():
        if "fid_vs_ground_truth" not in row:
            continue
        row["warping_error_change"] = row["warping_error_exact_flow"] / base["warping_error_exact_flow"] - 1
        row["fid_change"] = row["fid_vs_ground_truth"] / base["fid_vs_ground_truth"] - 1
    return rows


def throughput(t: Translator, study: Path, frames: List[np.ndarray], batch: int, repeats: int) -> Dict:
    """Same frames, same translator: the video job against PNG files in, PNG files out (alternating)."""
    pngs = study / f"frames_png_{len(frames)}"
    if not pngs.is_dir():
        for i, f in enumerate(frames):
            write_image(pngs / f"{i:05d}.png", f)
    work = study / "timing"
    runs: Dict[str, List[float]] = {"video": [], "png": [], "video_flow": []}
    for _ in range(repeats):
        for kind in runs:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            start = time.perf_counter()
            if kind == "png":
                convert(t, pngs, work / "png", batch_size=batch, progress=False)
            else:
                opts = VideoOptions(temporal="flow" if kind == "video_flow" else "none", frames=(0, len(frames)))
                convert_video(t, study / "clip.mp4", work / "out.mp4", batch_size=batch, options=opts, progress=False)
            runs[kind].append(len(frames) / (time.perf_counter() - start))
    shutil.rmtree(work, ignore_errors=True)
    best = {k: max(v) for k, v in runs.items()}
    return {"frames_per_s": runs, "best": best, "video_over_png": best["video"] / best["png"],
            "video_flow_over_png": best["video_flow"] / best["png"]}


def _machine() -> Dict:
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    model = [line.split(":", 1)[1].strip() for line in run(["lscpu"]).splitlines() if line.startswith("Model name")]
    return {"cpu": model[0] if model else platform.processor(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def measure(args) -> None:
    study = Path(args.dir)
    t = Translator.load(args.checkpoint, device="cpu", precision=args.precision)
    frames = [f.image for f in read_frames(study / "clip.mp4")][:args.max_frames]
    report = {"checkpoint": str(args.checkpoint), "frames": len(frames), "size": list(frames[0].shape[1::-1]),
              "precision": args.precision, "batch_size": args.batch_size, "argv": sys.argv,
              "machine_before": _machine()}
    if not args.skip_quality:
        report["quality"] = quality(t, frames, study, args.strengths, args.presets, args.batch_size)
    if not args.skip_speed:
        report["throughput"] = throughput(t, study, frames, args.batch_size, args.repeats)
    report["machine_after"] = _machine()
    text = json.dumps(report, indent=2)
    (study / args.report).write_text(text)
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clip", help="build the clip from a paired dataset's test split")
    c.add_argument("--data", required=True, help="paired A|B dataset root with a test/ split (facades)")
    c.add_argument("--out", required=True)
    c.add_argument("--frames", type=int, default=240)
    c.add_argument("--fps", type=int, default=24)
    c.add_argument("--size", default="256x192", help="frame WIDTHxHEIGHT")
    c.add_argument("--images", type=int, default=6, help="test images side by side in the canvas")
    c.add_argument("--side", type=int, default=320, help="each image resized to SIDE x SIDE in the canvas")
    c.set_defaults(func=make_clip)
    m = sub.add_parser("measure", help="flicker, quality and throughput on a clip made by `clip`")
    m.add_argument("--checkpoint", required=True)
    m.add_argument("--dir", required=True)
    m.add_argument("--strengths", type=float, nargs="+", default=[0.4, 0.6, 0.8])
    m.add_argument("--presets", nargs="+", default=["fast", "medium"], help="DIS flow presets to compare")
    m.add_argument("--batch-size", type=int, default=4)
    m.add_argument("--max-frames", type=int, default=None, help="use only the first N frames of the clip")
    m.add_argument("--precision", default="fp32")
    m.add_argument("--repeats", type=int, default=2)
    m.add_argument("--report", default="video_study.json", help="file name of the report, in --dir")
    m.add_argument("--skip-quality", action="store_true")
    m.add_argument("--skip-speed", action="store_true")
    m.set_defaults(func=measure)
    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
