"""Peak memory of a block of work: CUDA ``max_memory_allocated``, or on the CPU the growth of this
process's peak resident size (VmHWM, reset through ``/proc/self/clear_refs``). Used by
``translate bench`` and ``translate train --dry-run``."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path
from typing import Optional

import torch


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
