"""``losses.png``: loss curves drawn from ``log.jsonl`` with OpenCV (no plotting dependency)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..data.io import write_image

_SKIP = {"step", "epoch", "lr", "images_per_s"}
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


def read_log(path: Path) -> List[Dict]:
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return records


def plot_losses(log_path: Path, out_path: Path, width: int = 900, panel_height: int = 180) -> Path:
    """One panel per loss (own y scale), x = step; written atomically as PNG."""
    import cv2

    records = read_log(log_path)
    keys = [k for k in (records[0] if records else {}) if k not in _SKIP and isinstance(records[0][k], (int, float))]
    n = max(1, len(keys))
    img = np.full((panel_height * n, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 24, 22
    steps = np.array([r["step"] for r in records], np.float64) if records else np.zeros(0)
    for p, key in enumerate(keys):
        y0 = p * panel_height
        vals = np.array([r.get(key, np.nan) for r in records], np.float64)
        ok = np.isfinite(vals)
        color = _COLORS[p % len(_COLORS)][::-1]  # BGR for OpenCV
        x_px = (left, width - right)
        y_px = (y0 + top, y0 + panel_height - bottom)
        cv2.rectangle(img, (x_px[0], y_px[0]), (x_px[1], y_px[1]), (200, 200, 200), 1)
        cv2.putText(img, key, (left + 6, y0 + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
        if ok.sum() == 0:
            continue
        lo, hi = float(np.min(vals[ok])), float(np.max(vals[ok]))
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        s_lo, s_hi = float(steps.min()), float(max(steps.max(), steps.min() + 1))
        xs = x_px[0] + (steps[ok] - s_lo) / (s_hi - s_lo) * (x_px[1] - x_px[0])
        ys = y_px[1] - (vals[ok] - lo) / (hi - lo) * (y_px[1] - y_px[0])
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
        for text, yy in ((f"{hi:.3g}", y_px[0] + 10), (f"{lo:.3g}", y_px[1])):
            cv2.putText(img, text, (4, yy), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(img, f"step {int(s_lo)}", (x_px[0], y_px[1] + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (80, 80, 80), 1)
        cv2.putText(img, f"{int(s_hi)}", (x_px[1] - 40, y_px[1] + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (80, 80, 80), 1)
    write_image(out_path, img[:, :, ::-1])  # drawn in OpenCV's BGR order; write_image takes RGB
    return Path(out_path)
