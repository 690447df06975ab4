"""Facts about the machine a benchmark runs on: CPU and GPU, library versions, the measured
matmul peak (the yardstick for "% of peak"), and peak-memory measurement."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..memory import PeakMemory, maxrss_bytes, reset_peak_rss, rss_bytes, trim_heap  # noqa: F401 (their home)
from ..runtime import compute_dtype, cpu_flags, cpu_isa, has_native_precision, machine_kind
from ..version import __version__

# CPU flags that decide the fast arithmetic, shown in the report header
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: torch.device) -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu_model()})"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": has_native_precision(torch.device("cpu"), "bf16"),
        "cpu_isa": cpu_isa(),
        "cpu_isa_flags": [f for f in ISA_FLAGS if f in set(cpu_flags())],
        "machine_kind": machine_kind(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
    try:
        info["translate"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return info


def cpu_capability() -> Optional[str]:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - older torch
        return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, precision: str, matmul_size: int, matmul_seconds: float,
                quick: bool = False) -> Dict[str, Any]:
    """Best FLOP/s of square matmuls in ``precision``: the side doubles from 256 up to
    ``matmul_size`` while one product stays short, then timed blocks of products are repeated
    for ``matmul_seconds`` (at least twice)."""
    dtype = compute_dtype(precision)
    max_call = 0.5 if device.type == "cuda" else (0.3 if quick else 2.0)
    min_block = 0.05 if device.type == "cuda" else 0.0  # GPU: several products per timing
    gen = torch.Generator(device=device).manual_seed(0)

    def operands(n: int):
        return tuple(torch.randn(n, n, device=device, generator=gen).to(dtype) for _ in range(2))

    def timed(a, b, reps: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        sync(device)
        return (time.perf_counter() - t0) / reps

    n = 256
    a, b = operands(n)
    timed(a, b, 1)  # library start-up
    while True:
        t = timed(a, b, 1)
        if n >= matmul_size or t * 8 > max_call:
            break
        n *= 2
        a, b = operands(n)
    reps = 1
    while reps < 1000 and timed(a, b, reps) * reps < min_block:
        reps *= 2
    t_end = time.perf_counter() + matmul_seconds
    times: List[float] = []
    while len(times) < 2 or (time.perf_counter() < t_end and len(times) < 100):
        times.append(timed(a, b, reps))
    rates = [2 * n ** 3 / t for t in times]
    return {"flops_per_s": max(rates), "n": n, "repeats": len(times), "products_per_timing": reps,
            "windows": rates}
