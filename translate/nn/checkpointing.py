"""Gradient checkpointing of generator blocks: trade compute for activation memory.

A generator that supports it runs its blocks through :func:`run_block`; while its attribute
``grad_checkpoint`` is true (set by :func:`set_grad_checkpoint`, never saved in a checkpoint or
translator) and gradients are being recorded, a block keeps only its input for the backward
pass and runs its forward a second time there (``torch.utils.checkpoint``, non-reentrant).

The result is the same as without it:
- the random state of the forward pass is replayed in the recomputation (dropout draws the same
  masks);
- the recomputation does not touch batch-norm running statistics a second time (their momentum
  is 0 and ``num_batches_tracked`` is put back while it runs), so buffers, and therefore
  checkpoints and ``--resume``, are as without checkpointing;
- autocast (bf16/fp16) is recorded with the forward pass and replayed as it was.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)


def set_grad_checkpoint(net: nn.Module, enabled: bool) -> List[str]:
    """Turn checkpointing on or off in every submodule of ``net`` that supports it (has a
    ``grad_checkpoint`` attribute); returns the class names of those modules."""
    found = []
    for module in net.modules():
        if hasattr(module, "grad_checkpoint"):
            module.grad_checkpoint = bool(enabled)
            found.append(type(module).__name__)
    return found


@contextlib.contextmanager
def _frozen_statistics(block: nn.Module) -> Iterator[None]:
    """Batch-norm layers of ``block`` compute as in training but leave their buffers unchanged."""
    saved: List[Tuple[nn.Module, object, torch.Tensor]] = []
    for m in block.modules():
        if isinstance(m, _BATCH_NORMS) and m.track_running_stats:
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class _Recompute:
    """The context of a block's recomputation (``torch.utils.checkpoint``'s ``context_fn`` returns
    a fresh one for every checkpointed call)."""

    def __init__(self, block: nn.Module):
        self.block = block

    def __enter__(self):
        self._inner = _frozen_statistics(self.block)
        return self._inner.__enter__()

    def __exit__(self, *exc):
        return self._inner.__exit__(*exc)


def run_block(owner: nn.Module, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)``, checkpointed when ``owner.grad_checkpoint`` is on and gradients are recorded."""
    if not (getattr(owner, "grad_checkpoint", False) and torch.is_grad_enabled() and owner.training):
        return block(x)

    def contexts():
        return contextlib.nullcontext(), _Recompute(block)

    return checkpoint(block, x, use_reentrant=False, context_fn=contexts, preserve_rng_state=True)
