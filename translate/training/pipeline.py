"""What a training step is made of, shared by the training loop and ``translate bench``.

- the data path: the dataset a run configuration describes, the (epoch, index) sampler and
  dataset wrapper, the worker initialisation and the one ``DataLoader`` construction;
- the trainable parts: the method with its optimizers, LR schedulers, gradient scalers, the
  precision chosen for it (``--precision auto``: per device and generator) and its autocast
  context, and :meth:`Trainables.step`, one optimisation step as the loop runs it;
- the fixed sample batch and the preprocessing record written into the translator folder.

Reproducibility: item ``i`` of epoch ``e`` is a pure function of (seed, e, i) (see
``translate.data``) and the order of items in an epoch is a permutation drawn from (seed, e), so
the data of any step can be produced again from the step number alone.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
from dataclasses import dataclass
from typing import Any, Dict, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import RunConfig
from ..errors import UserError
from ..data import build_dataset, detect_layout
from ..methods import Method, build_method, get_method, list_methods
from ..methods.common import linear_decay
from ..nn import set_grad_checkpoint
from ..runtime import PrecisionChoice, Scalers, autocast, resolve_precision


class TrainingError(UserError):
    """Training cannot start or go on; the message says why and what to do."""


def default_num_workers() -> int:
    """Loader processes: leave one core to the training process, use at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def resolve_num_workers(num_workers: int) -> int:
    """Loader processes for a ``data.num_workers`` setting (-1: :func:`default_num_workers`)."""
    return default_num_workers() if num_workers < 0 else num_workers


class EpochSampler(Sampler):
    """Yields (epoch, index) pairs: a permutation of the dataset drawn from (seed, epoch),
    starting at ``start`` (to resume in the middle of an epoch).

    With ``world_size`` processes, rank r takes items r, r + world, r + 2 world... of the
    permutation (padded by wrapping around so every rank has the same count), so one step of N
    processes with batch b sees the same items as one step of a single process with batch N b.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(n / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.n))[:total]
        mine = order[self.rank::self.world_size]
        return iter([(self.epoch, i) for i in mine[self.start:]])

    def __len__(self) -> int:
        return self.per_rank - self.start


class EpochIndexed(Dataset):
    """Dataset wrapper taking (epoch, index) so worker processes know the epoch too."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def worker_init(_worker_id: int) -> None:
    """Initialise a loader worker process."""
    # The main process handles Ctrl-C (finishing the step and saving); workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(0)  # one decode per worker process; OpenCV threads would oversubscribe the cores


def check_sizes(cfg: RunConfig, size_multiple: int) -> None:
    """Refuse crops the generator cannot take (sides must be multiples of ``size_multiple``)."""
    d = cfg.data
    if d.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and d.crop_size % size_multiple:
        raise TrainingError(
            f"generator {getattr(cfg.model, 'netG', cfg.method)} needs image sides that are multiples of {size_multiple}, "
            f"but crop_size is {d.crop_size}. Use --crop-size {max(size_multiple, d.crop_size // size_multiple * size_multiple)}"
            " or a generator with fewer downsamplings (e.g. --netG unet_128 for 128x128 crops)."
        )


def check_multiscale_size(cfg: RunConfig) -> None:
    d, smallest = cfg.data, cfg.model.min_crop()
    if smallest and d.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and d.crop_size < smallest:
        raise TrainingError(
            f"the multi-scale discriminator (--num-D {cfg.model.num_D}, --n-layers-D {cfg.model.n_layers_D}) needs "
            f"crops of at least {smallest} pixels, but crop_size is {d.crop_size}. Use a larger --crop-size, "
            "or fewer scales (--num-D) or layers (--n-layers-D).")


def data_kind(cfg: RunConfig) -> str:
    """"paired" or "unpaired": what the method of ``cfg`` trains on (a student: as its teacher)."""
    return get_method(cfg.method).data_kind(cfg.model)


