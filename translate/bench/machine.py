"""Facts about the machine a benchmark runs on: CPU and GPU, library versions, the measured
matmul peak (the yardstick for "% of peak"), and peak-memory measurement."""

from __future__ import annotations

import gc
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..runtime import compute_dtype, cpu_flags, cpu_isa, has_native_precision, machine_kind

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
        from ..version import __version__

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


class PeakMemory:
    """Peak memory over a block: CUDA max_memory_allocated, or the growth of this process's peak
    RSS on CPU (VmHWM, reset through /proc/self/clear_refs; else sampled every few ms)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: Optional[int] = None
        self.kind = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sampled = 0

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        trim_heap()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            return self
        self.base = rss_bytes("VmRSS")
        if self.base is not None and reset_peak_rss():
            self.kind = "cpu_peak_rss_delta"
        elif self.base is not None:
            self.kind = "cpu_sampled_rss_delta"
            self._sampled = self.base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.kind = "cpu_maxrss_delta"
            self.base = maxrss_bytes()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            rss = rss_bytes("VmRSS")
            if rss is not None and rss > self._sampled:
                self._sampled = rss

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        elif self.kind == "cpu_peak_rss_delta":
            self.peak = max(0, (rss_bytes("VmHWM") or 0) - self.base)
        elif self.kind == "cpu_sampled_rss_delta":
            self._stop.set()
            self._thread.join()
            self.peak = max(0, self._sampled - self.base)
        else:
            self.peak = max(0, maxrss_bytes() - self.base)
        return False


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so the RSS baseline of a measurement does
    not include what earlier measurements freed but the allocator kept."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def rss_bytes(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0); False when not possible here."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def maxrss_bytes() -> int:
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0


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
