"""``losses.png``: loss curves drawn from ``log.jsonl`` with matplotlib (Agg, no display needed).

One panel per logged value, x = optimisation step (integer ticks). Each loss is drawn raw (thin,
faint) and smoothed with a debiased exponential moving average (thick), so the trend of a noisy
GAN loss is readable; a loss whose positive values span more than two decades gets a log scale.
Values logged only now and then (evaluation metrics) are drawn as points joined by a line.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..fsutil import atomic_write_bytes

_SKIP = {"step", "epoch", "lr", "images_per_s"}
SMOOTHING = 0.9  # EMA weight of the past; TensorBoard's default slider is 0.6 on every point
LOG_SCALE_DECADES = 2.0  # positive values spanning more than this many decades: log y axis


def read_log(path: Path) -> List[Dict]:
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return records


def ema(values: Sequence[float], weight: float = SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average: the first points are not pulled towards zero."""
    out, acc, norm = [], 0.0, 0.0
    for v in values:
        acc = weight * acc + (1.0 - weight) * v
        norm = weight * norm + (1.0 - weight)
        out.append(acc / norm)
    return np.asarray(out, dtype=np.float64)


def wants_log_scale(values: Sequence[float]) -> bool:
    """True when every value is positive and they span more than LOG_SCALE_DECADES decades."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return v.size > 1 and bool(np.all(v > 0)) and math.log10(v.max() / v.min()) > LOG_SCALE_DECADES


def loss_keys(records: List[Dict]) -> List[str]:
    """Numeric keys of the log in first-seen order (losses, then e.g. evaluation metrics)."""
    keys: Dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.setdefault(k)
    return list(keys)


def loss_figure(records: List[Dict], width: int = 900, panel_height: int = 180):
    """The matplotlib Figure of ``losses.png`` (one panel per key of :func:`loss_keys`)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    events = [r for r in records if "event" in r]
    records = [r for r in records if "event" not in r]
    keys = loss_keys(records)
    dpi = 100
    fig = Figure(figsize=(width / dpi, panel_height * max(1, len(keys)) / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(max(1, len(keys)), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, key) in enumerate(zip(axes, keys)):
        pts = [(r["step"], float(r[key])) for r in records if key in r and "step" in r
               and isinstance(r[key], (int, float)) and math.isfinite(r[key])]
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        if not pts:
            continue
        steps, vals = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        color = f"C{i % 10}"
        sparse = len(pts) < 0.5 * len(records)  # logged now and then: evaluation records
        log_scale = wants_log_scale(vals)
        if sparse or len(pts) < 3:
            ax.plot(steps, vals, "o-", color=color, markersize=3, linewidth=1, label=key)
        else:
            smooth = 10 ** ema(np.log10(vals)) if log_scale else ema(vals)  # averaged as drawn
            ax.plot(steps, vals, color=color, alpha=0.3, linewidth=0.8, label="raw")
            ax.plot(steps, smooth, color=color, linewidth=1.6, label=f"EMA {SMOOTHING}")
            ax.legend(loc="upper right", fontsize="small", frameon=False)
        if log_scale:
            ax.set_yscale("log")
    mark_events(axes, events, max((r.get("step", 0) for r in records), default=0))
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def mark_events(axes, events: List[Dict], last_step: int) -> None:
    """Shade the span of each health finding (start to end, or to the last step) on every panel and
    name it on the first; mark skipped non-finite steps with a dotted line."""
    starts: Dict[str, int] = {}
    spans = []
    for e in events:
        if e["event"] == "health_start":
            starts[e["diagnostic"]] = e["step"]
        elif e["event"] == "health_end" and e.get("diagnostic") in starts:
            spans.append((e["diagnostic"], starts.pop(e["diagnostic"]), e["step"]))
    spans += [(name, start, max(last_step, start)) for name, start in starts.items()]
    for name, start, end in spans:
        for ax in axes:
            ax.axvspan(start, end, color="red", alpha=0.1, linewidth=0)
        axes[0].annotate(name.replace("_", " "), (start, 1.0), xycoords=("data", "axes fraction"), fontsize="small",
                         color="darkred", va="top")
    for e in events:
        if e["event"] in ("nonfinite_skipped", "nonfinite_stop"):
            for ax in axes:
                ax.axvline(e["step"], color="black", linestyle=":", linewidth=0.8)


def plot_losses(log_path: Path, out_path: Path, width: int = 900, panel_height: int = 180) -> Path:
    """One panel per loss (own y scale), x = step; written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = loss_figure(read_log(log_path), width, panel_height)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(out_path), buf.getvalue())
    return Path(out_path)
