"""``translate train ... --dry-run``: what a run will cost, from real steps, before it starts.

The run is built as the loop builds it (method, optimizers, precision, dataset, loader) and a few
real optimisation steps run at the requested size and batch. Reported: parameters per network,
the peak memory of the steps (CUDA ``max_memory_allocated``; on the CPU the growth of the
process's peak resident size over the built run), seconds per step (the steps after the first,
which also allocates the optimizer state) and the time to the requested end. Nothing is written:
no run folder, no checkpoint.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..config import RunConfig
from ..memory import PeakMemory, rss_bytes
from ..runtime import DeviceError, resolve_device, resolve_precision
from .pipeline import (EpochSampler, TrainingError, build_trainables, build_training_dataset, make_loader,
                       resolve_num_workers)

STEPS = 8  # the first half allocates the optimizer state and warms up; the second half is timed
# (steps 2-3 of an idle 2-core CPU were still 30 % slower than the steady state)


@dataclass
class DryRun:
    """What ``--dry-run`` measured."""

    method: str
    device: str
    precision: str
    batch_size: int
    input_shape: List[int]  # (B, C, H, W) of the generator input
    parameters: Dict[str, int]  # net name -> parameter count
    peak_memory_bytes: int
    peak_memory_kind: str  # cuda_max_allocated, cpu_peak_rss_delta...
    first_step_seconds: float
    step_seconds: float  # median of the second half of the steps
    steps: int  # steps run
    total_steps: int  # the run's requested end
    grad_checkpoint: bool = False
    process_peak_bytes: Optional[int] = None  # CPU: the whole process's peak resident size (VmHWM)
    extra_bytes: int = 0  # what a real run holds beyond the steps: weight average + checkpoint serialisation
    step_times: List[float] = field(default_factory=list)

    @property
    def seconds_to_end(self) -> float:
        return self.step_seconds * self.total_steps

    def to_json(self) -> Dict:
        d = dict(self.__dict__)
        d["seconds_to_end"] = self.seconds_to_end
        return d

    def format(self) -> str:
        params = ", ".join(f"{name} {n / 1e6:.2f}M" for name, n in self.parameters.items())
        total = sum(self.parameters.values())
        b, c, h, w = self.input_shape
        return "\n".join([
            f"dry run of {self.method}: batch {b} of {c}x{h}x{w} inputs on {self.device} ({self.precision}"
            f"{', --grad-checkpoint' if self.grad_checkpoint else ''})",
            f"  parameters:      {params} (total {total / 1e6:.2f}M)",
            f"  peak memory:     {_gib(self.peak_memory_bytes)} during a training step ({_kind(self.peak_memory_kind)})"
            + (f"; the process peaked at {_gib(self.process_peak_bytes)}" if self.process_peak_bytes else ""),
            *([f"  run estimate:    {_gib(self.process_peak_bytes + self.extra_bytes)} process peak with the weight "
               f"average and the in-memory copy of a checkpoint being saved (+{_gib(self.extra_bytes)})"]
              if self.process_peak_bytes else []),
            f"  seconds/step:    {self.step_seconds:.3g} (median of the last {self.steps - self.steps // 2} of "
            f"{self.steps} steps; the first, which allocates, "
            f"took {self.first_step_seconds:.3g}; data loading and checkpoints not included)",
            f"  to the end:      {self.total_steps} steps, about {_duration(self.seconds_to_end)}",
            "  nothing was written (no run folder)",
        ])


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _kind(kind: str) -> str:
    return {"cuda_max_allocated": "CUDA max_memory_allocated",
            "cpu_peak_rss_delta": "growth of the peak resident size over the built run"}.get(kind, kind)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def total_steps(cfg: RunConfig, dataset_len: int, world_size: int = 1) -> int:
    """The step the run stops at, as the loop computes it."""
    per_rank = math.ceil(dataset_len / world_size)
    steps = (cfg.loop.epochs + cfg.loop.epochs_decay) * math.ceil(per_rank / cfg.loop.batch_size)
    return steps if cfg.loop.max_steps is None else min(steps, cfg.loop.max_steps)


def dry_run(cfg: RunConfig, steps: int = STEPS) -> DryRun:
    """Build the run of ``cfg`` and time ``steps`` real steps (at least 2); writes nothing.

    Raises:
        TrainingError: the run cannot be built (as the real run would raise).
    """
    cfg.validate()
    try:
        device = resolve_device(cfg.loop.device)
        resolve_precision(cfg.loop.precision, device, work="train")  # checked; per net in the build
    except DeviceError as e:
        raise TrainingError(str(e)) from None
    steps = max(2, steps)
    parts = build_trainables(cfg, device)
    method = parts.method
    dataset = build_training_dataset(cfg, method.size_multiple)
    sampler = EpochSampler(len(dataset), cfg.loop.seed)
    loader = make_loader(dataset, sampler, cfg.loop.batch_size, min(resolve_num_workers(cfg.data.num_workers), 1),
                         device)
    batches = _batches(loader, sampler, steps)
    for net in method.nets.values():
        net.train()
    times: List[float] = []
    with PeakMemory(device) as mem:
        for batch in batches:
            _sync(device)
            t0 = time.perf_counter()
            parts.step(batch)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return DryRun(
        method=cfg.method, device=str(device), precision=parts.precision.precision, batch_size=cfg.loop.batch_size,
        input_shape=list(batches[0]["a"].shape), parameters={name: sum(p.numel() for p in net.parameters())
                                                            for name, net in method.nets.items()},
        peak_memory_bytes=int(mem.peak or 0), peak_memory_kind=mem.kind, first_step_seconds=times[0],
        step_seconds=statistics.median(times[len(times) // 2:]), steps=len(times), total_steps=total_steps(cfg, len(dataset)),
        grad_checkpoint=cfg.loop.grad_checkpoint, step_times=times,
        process_peak_bytes=rss_bytes("VmHWM") if device.type == "cpu" else None,
        extra_bytes=_run_extra_bytes(cfg, parts))


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def _run_extra_bytes(cfg: RunConfig, parts) -> int:
    """Memory a real run holds that the measured steps do not: the generators' weight average
    (``loop.ema_decay``) and the serialised checkpoint (nets, optimizer state, average) that
    ``torch.save`` builds in memory before the atomic write."""
    method = parts.method
    nets = _tensor_bytes(t for net in method.nets.values() for t in net.state_dict().values())
    ema = 0
    if cfg.loop.ema_decay > 0:
        ema = _tensor_bytes(t for name in method.generators.values() for t in method.nets[name].state_dict().values())
    optim = _tensor_bytes(t for opt in parts.optimizers.values() for st in opt.state.values() for t in st.values())
    return ema + nets + optim + ema


def _batches(loader, sampler: EpochSampler, n: int) -> List[Dict[str, torch.Tensor]]:
    """``n`` batches of the loader, loaded before the measurement (epochs repeat for tiny datasets)."""
    out: List[Dict[str, torch.Tensor]] = []
    epoch = 0
    while len(out) < n:
        sampler.set_epoch(epoch)
        for batch in loader:
            out.append(batch)
            if len(out) == n:
                break
        epoch += 1
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

