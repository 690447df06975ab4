"""Training methods: each owns its networks and its train step, behind one interface.

A method is a class with the constructor ``(cfg, input_nc, output_nc, device, seed, direction)`` that
satisfies :class:`Method`; adding one is a file in this package and a line in ``METHODS``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from .cut import CUT, FastCUT
from .cyclegan import CycleGAN
from .distill import Distill
from .pix2pix import Pix2Pix
from .pix2pixhd import Pix2PixHD


@runtime_checkable
class Method(Protocol):
    """What the training loop, the benchmark and the translator export need from a method.

    Attributes:
        name: the registry name, e.g. "pix2pix".
        nets: name -> network (``gen_a2b``, ``disc_b``, ...): what is saved and resumed.
        train_nets: name -> what ``train_step`` calls: the nets, or their DDP wrappers.
        generators: direction ("a2b", "b2a") -> net name: what the translator folder exports.
        optimizer_names: the keys of :meth:`make_optimizers` (and of the gradient scalers).
        paired: True when it trains on aligned (A, B) pairs (paired datasets; paired metrics
            such as L1 apply), False for unpaired domains.
        size_multiple: image sides must be multiples of this (the generator's downsampling).
    """

    name: str
    paired: bool
    nets: nn.ModuleDict
    train_nets: Dict[str, nn.Module]
    generators: Dict[str, str]
    optimizer_names: Sequence[str]

    def __init__(self, cfg: Any, input_nc: int, output_nc: int, device: torch.device, seed: int = 0,
                 direction: str = "a2b"): ...

    @property
    def size_multiple(self) -> int: ...

    def make_optimizers(self, loop_cfg: Any) -> Dict[str, torch.optim.Optimizer]:
        """One optimizer per name of ``optimizer_names`` (learning rate and betas from ``loop_cfg``)."""

    def train_step(self, batch: Mapping[str, torch.Tensor], optimizers: Mapping[str, torch.optim.Optimizer],
                   scalers: Any, amp: Any) -> Dict[str, torch.Tensor]:
        """One update of every network on ``batch`` {"a": (B, Ca, H, W), "b": (B, Cb, H, W)} in
        [-1, 1], inside the ``amp`` autocast context, backward and step through ``scalers``
        (:class:`translate.runtime.Scalers`). Returns detached scalar losses (no host sync)."""

    def sample(self, batch: Mapping[str, torch.Tensor], amp: Any) -> List[torch.Tensor]:
        """Image columns (B, C, H, W) in [-1, 1] for the sample grid; changes no weights."""

    def state_dict(self) -> Dict[str, Any]:
        """State besides the networks and optimizers that resume needs (e.g. image pools)."""

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...

    def wrap(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Set ``train_nets[name] = fn(nets[name])`` for every net (e.g. DistributedDataParallel)."""


METHODS: Dict[str, type] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}
METHODS.update(cut=CUT, fastcut=FastCUT)
METHODS["pix2pixhd"] = Pix2PixHD
METHODS["distill"] = Distill  # a student of a trained translator (translate distill)


def list_methods() -> List[str]:
    return sorted(METHODS)


def get_method(name: str) -> type:
    """The method class registered under ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    return METHODS[name]


def build_method(name: str, cfg: Any, input_nc: int, output_nc: int, device: torch.device, seed: int = 0,
                 direction: str = "a2b") -> Method:
    """A new ``name`` method with freshly initialised networks on ``device``.

    Args:
        cfg: the model section of the run configuration (``translate.config.MODEL_CONFIGS[name]``).
        input_nc, output_nc: channels of domain A and domain B.
        seed: seed of the method's private random streams (e.g. CycleGAN's image pools).
        direction: "a2b" when domain A is the input, "b2a" when domain B is; net names follow
            the domains (a b2a pix2pix trains ``gen_b2a`` and ``disc_a``).
    """
    return get_method(name)(cfg, input_nc, output_nc, device, seed, direction)
