"""The one training loop, shared by every method.

It owns the step counter, the learning-rate schedule, precision, logging cadence, sample grids,
checkpoints, resume and graceful stops. Methods only provide networks, optimizers and a
``train_step``.

Reproducibility: item ``i`` of epoch ``e`` is a pure function of (seed, e, i) (see
``translate.data``), the order of items in an epoch is a permutation drawn from (seed, e), and the
global torch RNG (dropout, gradient-penalty mixing) is saved with every checkpoint. A run resumed
from a checkpoint therefore continues exactly as the uninterrupted run would have on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import distributed as D
from ..checkpoint import save_translator, versions
from ..config import RunConfig
from ..errors import UserError
from ..fsutil import atomic_write_text, recover_dir
from ..methods import build_method
from ..methods.common import Scalers, autocast, linear_decay, warn_if_slow_precision
from .ema import GeneratorEMA
from .logging import JsonlLog, save_grid
from .monitor import BestKeeper, Monitor
from .state import STATE_FILE, ResumeError, check_same_model, load_state, rng_state, save_state, set_rng_state


STOP_CHECK_EVERY = 10  # steps between the ranks' agreement on stopping (torchrun runs only)


class TrainingError(UserError):
    """Training cannot start or go on; the message says why and what to do."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    stopped_by_signal: Optional[int] = None  # signal number when stopped by SIGINT/SIGTERM
    method: object = None  # the trained method object (its nets in .nets), for API users


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
    return device


def default_num_workers() -> int:
    """Loader processes: leave one core to the training process, use at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


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


def _worker_init(_worker_id: int) -> None:
    # The main process handles Ctrl-C (finishing the step and saving); workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(0)  # one decode per worker process; OpenCV threads would oversubscribe the cores


class _StopRequest:
    """SIGINT/SIGTERM set a flag checked after each step; a second signal stops at once."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step and saving a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _build_dataset(cfg: RunConfig, size_multiple: int):
    from ..data import build_dataset

    d = cfg.data
    return build_dataset(
        d.root, method=cfg.method, split=d.split, layout=d.layout, direction=d.direction,
        input_nc=d.input_nc, output_nc=d.output_nc, preprocess=d.preprocess, load_size=d.load_size,
        crop_size=d.crop_size, flip=d.flip, size_multiple=size_multiple, seed=cfg.loop.seed,
        skip_bad_images=d.skip_bad_images, max_items=d.max_items,
    )


def _check_sizes(cfg: RunConfig, size_multiple: int) -> None:
    d = cfg.data
    if d.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and d.crop_size % size_multiple:
        raise TrainingError(
            f"generator {cfg.model.netG} needs image sides that are multiples of {size_multiple}, "
            f"but crop_size is {d.crop_size}. Use --crop-size {max(size_multiple, d.crop_size // size_multiple * size_multiple)}"
            " or a generator with fewer downsamplings (e.g. --netG unet_128 for 128x128 crops)."
        )


def _preprocessing_record(cfg: RunConfig, size_multiple: int) -> Dict:
    d = cfg.data
    return {
        "input_nc": d.input_nc, "output_nc": d.output_nc, "value_range": [-1.0, 1.0],
        "size_multiple": size_multiple, "pad_mode": "reflect", "batchnorm": "per_image",
        "preprocess": d.preprocess, "load_size": d.load_size, "crop_size": d.crop_size,
        "direction": d.direction,
    }


def _fixed_batch(dataset, count: int, device) -> Dict[str, torch.Tensor]:
    """The same few training items at every epoch, so sample grids show progress on fixed inputs."""
    n = len(dataset)
    idx = sorted({round(k * (n - 1) / max(1, count - 1)) for k in range(min(count, n))})
    dataset.set_epoch(0)
    items = [dataset[i] for i in idx]
    return {k: torch.stack([it[k] for it in items]).to(device) for k in ("a", "b")}


