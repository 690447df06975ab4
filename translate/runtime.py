"""Where and in what precision networks run: devices, the precision table, autocast, native
reduced-precision detection and gradient scalers.

This is the one home of these facts; training, inference, conversion, evaluation, export and the
benchmark all ask here.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Dict, Iterable, List, Optional, Union

import torch

from .errors import ArgumentError

# precision name -> autocast dtype (None: no autocast, plain fp32)
PRECISIONS: Dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ArgumentError):
    """A device or precision that cannot be used here; the message says what to use instead."""


def resolve_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """The ``torch.device`` for a user's choice.

    Args:
        device: "auto" or None (CUDA when available, else CPU), "cpu", "cuda", "cuda:N", or a
            ``torch.device``.

    Raises:
        DeviceError: the name is not a device, or CUDA was asked for and is not available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r} was asked for but CUDA is not available; use --device cpu")
    return dev


def use_fast_kernels(device: torch.device) -> None:
    """Let cuDNN pick the fastest kernels for the (repeated) shapes on ``device``."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype tensors are computed in for ``precision`` (float32 for fp32)."""
    check_precision(precision)
    return PRECISIONS[precision] or torch.float32


def check_precision(precision: str, device: Optional[torch.device] = None) -> str:
    """Validate ``precision`` (and, given ``device``, that it can run there); returns it.

    Raises:
        DeviceError: an unknown precision, or fp16 on a device other than CUDA.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if device is not None and precision == "fp16" and device.type != "cuda":
        raise DeviceError("fp16 needs a CUDA device; on CPU use bf16 or fp32")
    return precision


def has_native_precision(device: torch.device, precision: str) -> bool:
    """True when ``device`` computes ``precision`` natively (fast); fp32 always is.

    On CPUs, reduced precision needs AVX-512 BF16 / AMX (bf16) or AVX-512 FP16 (fp16), as oneDNN
    itself decides; without it convolutions run on slow reference kernels.
    """
    check_precision(precision)
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch: read the CPU flags
        flags = {"bf16": {"avx512_bf16", "amx_bf16"}, "fp16": {"avx512_fp16", "amx_fp16"}}[precision]
        return bool(set(cpu_flags()) & flags)


def native_precisions(device: torch.device) -> List[str]:
    """fp32 plus the reduced precision ``device`` runs natively, if any (bf16 preferred)."""
    if device.type == "cuda":
        return ["fp32", "bf16" if torch.cuda.is_bf16_supported() else "fp16"]
    return ["fp32", "bf16"] if has_native_precision(device, "bf16") else ["fp32"]


def warn_if_slow_precision(device: torch.device, precision: str) -> None:
    """Reduced precision on a CPU without native support (AVX-512 BF16 / AMX, AVX-512 FP16) runs
    convolutions on slow reference kernels: say so instead of silently being many times slower."""
    if device.type != "cpu" or precision == "fp32":
        return
    if not has_native_precision(device, precision):
        warnings.warn(f"this CPU has no native {precision} support (needs AVX-512 BF16/FP16 or AMX): "
                      f"{precision} convolutions fall back to slow reference kernels, typically far slower "
                      "than fp32 here; use --precision fp32", RuntimeWarning, stacklevel=2)


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_flags() -> List[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


class Scalers:
    """One GradScaler per optimizer for fp16 (loss scales of G and D evolve independently);
    a pass-through otherwise."""

    def __init__(self, names: Iterable[str], precision: str, device: torch.device):
        self.enabled = precision == "fp16"
        self.scalers = {n: torch.amp.GradScaler(device.type, enabled=self.enabled) for n in names}

    def backward(self, name: str, loss: torch.Tensor) -> None:
        self.scalers[name].scale(loss).backward()

    def step(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        self.scalers[name].step(optimizer)
        self.scalers[name].update()

    def state_dict(self):
        return {n: s.state_dict() for n, s in self.scalers.items()}

    def load_state_dict(self, state) -> None:
        for n, s in self.scalers.items():
            if n in state and state[n]:
                s.load_state_dict(state[n])


_LIBC_TRIM = None


def release_free_memory() -> bool:
    """Hand memory the allocator keeps cached back to the system (glibc's ``malloc_trim``).

    A long-running process that allocates and frees large tensors from several threads (a server)
    otherwise sees its resident size creep up as glibc keeps freed pages in per-thread arenas.
    Returns True when something was released; False, and a no-op, where glibc is not in use.
    """
    global _LIBC_TRIM
    if _LIBC_TRIM is None:
        _LIBC_TRIM = False
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
            if trim is not None:
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
                _LIBC_TRIM = trim
        except OSError:
            pass
    return bool(_LIBC_TRIM(0)) if _LIBC_TRIM else False
