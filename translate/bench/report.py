"""The benchmark's report: the human-readable table and the JSON document."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

from ..fsutil import atomic_write_text
from ..methods import get_method
from .measure import bench_spec, benched_methods, convert_what


ISA_NAMES = {"amx": "AMX (bf16 tiles) + AVX-512 BF16", "avx512_bf16": "AVX-512 BF16 (no AMX)",
             "avx512": "AVX-512 without BF16", "avx2": "AVX2", "default": "baseline (no AVX2)"}


def fmt_value(v: Optional[float], unit: str = "") -> str:
    if v is None:
        return "-"
    if unit.endswith("FLOP/s"):
        return fmt_flops(v)
    if v >= 100:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_with_unit(v: Optional[float], unit: str) -> str:
    if unit == "FLOP/s":
        return fmt_flops(v) + "FLOP/s"
    return f"{fmt_value(v, unit)} {unit}"


def fmt_flops(v: Optional[float]) -> str:
    if v is None:
        return "-"
    for scale, name in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if v >= scale:
            return f"{v / scale:.3g} {name}"
    return f"{v:.3g} "


def fmt_bytes(v: Optional[int]) -> str:
    if v is None:
        return "-"
    return f"{v / 2 ** 20:.0f} MiB"


def _row_cells(r: Dict[str, Any], result: Dict[str, Any]) -> tuple:
    """The cells of one row of the table (``auto`` rows show what they computed in)."""
    unit = r["unit"]
    value = fmt_value(r["value"], unit)
    if unit == "FLOP/s":
        value, unit = value.split(" ")[0], value.split(" ")[1] + "FLOP/s"
    psnr_text = "-"
    metric = r["metric"]
    tag = r.get("role") or r.get("backend") or r.get("variant")
    if tag:
        metric += f" [{tag}]"
    if "psnr_vs_ref_db" in r:
        psnr = r["psnr_vs_ref_db"]
        psnr_text = "identical" if r.get("psnr_identical") else "-" if psnr is None else f"{psnr:.1f} dB"
    elif r.get("psnr_reference") or r.get("role") == "teacher":
        psnr_text = "ref"  # the outputs the other rows are compared with
    elif r["measurement"] in convert_what():
        if r["precision"] == "fp32":
            psnr_text = "ref" if len(result["settings"]["precisions"]) > 1 else "-"
        elif "psnr_vs_fp32_db" in r:
            psnr = r["psnr_vs_fp32_db"]
            psnr_text = "identical" if psnr is None else f"{psnr:.1f} dB"
    if r["measurement"] == "peak":
        pcts = [100.0 if r["precision"] == ref else None for ref in ("fp32", "bf16")]
    else:
        pcts = [r.get(f"pct_of_{ref}_peak") for ref in ("fp32", "bf16")]
    prec = r["precision"]
    if prec == "auto" and r.get("computed_in"):
        prec = f"auto:{r['computed_in']}"
    return (r["measurement"], prec, metric, value, unit,
            fmt_flops(r.get("achieved_flops_per_s")) + "FLOP/s" if r.get("achieved_flops_per_s") else "-",
            *("-" if p is None else f"{p:.1f}" for p in pcts), fmt_bytes(r.get("peak_memory_bytes")), psnr_text)


def format_table(result: Dict[str, Any]) -> str:
    """The human-readable report of :func:`run_bench`'s result."""
    m = result["machine"]
    lines = [
        f"translate bench on {m['device_name']} [{m['device']}], torch {m['torch']}, "
        f"{m['torch_threads']} threads, cpu capability {m['cpu_capability']}",
        f"instruction set: {ISA_NAMES.get(m.get('cpu_isa'), m.get('cpu_isa'))} "
        f"(flags: {' '.join(m.get('cpu_isa_flags') or []) or '-'})",
        f"command: {result['command']}",
    ]
    if result.get("warning"):
        lines.append(f"warning: {result['warning']}")
    header = ("measurement", "prec", "metric", "value", "unit", "FLOP/s", "% fp32 pk", "% bf16 pk", "peak mem",
              "PSNR/ref")
    table = [header]
    table.extend(_row_cells(r, result) for r in result["rows"])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    right = {3, 5, 6, 7, 8, 9}
    for k, row in enumerate(table):
        cells = [str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = ["value: median of the timed windows (matmul peak: best of the repeats); FLOP/s = counted FLOPs "
             "per item x value; % fp32 pk / % bf16 pk: of the fp32 and of the bf16 matmul peak measured in this run; "
             "auto:P: the default --precision auto, which computed in P here"]
    notes.extend(auto_notes(result["rows"]))
    if any(r.get("psnr_reference") or r.get("role") for r in result["rows"]):
        notes.append("PSNR/ref: dB of the outputs against the fp32 eager torch outputs of the same translator on "
                     "the same images (student rows: against the teacher's outputs)")
    notes.extend(variant_notes(result["rows"]))
    notes.extend(result.get("notes", []))
    if m.get("tf32_conv") and "fp32" in result["settings"]["precisions"]:
        notes.append("fp32 convolutions may run in TF32 (torch.backends.cudnn.allow_tf32) while the fp32 matmul "
                     "peak does not, so fp32 % of peak can exceed 100")
    for r in result["rows"]:
        if r.get("note"):
            notes.append(f"{r['measurement']} {r['precision']}: {r['note']}")
    weights = {r["weights"] for r in result["rows"] if r.get("weights")}
    for w in sorted(weights):
        if w.startswith("random-init"):
            notes.append(f"conversion and PSNR use translators with {w} weights (speed is the same as trained "
                         "weights; PSNR on trained weights may differ)")
    flops = result.get("flops", {})
    for method, f in flops.items():
        g = f.get("generator_forward_flops_per_image")
        notes.append(f"{method}: {f['netG']} forward {fmt_flops(g)}FLOP/image at {f['train_size']}px, "
                     f"train step {fmt_flops(f['train_step_flops'])}FLOP (batch {f['train_step_batch']}, "
                     "counted with FlopCounterMode)")
    notes.extend(relative_training_notes(result["rows"]))
    kinds = {r.get("peak_memory_kind") for r in result["rows"] if r.get("peak_memory_kind")}
    if kinds & {"cpu_peak_rss_delta", "cpu_sampled_rss_delta", "cpu_maxrss_delta"}:
        notes.append("peak mem on CPU: growth of this process's peak RSS during the measurement "
                     "(data loader worker processes not included)")
    lines.append(f"total {result['seconds']:.0f}s")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def auto_notes(rows) -> list:
    """Per measurement: why auto picked what it did, and its speed against the fp32 and bf16 rows."""
    notes = []
    by = {(r["measurement"], r["precision"]): r for r in rows if r.get("value")}
    for (w, prec), r in by.items():
        if prec != "auto":
            continue
        parts = [f"{w} auto -> {r.get('computed_in')} ({r.get('precision_reason')})"]
        for ref in ("fp32", "bf16"):
            if (w, ref) in by:
                parts.append(f"{r['value'] / by[(w, ref)]['value']:.2f}x {ref}")
        notes.append("; ".join(parts))
    return notes


def json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(result: Dict[str, Any], path) -> Path:
    """Write ``result`` as JSON (non-finite numbers as null), atomically; returns the path."""
    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(json_safe(result), indent=2) + "\n")
    return out