def train(cfg: RunConfig, resume: bool = False, argv: Optional[Sequence[str]] = None) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.data.root``; write everything under ``checkpoints_dir/name``.

    Args:
        cfg: the resolved configuration (on resume, the caller loads it from run.json).
        resume: continue from ``train_state/latest.pt``.
        argv: the command line, recorded in run.json.

    Returns:
        TrainResult with the run folder and where training stopped.

    Raises:
        TrainingError, ResumeError, translate.data.DatasetError: with a message for the user.
    """
    cfg.validate()
    run_dir = Path(cfg.checkpoints_dir) / cfg.name
    state_path = run_dir / STATE_FILE
    if not resume and state_path.exists():
        raise TrainingError(
            f"{run_dir} already holds a training run. Pass --resume to continue it, "
            "or choose another --name (nothing was changed)."
        )
    if resume and not state_path.exists():
        raise ResumeError(f"nothing to resume: {state_path} does not exist (start the run without --resume)")

    loop = cfg.loop
    device = resolve_device(loop.device)
    if loop.precision == "fp16" and device.type != "cuda":
        raise TrainingError("fp16 training needs a CUDA device; on CPU use --precision bf16 or fp32")
    warn_if_slow_precision(device, loop.precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick the fastest kernels
    dist_info = D.setup(device)
    try:
        return _train(cfg, resume, argv, run_dir, D.rank_device(device, dist_info), dist_info)
    finally:
        D.shutdown()


def _wrap_ddp(method, info: D.DistInfo, device: torch.device, sync_bn: bool) -> None:
    """Wrap every trained network in DistributedDataParallel (the raw nets stay in method.nets)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn:
        if device.type != "cuda":
            raise TrainingError("--sync-bn needs CUDA (NCCL); on CPU batch norm stays per process")
        for name in list(method.nets):
            method.nets[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method.nets[name])
    ids = [device.index] if device.type == "cuda" else None
    method.train_nets = {name: DDP(net, device_ids=ids) for name, net in method.nets.items()}


