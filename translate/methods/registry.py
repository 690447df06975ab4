"""The method registry: what a training method is and what it tells the rest of the package.

A method is one module. Its class satisfies :class:`Method` (networks and the train step) and,
through :class:`MethodInfo`'s class attributes, describes itself: its model-section dataclass
(which gives ``translate train NAME`` its options), its one-line help, the tiny preset's model
overrides, the data it trains on, what a training step counts for the benchmark, and the
provenance its translator records. One line registers it::

    @register_method
    class MyMethod(MethodInfo):
        name = "mymethod"
        config_class = MyMethodConfig
        ...

The command line, the configuration, the presets, the training pipeline and monitor, and the
benchmark read these through :func:`get_method` and :func:`list_methods` and never name a method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch
from torch import nn

from ..data import DATA_KINDS  # aligned (A, B) pairs (images or class-ID maps) / two unpaired domains
STEP_COUNTS = ("images", "iterations")  # what one training step counts for the benchmark


@dataclass(frozen=True)
class BenchSpec:
    """How ``translate bench`` measures a method's training (``train-NAME``).

    Attributes:
        counts: what one step counts: "images" (the batch: the row is in img/s, FLOPs per image)
            or "iterations" (one per step: it/s, FLOPs per step), e.g. when a step translates
            both ways.
        data: "images" (synthetic pictures of ``--size``) or "labels" (class-ID maps of
            ``--label-size`` with ``--label-nc`` classes, trained at full size).
        quick: model overrides under ``--quick`` (besides the shared small widths).
        default: measured without ``--what``; else only when ``--what`` names it.
        convert: directions of the random-init translator of its ``convert-NAME`` row (empty: no
            conversion row).
        compare_with: another method whose training row the report compares this one with
            (seconds per iteration and memory as multiples of it).
    """

    counts: str
    data: str = "images"
    quick: Mapping[str, Any] = field(default_factory=dict)
    default: bool = True
    convert: Tuple[str, ...] = ()
    compare_with: Optional[str] = None


class MethodInfo:
    """What a method declares about itself, as class attributes (defaults here).

    Attributes:
        name: the registry name, e.g. "pix2pix" (``translate train pix2pix``).
        title: how texts write it, e.g. "CycleGAN" (default: the name).
        config_class: the model section of its run configuration (a dataclass of
            :func:`translate.options.option` fields deriving from
            :class:`translate.options.ModelConfig`); its fields are the method's options.
        help: one line for ``translate train --help``.
        description: the paragraph of ``translate train NAME --help`` (default: from ``help``).
        command: "train" when ``translate train NAME`` trains it; else the command that does
            (``translate distill`` for students).
        data: what it trains on: "paired", "unpaired", or "teacher" (as its teacher was trained;
            :meth:`data_kind` decides from the configuration).
        tiny: the ``--preset tiny`` model overrides (e.g. a generator that fits a 32x32 crop).
        presets: presets made for this method alone: name -> function returning the sections
            (e.g. ``pix2pix_paper``).
        bench: how the benchmark measures it (None: no ``train-NAME`` row).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    config_class: ClassVar[type]
    help: ClassVar[str]
    description: ClassVar[str] = ""
    command: ClassVar[str] = "train"
    data: ClassVar[str] = "paired"
    tiny: ClassVar[Mapping[str, Any]] = {}
    presets: ClassVar[Mapping[str, Callable[[], Dict[str, Dict[str, Any]]]]] = {}
    bench: ClassVar[Optional[BenchSpec]] = None

    @classmethod
    def data_kind(cls, model_cfg: Any) -> str:
        """"paired" or "unpaired": the data a run with model section ``model_cfg`` trains on
        (paired metrics such as L1 apply to paired data only)."""
        return cls.data

    def provenance(self) -> Dict[str, Any]:
        """Entries this run adds to its translator's provenance (a student names its teacher)."""
        return {}

    # Defaults of the :class:`Method` members most methods share; a method overrides what differs.
    def wrap(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Train through ``fn(net)`` (e.g. a DistributedDataParallel wrapper) for every net."""
        self.train_nets = {name: fn(net) for name, net in self.nets.items()}

    def state_dict(self) -> Dict[str, Any]:
        """State besides the networks and optimizers that resume needs: none by default."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output: nothing by default."""


@runtime_checkable
class Method(Protocol):
    """What the training loop, the benchmark and the translator export need from a method object.

    Attributes:
        nets: name -> network (``gen_a2b``, ``disc_b``, ...): what is saved and resumed.
        train_nets: name -> what ``train_step`` calls: the nets, or their DDP wrappers.
        generators: direction ("a2b", "b2a") -> net name: what the translator folder exports.
        optimizer_names: the keys of :meth:`make_optimizers` (and of the gradient scalers).
        size_multiple: image sides must be multiples of this (the generator's downsampling).
    """

    name: str
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

    def provenance(self) -> Dict[str, Any]:
        """Entries this run adds to its translator's provenance."""


METHODS: Dict[str, type] = {}  # name -> method class, in registration order


def register_method(cls: type) -> type:
    """Register a method class under ``cls.name`` (usable as a class decorator); returns ``cls``.

    Raises:
        ValueError: the name is taken by another class, or a declaration is missing or invalid.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"{cls.__name__}.name must be a lower-case identifier, got {name!r}")
    if name in METHODS and METHODS[name] is not cls:
        raise ValueError(f"method {name!r} is already registered ({METHODS[name].__module__}.{METHODS[name].__name__})")
    missing = [a for a in ("config_class", "help") if not hasattr(cls, a)]
    if missing:
        raise ValueError(f"method {name!r} does not declare {', '.join(missing)}")
    if not dataclasses.is_dataclass(cls.config_class):
        raise ValueError(f"method {name!r}: config_class must be a dataclass, got {cls.config_class!r}")
    if cls.data not in DATA_KINDS + ("teacher",):
        raise ValueError(f"method {name!r}: data must be one of {', '.join(DATA_KINDS)}, teacher; got {cls.data!r}")
    if cls.bench is not None and cls.bench.counts not in STEP_COUNTS:
        raise ValueError(f"method {name!r}: bench.counts must be one of {', '.join(STEP_COUNTS)}, "
                         f"got {cls.bench.counts!r}")
    if cls.bench is not None and cls.data not in DATA_KINDS:
        raise ValueError(f"method {name!r}: the benchmark makes synthetic {' or '.join(DATA_KINDS)} data, "
                         f"not {cls.data!r}; declare bench = None")
    if "title" not in vars(cls):  # not inherited from the method it derives from
        cls.title = name
    METHODS[name] = cls
    return cls


def list_methods(command: Optional[str] = None) -> List[str]:
    """Registered method names, sorted; with ``command``, those that command trains."""
    return sorted(n for n, cls in METHODS.items() if command is None or cls.command == command)


def get_method(name: str) -> type:
    """The method class registered under ``name``.

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    return METHODS[name]


def build_method(name: str, cfg: Any, input_nc: int, output_nc: int, device: torch.device, seed: int = 0,
                 direction: str = "a2b") -> Method:
    """A new ``name`` method with freshly initialised networks on ``device``.

    Args:
        cfg: the model section of the run configuration (an instance of the method's ``config_class``).
        input_nc, output_nc: channels of domain A and domain B.
        seed: seed of the method's private random streams (e.g. CycleGAN's image pools).
        direction: "a2b" when domain A is the input, "b2a" when domain B is; net names follow
            the domains (a b2a pix2pix trains ``gen_b2a`` and ``disc_a``).
    """
    return get_method(name)(cfg, input_nc, output_nc, device, seed, direction)
