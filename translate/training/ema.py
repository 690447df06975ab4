"""Exponential moving average of the generators' weights: what the translator exports.

GAN generators trained at batch size 1 move a lot from one step to the next: the weights after
the last step are one noisy point of a trajectory. Their running average (Polyak averaging, as in
Karras et al. 2018 and most GANs since) translates better, costs one fused ``lerp`` per step and
changes nothing in training itself: the optimisers keep updating the raw networks, and the
average is only read for samples, evaluation and the translator folder.

    ema_t = decay_t * ema_{t-1} + (1 - decay_t) * weights_t,
    decay_t = min(decay, (1 + t) / (10 + t))

The warm-up term keeps the average from being dominated by the random initial weights in short
runs (it is 0.1 at the first step and reaches 0.99 near step 900). Buffers (batch-norm running
statistics) are copied, not averaged.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Dict, Iterator, Mapping

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """The averaging factor used at optimisation step ``step`` (1-based)."""
    return min(decay, (1.0 + step) / (10.0 + step))


class GeneratorEMA:
    """Averaged copies of some networks of a method (its generators).

    Args:
        nets: name -> network to average (the raw modules, not DDP wrappers).
        decay: the target averaging factor in (0, 1); e.g. 0.999.
    """

    def __init__(self, nets: Mapping[str, nn.Module], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.sources = dict(nets)
        self.nets: Dict[str, nn.Module] = {}
        for name, net in self.sources.items():
            avg = copy.deepcopy(net)
            avg.requires_grad_(False)
            self.nets[name] = avg
        # Parameter lists built once: the update runs after every optimisation step.
        self._pairs = [(list(self.nets[n].parameters()), list(src.parameters())) for n, src in self.sources.items()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in, after optimisation step ``step`` (1-based)."""
        weight = 1.0 - ema_decay_at(self.decay, step)
        for avg_params, src_params in self._pairs:
            torch._foreach_lerp_(avg_params, src_params, weight)

    @torch.no_grad()
    def _copy_buffers(self) -> None:
        # Buffers (batch-norm running statistics) are copied when the average is read, not per step.
        for name, src in self.sources.items():
            for b_avg, b_src in zip(self.nets[name].buffers(), src.buffers()):
                b_avg.copy_(b_src)

    def state_dict(self) -> Dict[str, Dict[str, torch.Tensor]]:
        self._copy_buffers()
        return {name: net.state_dict() for name, net in self.nets.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state[name])

    def reset_to_sources(self) -> None:
        """Start the average from the current weights (a run that had no average saved)."""
        for name, src in self.sources.items():
            self.nets[name].load_state_dict(src.state_dict())

    @contextlib.contextmanager
    def swapped_into(self, nets: nn.ModuleDict) -> Iterator[None]:
        """Inside the block, ``nets[name]`` is the averaged network (for samples and exports)."""
        self._copy_buffers()
        raw = {name: nets[name] for name in self.nets}
        try:
            for name, avg in self.nets.items():
                nets[name] = avg
            yield
        finally:
            for name, net in raw.items():
                nets[name] = net