def build_training_dataset(cfg: RunConfig, size_multiple: int):
    """The training dataset ``cfg.data`` describes: paired or unpaired, as the method trains."""
    d = cfg.data
    return build_dataset(
        d.root, data_kind(cfg), split=d.split, layout=d.layout, direction=d.direction,
        input_nc=d.input_nc, output_nc=d.output_nc, preprocess=d.preprocess, load_size=d.load_size,
        crop_size=d.crop_size, flip=d.flip, size_multiple=size_multiple, seed=cfg.loop.seed,
        skip_bad_images=d.skip_bad_images, max_items=d.max_items,
        **label_dataset_kwargs(cfg),
    )


def label_dataset_kwargs(cfg: RunConfig) -> Dict[str, Any]:
    """Dataset arguments for class-ID label inputs (none when ``data.label_nc`` is 0)."""
    d = cfg.data
    if not d.label_nc:
        return {}
    if data_kind(cfg) != "paired":
        paired = [name for name in list_methods("train") if get_method(name).data == "paired"]
        raise TrainingError(f"--label-nc needs a method trained on paired data ({', '.join(paired)}): class-ID maps "
                            "are the input of aligned (label, image) pairs")
    return {"label_nc": d.label_nc, "instance_dir": d.instance_dir or None}


def instance_channel(cfg: RunConfig) -> bool:
    """Whether a class-ID run has the instance-boundary input channel (``--instance-dir`` or SPLIT/inst/)."""
    d = cfg.data
    if not d.label_nc:
        return False
    if d.instance_dir:
        return True
    layout = detect_layout(d.root, d.split, d.layout)
    if layout.kind != "a_b":
        return False
    label_folder = layout.folder_b if d.direction == "BtoA" else layout.folder_a
    return (label_folder.parent / "inst").is_dir()


def model_input_nc(cfg: RunConfig) -> int:
    """Channels of the generator input: the one-hot classes (+ instance boundaries), or ``data.input_nc``."""
    d = cfg.data
    return d.label_nc + int(instance_channel(cfg)) if d.label_nc else d.input_nc