def relative_training_notes(rows) -> list:
    """Notes comparing the training row of each method whose BenchSpec names ``compare_with`` with
    that method's row in the same precision (both in iterations): seconds per iteration and peak
    memory as multiples of the other's (e.g. CUT and FastCUT next to CycleGAN)."""
    trains = {f"train-{m}": bench_spec(m).compare_with for m in benched_methods() if bench_spec(m).compare_with}
    by_key = {(r["measurement"], r["precision"]): r for r in rows if r.get("value")}
    notes = []
    for r in rows:
        other = trains.get(r["measurement"])
        c = by_key.get((f"train-{other}", r["precision"])) if other else None
        if c is None or not r.get("value"):
            continue
        title = get_method(other).title
        text = (f"{r['measurement']} {r['precision']}: {1 / r['value']:.3f} s/iteration, "
                f"{c['value'] / r['value']:.2f}x {title}'s {1 / c['value']:.3f} s")
        if r.get("peak_memory_bytes") and c.get("peak_memory_bytes"):
            text += f"; peak memory {r['peak_memory_bytes'] / c['peak_memory_bytes']:.2f}x {title}'s"
        notes.append(text)
    return notes


def variant_notes(rows) -> list:
    """Notes for the opt-in rows: compile times, int8 calibration, student against teacher."""
    notes = []
    for r in rows:
        w = r["measurement"]
        if r.get("first_step_seconds") is not None:
            notes.append(f"{w} {r['precision']}: the first compiled step took {r['first_step_seconds']:.1f}s "
                         "(compilation), not counted in the value")
        if r.get("quantize"):
            q = r["quantize"]
            notes.append(f"{w} int8: calibrated on {q['images']} image(s) of {r.get('calibration')} at "
                         f"{q['side']}x{q['side']}; single-image latency int8 {q['ms_int8']} ms vs fp32 "
                         f"onnxruntime {q['ms_fp32']} ms")
        if r.get("role"):
            text = (f"{w} {r['precision']} {r['role']}: {r['generator']}, {fmt_params(r.get('params'))} parameters, "
                    f"{'-' if r.get('gmacs_per_image') is None else format(r['gmacs_per_image'], '.3g')} GMAC/image")
            if r.get("speed_vs_teacher"):
                text += f", {r['speed_vs_teacher']:.2f}x the teacher's images/s"
            notes.append(text)
    return notes


def fmt_params(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"