def _train(cfg: RunConfig, resume: bool, argv, run_dir: Path, device: torch.device, info: D.DistInfo) -> TrainResult:
    loop, d = cfg.loop, cfg.data
    if info.enabled and cfg.model.gan_mode == "wgan-gp":
        raise TrainingError("wgan-gp is not supported with several processes (its gradient penalty needs "
                            "double backward, which DistributedDataParallel does not support)")
    torch.manual_seed(loop.seed)  # the same initial weights on every rank
    method = build_method(cfg.method, cfg.model, d.input_nc, d.output_nc, device, direction=d.generator_direction,
                          **({"seed": loop.seed + 1000 * info.rank} if cfg.method == "cyclegan" else {}))
    if info.enabled:
        torch.manual_seed(loop.seed + 1000 * info.rank)  # dropout etc. differ between ranks
    size_multiple = method.size_multiple
    _check_sizes(cfg, size_multiple)
    dataset = _build_dataset(cfg, size_multiple)
    optimizers = method.make_optimizers(loop)
    factor = linear_decay(loop.epochs, loop.epochs_decay)
    schedulers = {n: torch.optim.lr_scheduler.LambdaLR(o, factor) for n, o in optimizers.items()}
    scalers = Scalers(optimizers, loop.precision, device)
    amp = autocast(device, loop.precision)
    model_config = dataclasses.asdict(cfg.model)

    step = epoch = step_in_epoch = 0
    if resume:
        state = load_state(run_dir)
        check_same_model(state["model_config"], model_config, run_dir)
        for name, net in method.nets.items():
            net.load_state_dict(state["nets"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        scalers.load_state_dict(state["scalers"])
        # Per-rank states when the world size is unchanged; otherwise every rank takes rank 0's.
        same_world = len(state["rng"]) == info.world_size
        method.load_state_dict(state["method"][info.rank if same_world else 0])
        set_rng_state(state["rng"][info.rank if same_world else 0])
        step, epoch, step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
    if info.enabled:
        _wrap_ddp(method, info, device, loop.sync_bn)
    elif loop.sync_bn:
        print("note: --sync-bn has no effect in a single process", file=sys.stderr)

    main = info.is_main
    # The averaged generators are what the translator exports; only the writing process keeps them.
    ema = None
    if main and loop.ema_decay > 0:
        ema = GeneratorEMA({name: method.nets[name] for name in method.generators.values()}, loop.ema_decay)
        if resume and state.get("ema"):
            ema.load_state_dict(state["ema"])
        elif resume:
            print("note: this run's checkpoint has no weight average; it starts from the current weights",
                  file=sys.stderr)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        recover_dir(run_dir / "translator")
        _write_run_json(run_dir, cfg, argv, device, resume, step, info.world_size)

    bs = loop.batch_size
    sampler = EpochSampler(len(dataset), loop.seed, info.rank, info.world_size)
    steps_per_epoch = math.ceil(sampler.per_rank / bs)
    total_epochs = loop.epochs + loop.epochs_decay
    total_steps = total_epochs * steps_per_epoch
    if loop.max_steps is not None:
        total_steps = min(total_steps, loop.max_steps)
    if step >= total_steps:
        print(f"{run_dir}: already trained for {step} steps (target {total_steps}); nothing to do. "
              "Raise --max-steps or --epochs to train longer.", file=sys.stderr)
        return TrainResult(run_dir, step, epoch, method=method)

    num_workers = default_num_workers() if d.num_workers < 0 else d.num_workers
    loader = DataLoader(
        EpochIndexed(dataset), batch_size=bs, sampler=sampler, num_workers=num_workers,
        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
        worker_init_fn=_worker_init if num_workers > 0 else None, drop_last=False,
    )
    fixed = _fixed_batch(dataset, loop.sample_count, device) if main else None
    log = JsonlLog(run_dir / "log.jsonl", resume_step=step) if main else None
    monitor = Monitor(run_dir, cfg) if main else None
    keeper = BestKeeper(run_dir, cfg) if main and loop.eval_every else None
    preprocessing = _preprocessing_record(cfg, size_multiple)
    if main:
        procs = f" x {info.world_size} processes ({info.backend})" if info.enabled else ""
        print(f"{cfg.method}: {dataset.describe()}; {steps_per_epoch} steps/epoch, training to step "
              f"{total_steps} on {device}{procs} ({loop.precision}); outputs in {run_dir}", file=sys.stderr)

    def checkpoint() -> None:
        # Collective on every rank (per-rank RNG streams and image pools), written by rank 0 only.
        D.broadcast_buffers(method.nets.values(), info)
        rngs = D.gather_objects(rng_state(), info)
        method_states = D.gather_objects(method.state_dict(), info)
        if not main:
            return
        save_state(run_dir, step=step, epoch=epoch, step_in_epoch=step_in_epoch, model_config=model_config,
                   nets=method.nets, optimizers=optimizers, schedulers=schedulers, scalers=scalers,
                   method_states=method_states, rng_states=rngs,
                   ema=ema.state_dict() if ema is not None else None)
        exported = ema.nets if ema is not None else method.nets
        save_translator(run_dir / "translator", cfg.method,
                        {dirn: exported[name] for dirn, name in method.generators.items()},
                        preprocessing,
                        {"run": cfg.name, "step": step, "epoch": epoch, "data": str(d.root),
                         "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    def samples(tag: str) -> None:
        if not main:
            return
        rng = torch.get_rng_state()  # sampling must not change the training random stream
        with (ema.swapped_into(method.nets) if ema is not None else contextlib.nullcontext()):
            png = save_grid(method.sample(fixed, amp), run_dir / "samples" / f"{tag}.png")
        torch.set_rng_state(rng)
        monitor.image(tag, png, step)

    def evaluate_now() -> None:
        if keeper is not None:
            record = keeper.evaluate(step)
            log.write(record)
            monitor.log(record)

    from tqdm import tqdm

    pbar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr,
                disable=None if main else True)
    sums: Dict[str, torch.Tensor] = {}
    window_start, window_steps = time.perf_counter(), 0
    stopped_by = None
    deadline = None if loop.max_minutes is None else time.monotonic() + 60 * loop.max_minutes

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    stopping = False
    for net in method.nets.values():
        net.train()  # sampling and evaluation work on copies, so the nets stay in training mode
    with _StopRequest() as stop:
        try:
            while step < total_steps and epoch < total_epochs:
                sampler.set_epoch(epoch, step_in_epoch * bs)
                for batch in loader:
                    batch = {k: batch[k].to(device, non_blocking=True) for k in ("a", "b")}
                    losses = method.train_step(batch, optimizers, scalers, amp)
                    step += 1
                    if ema is not None:
                        ema.update(step)
                    step_in_epoch += 1
                    window_steps += 1
                    for k, v in losses.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    pbar.update(1)
                    if step % loop.log_every == 0 or step == total_steps:
                        elapsed = time.perf_counter() - window_start
                        means = D.mean_over_ranks(sums, info)  # losses averaged over processes
                        record = {"step": step, "epoch": epoch + 1,
                                  **{k: round(v.item() / window_steps, 6) for k, v in means.items()},
                                  "lr": optimizers["gen"].param_groups[0]["lr"],
                                  "images_per_s": round(window_steps * bs * info.world_size / max(elapsed, 1e-9), 3)}
                        if main:
                            log.write(record)
                            monitor.log(record)
                        pbar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k not in ("step", "lr")},
                                         refresh=False)
                        sums, window_start, window_steps = {}, time.perf_counter(), 0
                    # All ranks must agree on when to stop; they compare notes every few steps.
                    if not info.enabled or step % STOP_CHECK_EVERY == 0 or step_in_epoch == steps_per_epoch:
                        stopping = D.any_rank(stop.signum is not None or out_of_time(), info, device)
                    else:
                        stopping = False
                    if step_in_epoch == steps_per_epoch:
                        break  # epoch end is handled below
                    if stopping or step >= total_steps:
                        break
                    if step % loop.save_every == 0 or (loop.eval_every and step % loop.eval_every == 0):
                        checkpoint()
                    if loop.eval_every and step % loop.eval_every == 0:
                        evaluate_now()
                if step_in_epoch == steps_per_epoch:
                    for sched in schedulers.values():
                        sched.step()
                    epoch += 1
                    step_in_epoch = 0
                    samples(f"epoch_{epoch:04d}")
                    checkpoint()
                    if loop.eval_every and (step % loop.eval_every == 0 or step >= total_steps):
                        evaluate_now()
                elif stopping or step >= total_steps:
                    samples(f"step_{step:07d}")
                    checkpoint()
                    if loop.eval_every and step >= total_steps:
                        evaluate_now()
                if stopping:
                    if stop.signum is None and out_of_time():
                        if main:
                            print(f"time budget of {loop.max_minutes} min reached at step {step}", file=sys.stderr)
                    else:  # a signal here, or on another rank
                        stopped_by = stop.signum or signal.SIGTERM
                    break
        finally:
            pbar.close()
            if log is not None:
                log.close()
                monitor.close()
    return TrainResult(run_dir, step, epoch, stopped_by, method)


def _write_run_json(run_dir: Path, cfg: RunConfig, argv, device, resume: bool, step: int,
                    world_size: int = 1) -> None:
    path = run_dir / "run.json"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if resume and path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc.setdefault("resumes", []).append({"argv": list(argv or []), "step": step, "time": now,
                                              "device": str(device), "processes": world_size,
                                              "config": cfg.to_dict()})
    else:
        doc = {"config": cfg.to_dict(), "argv": list(argv or []), "created": now, "device": str(device),
               "processes": world_size, "versions": versions()}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def load_run_config(run_dir: Path) -> RunConfig:
    """The configuration a run was started with (``run.json``), for ``--resume``."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ResumeError(f"nothing to resume: {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig.from_dict(doc["config"])
    except (json.JSONDecodeError, KeyError) as e:
        raise ResumeError(f"{path} is not a valid run description ({e})") from None