def make_loader(dataset, sampler: EpochSampler, batch_size: int, num_workers: int,
                device: torch.device) -> DataLoader:
    """The training DataLoader: batches of ``dataset`` in ``sampler``'s order.

    Args:
        num_workers: loader processes; -1 picks :func:`default_num_workers`.
    """
    num_workers = resolve_num_workers(num_workers)
    return DataLoader(
        EpochIndexed(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
        worker_init_fn=worker_init if num_workers > 0 else None, drop_last=False,
    )


def fixed_batch(dataset, count: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """The same few training items at every epoch, so sample grids show progress on fixed inputs."""
    n = len(dataset)
    idx = sorted({round(k * (n - 1) / max(1, count - 1)) for k in range(min(count, n))})
    dataset.set_epoch(0)
    items = [dataset[i] for i in idx]
    return {k: torch.stack([it[k] for it in items]).to(device) for k in ("a", "b")}


def preprocessing_record(cfg: RunConfig, size_multiple: int) -> Dict[str, Any]:
    """The ``preprocessing`` entry of ``translator.json`` for a run of ``cfg``."""
    d = cfg.data
    return {
        "input_nc": d.input_nc, "output_nc": d.output_nc, "value_range": [-1.0, 1.0],
        "size_multiple": size_multiple, "pad_mode": "reflect", "batchnorm": "per_image",
        "preprocess": d.preprocess, "load_size": d.load_size, "crop_size": d.crop_size,
        "direction": d.direction,
        **({"labels": {"label_nc": d.label_nc, "instance_channel": instance_channel(cfg)}} if d.label_nc else {}),
    }


@dataclass
class Trainables:
    """A method with everything one optimisation step needs."""

    method: Method
    optimizers: Dict[str, torch.optim.Optimizer]
    schedulers: Dict[str, Any]  # name -> LambdaLR (constant, then linear decay; stepped per epoch)
    scalers: Scalers
    amp: Any  # the autocast context of the run's precision
    device: torch.device
    precision: PrecisionChoice  # what the run computes in, and why (``--precision auto`` decides per net)

    def step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One optimisation step on a loader batch; returns the method's detached losses."""
        batch = {k: batch[k].to(self.device, non_blocking=True) for k in ("a", "b")}
        return self.method.train_step(batch, self.optimizers, self.scalers, self.amp)


def add_losses(sums: Dict[str, torch.Tensor], losses: Dict[str, torch.Tensor]) -> None:
    """Accumulate a step's losses into ``sums`` on the device (no host synchronisation)."""
    for k, v in losses.items():
        sums[k] = sums[k] + v if k in sums else v.clone()


def check_compile(device: torch.device, distributed: bool) -> None:
    """Refuse ``--compile`` where it cannot work here.

    Raises:
        TrainingError: several processes (the nets are trained through DistributedDataParallel,
            which this option does not compile), or a CPU run without a C++ compiler (TorchInductor
            generates C++ for the CPU).
    """
    if distributed:
        raise TrainingError("--compile is for single-process runs: under torchrun the networks are trained through "
                            "DistributedDataParallel, which --compile does not wrap; drop --compile or run one process")
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise TrainingError("--compile on the CPU needs a C++ compiler (g++ or clang++) on PATH: TorchInductor "
                            "generates C++ code; install one or drop --compile")


def compile_train_nets(method: Method) -> None:
    """Run the networks ``train_step`` calls through ``torch.compile``.

    Only ``method.train_nets`` change (``method.wrap``): ``method.nets`` keep the plain modules, so
    state_dict keys, checkpoints, resume, the weight average and the exported translator are as
    without compilation. Networks that a step calls through ``method.nets`` (the frozen
    discriminator of the generator update) run eagerly.
    """
    method.wrap(lambda net: torch.compile(net))


def enable_grad_checkpoint(method: Method) -> None:
    """Recompute the generators' blocks in the backward pass (``--grad-checkpoint``).

    Raises:
        TrainingError: a generator architecture without checkpointed blocks.
    """
    for name in method.generators.values():
        net = method.nets[name]
        if not set_grad_checkpoint(net, True):
            raise TrainingError(f"--grad-checkpoint: the generator {name} ({getattr(net, 'arch', type(net).__name__)}) "
                                "has no checkpointed blocks; it works with the unet, resnet and pix2pixhd generators")


def build_trainables(cfg: RunConfig, device: torch.device, rank: int = 0, distributed: bool = False) -> Trainables:
    """The method of ``cfg`` (initial weights from ``cfg.loop.seed``, the same on every rank) with
    its optimizers, schedulers, scalers and autocast context; with ``loop.compile`` the networks
    that ``train_step`` calls go through ``torch.compile`` (:func:`compile_train_nets`).

    Afterwards the global torch RNG is seeded per rank when ``distributed`` (dropout etc. differ
    between processes).
    """
    loop, d = cfg.loop, cfg.data
    torch.manual_seed(loop.seed)  # the same initial weights on every rank
    method = build_method(cfg.method, cfg.model, model_input_nc(cfg), d.output_nc, device, seed=loop.seed + 1000 * rank,
                          direction=d.generator_direction)
    if distributed:
        torch.manual_seed(loop.seed + 1000 * rank)
    check_sizes(cfg, method.size_multiple)
    check_multiscale_size(cfg)
    if loop.grad_checkpoint:
        enable_grad_checkpoint(method)
    if loop.compile:
        check_compile(device, distributed)
        compile_train_nets(method)
    optimizers = method.make_optimizers(loop)
    factor = linear_decay(loop.epochs, loop.epochs_decay)
    schedulers = {n: torch.optim.lr_scheduler.LambdaLR(o, factor) for n, o in optimizers.items()}
    choice = resolve_precision(loop.precision, device, work="train", arch=generator_arch(method))
    return Trainables(method, optimizers, schedulers, Scalers(optimizers, choice.precision, device),
                      autocast(device, choice.precision), device, choice)


def generator_arch(method: Method) -> str:
    """The architecture name of the method's (first) exported generator, e.g. "unet_256"."""
    net = method.nets[next(iter(method.generators.values()))]
    return getattr(net, "arch", type(net).__name__)
