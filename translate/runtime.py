"""Where and in what precision networks run: devices, the precision table, autocast, native
reduced-precision detection and gradient scalers.

This is the one home of these facts; training, inference, conversion, evaluation, export and the
benchmark all ask here.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

import torch

from .errors import ArgumentError

# precision name -> autocast dtype (None: no autocast, plain fp32)
PRECISIONS: Dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AUTO = "auto"  # pick per device and network: resolve_precision()
# What a user may ask for (--precision of train, distill, convert, serve, eval and bench): the one list.
PRECISION_CHOICES: Tuple[str, ...] = (AUTO, *PRECISIONS)


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


def cpu_isa() -> str:
    """The best matrix instruction set of this CPU as torch itself detects it (never from the CPU's
    name): "amx" (AMX tiles with bf16), "avx512_bf16", "avx512", "avx2" or "default"."""
    cpu = getattr(torch, "cpu", None)

    def has(name: str) -> bool:
        fn = getattr(cpu, name, None)
        try:
            return bool(fn()) if fn is not None else False
        except RuntimeError:  # pragma: no cover - detection failed: treat as absent
            return False

    if has("_is_amx_tile_supported") and has("_is_avx512_bf16_supported"):
        return "amx"
    if has("_is_avx512_bf16_supported"):
        return "avx512_bf16"
    if not hasattr(cpu, "_is_avx512_bf16_supported"):  # pragma: no cover - older torch: the CPU flags
        flags = set(cpu_flags())
        if {"amx_bf16", "amx_tile"} <= flags:
            return "amx"
        if "avx512_bf16" in flags:
            return "avx512_bf16"
    capability = str(torch.backends.cpu.get_cpu_capability()).lower()
    return {"avx512": "avx512", "avx2": "avx2"}.get(capability, "default")


NATIVE_BF16_ISAS = ("amx", "avx512_bf16")  # CPUs whose oneDNN kernels compute bf16 in hardware


def machine_kind(device: torch.device) -> str:
    """What ``--precision auto`` decides on: "cuda_bf16" or "cuda" for a GPU (with / without bf16),
    the CPU instruction set (:func:`cpu_isa`) for a CPU, else the device type."""
    if device.type == "cuda":
        return "cuda_bf16" if torch.cuda.is_bf16_supported() else "cuda"
    if device.type == "cpu":
        return cpu_isa()
    return device.type


def has_native_precision(device: torch.device, precision: str) -> bool:
    """True when ``device`` computes ``precision`` natively (fast); fp32 always is.

    On CPUs, bf16 needs AMX or AVX-512 BF16 (torch's own CPU detection, :func:`cpu_isa`): oneDNN
    also accepts plain AVX-512 for bf16 but emulates it there, slower than fp32. fp16 needs
    AVX-512 FP16 / AMX-FP16, as oneDNN decides.
    """
    check_precision(precision)
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    if precision == "bf16":
        return cpu_isa() in NATIVE_BF16_ISAS
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch: read the CPU flags
        return bool(set(cpu_flags()) & {"avx512_fp16", "amx_fp16"})


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


# Where bf16 runs natively but ``translate bench`` measured it slower than fp32, per machine kind
# (machine_kind()): the (work, generator architecture) pairs for which ``--precision auto`` keeps
# fp32. Work is "train" or "convert". docs/performance.md has the measurements behind each entry.
BF16_SLOWER: Dict[str, FrozenSet[Tuple[str, str]]] = {
    # Idle 2-core AMX Xeon, torch 2.14.1: every measured pair gains from bf16 (docs/performance.md),
    # e.g. slim_unet ngf 16 conversion 1.53x (batch 4) and 1.87x (batch 1).
    "amx": frozenset(),
    "avx512_bf16": frozenset(),
    "cuda_bf16": frozenset(),
}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a job runs in, what was asked for and why this one."""

    requested: str  # what the user asked for: "auto", "fp32", "bf16" or "fp16"
    precision: str  # what runs: "fp32", "bf16" or "fp16"
    reason: str  # one line for people: run.json, the progress line, `translate info`, serve /v1/info
    machine: str = ""  # machine_kind() of the device it was decided for

    def describe(self) -> str:
        """E.g. ``bf16 (auto: CPU with AMX runs bf16 natively)``."""
        return f"{self.precision} ({'auto: ' if self.requested == AUTO else ''}{self.reason})"

    def to_json(self) -> Dict[str, Any]:
        return {"requested": self.requested, "precision": self.precision, "reason": self.reason,
                "machine": self.machine}


def resolve_precision(requested: Optional[str], device: torch.device, *, work: str = "convert",
                      arch: Optional[str] = None, backend: str = "torch") -> PrecisionChoice:
    """The precision to run ``work`` ("train" or "convert") of generator ``arch`` in on ``device``.

    An explicit precision is checked and kept. ``auto`` (or None) picks bf16 where the device
    computes it natively (CUDA with bf16; CPUs with AMX or AVX-512 BF16, as torch detects them)
    unless :data:`BF16_SLOWER` lists (work, arch) for this machine kind, and fp32 everywhere else.
    A conversion ``backend`` other than torch: onnxruntime always runs its fp32 graph; OpenVINO
    follows the same rule under the work name "convert-openvino" (its bf16 inference hint).

    Raises:
        DeviceError: an unknown precision, or fp16 on a device other than CUDA.
    """
    requested = AUTO if requested is None else requested
    kind = machine_kind(device)
    if requested == AUTO and backend not in ("torch", "openvino"):
        return PrecisionChoice(AUTO, "fp32", f"the {backend} backend runs the fp32 graph", kind)
    if backend != "torch":
        work = f"{work}-{backend}"
    if requested != AUTO:
        if requested not in PRECISIONS:
            raise DeviceError(f"unknown precision {requested!r}; valid: {', '.join(PRECISION_CHOICES)}")
        check_precision(requested, device)
        return PrecisionChoice(requested, requested, "asked for", kind)
    if device.type == "cuda" and kind != "cuda_bf16":
        return PrecisionChoice(AUTO, "fp32", "this CUDA device has no bf16 (--precision fp16 uses fp16)", kind)
    if device.type == "cpu" and kind not in NATIVE_BF16_ISAS:
        return PrecisionChoice(AUTO, "fp32", f"this CPU ({kind}) has no native bf16 (needs AMX or AVX-512 BF16)",
                               kind)
    if device.type not in ("cpu", "cuda"):
        return PrecisionChoice(AUTO, "fp32", f"no bf16 measurements for {device.type} devices", kind)
    if arch is not None and (work, arch) in BF16_SLOWER.get(kind, frozenset()):
        return PrecisionChoice(AUTO, "fp32", f"bf16 measured slower than fp32 for {arch} {work} on {kind}", kind)
    where = {"amx": "CPU with AMX", "avx512_bf16": "CPU with AVX-512 BF16", "cuda_bf16": "CUDA device"}[kind]
    return PrecisionChoice(AUTO, "bf16", f"{where} runs bf16 natively", kind)


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
