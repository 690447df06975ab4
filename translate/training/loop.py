"""The one training loop, shared by every method.

It owns the step counter, the learning-rate schedule, precision, logging cadence, sample grids,
checkpoints, resume and graceful stops. Methods only provide networks, optimizers and a
``train_step`` (``translate.methods.Method``); the data path and the step itself are in
``translate.training.pipeline``.

Reproducibility: the data of every step is a pure function of (seed, epoch, position) (see
``pipeline``), and the global torch RNG (dropout, gradient-penalty mixing) is saved with every
checkpoint. A run resumed from a checkpoint therefore continues exactly as the uninterrupted run
would have on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from .. import distributed as D
from ..checkpoint import save_translator
from ..config import RunConfig
from ..fsutil import describe_os_error, is_write_failure, recover_dir
from ..runtime import DeviceError, resolve_device, resolve_precision, use_fast_kernels, warn_if_slow_precision
from .diagnostics import HealthReporter
from .ema import GeneratorEMA
from .health import (LoaderWorkerDied, NonFiniteError, NonFiniteTracker, StepGuard, batches, injected_nan_steps,
                     is_worker_death, nets_are_finite, poison, worker_death_message, write_failure_message)
from .logging import JsonlLog, save_grid
from .monitor import BestKeeper, EvaluateFn, Monitor
from .pipeline import (EpochSampler, TrainingError, add_losses, build_trainables, build_training_dataset,
                       fixed_batch, make_loader, preprocessing_record, resolve_num_workers)
from .state import (STATE_FILE, ResumeError, check_same_model, load_state, rng_state, save_state, set_rng_state,
                    write_run_json)
from .stop import StopRequest

__all__ = ["TrainResult", "TrainingError", "ResumeError", "train"]

STOP_CHECK_EVERY = 10  # steps between the ranks' agreement on stopping (torchrun runs only)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    stopped_by_signal: Optional[int] = None  # signal number when stopped by SIGINT/SIGTERM
    method: object = None  # the trained method object (its nets in .nets), for API users


def train(cfg: RunConfig, resume: bool = False, argv: Optional[Sequence[str]] = None,
          evaluate: Optional[EvaluateFn] = None) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.data.root``; write everything under ``checkpoints_dir/name``.

    Args:
        cfg: the resolved configuration (on resume, the caller loads it from run.json).
        resume: continue from ``train_state/latest.pt``.
        argv: the command line, recorded in run.json.
        evaluate: the evaluation function used by ``loop.eval_every`` (``translate.train`` passes
            ``translate.evaluate.evaluate``); required when ``eval_every`` is set.

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
    if cfg.loop.eval_every and evaluate is None:
        raise TrainingError("eval_every needs an evaluation function: call translate.train, "
                            "or pass evaluate=translate.evaluate.evaluate")
    try:
        device = resolve_device(cfg.loop.device)
        precision = resolve_precision(cfg.loop.precision, device, work="train").precision  # checked; per net later
    except DeviceError as e:
        raise TrainingError(str(e)) from None
    warn_if_slow_precision(device, precision)
    use_fast_kernels(device)  # fixed crop sizes: let cuDNN pick the fastest kernels
    dist_info = D.setup(device)
    run = None
    try:
        run = _Run(cfg, resume, argv, run_dir, D.rank_device(device, dist_info), dist_info, evaluate)
        return run.train()
    except OSError as e:
        if not is_write_failure(e):
            raise
        raise TrainingError(write_failure_message(e, run.step if run else None, run.saved_step if run else None,
                                                  run_dir)) from None
    finally:
        D.shutdown()


class _Run:
    """One training run: set up (or restored) in ``__init__``, trained by :meth:`train`.

    Every process of a torchrun job has one; only the main process writes files.
    """

    def __init__(self, cfg: RunConfig, resume: bool, argv, run_dir: Path, device: torch.device,
                 info: D.DistInfo, evaluate: Optional[EvaluateFn]):
        if info.enabled and cfg.model.gan_mode == "wgan-gp":
            raise TrainingError("wgan-gp is not supported with several processes (its gradient penalty needs "
                                "double backward, which DistributedDataParallel does not support)")
        self.cfg, self.loop, self.run_dir, self.device, self.info = cfg, cfg.loop, run_dir, device, info
        self.main = info.is_main
        self.evaluate_fn = evaluate
        self.parts = build_trainables(cfg, device, info.rank, info.enabled)
        self.precision = self.parts.precision  # what runs, and why (auto decides per device and generator)
        self.method = self.parts.method
        self.dataset = build_training_dataset(cfg, self.method.size_multiple)
        self.model_config = dataclasses.asdict(cfg.model)
        self.step = self.epoch = self.step_in_epoch = 0
        state = self._restore() if resume else None
        self.saved_step: Optional[int] = self.step if resume else None  # the step of the checkpoint on disk
        self._wrap_for_processes()
        self.ema = self._make_ema(state, resume)
        self.guard = self.parts.scalers = StepGuard(self.parts.scalers, self.method.nets.values(), info, device)
        self.nonfinite = NonFiniteTracker(self.loop.nonfinite_patience)
        self.inject_nan = injected_nan_steps()
        if self.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            recover_dir(run_dir / "translator")
            write_run_json(run_dir, cfg, argv, device, resume, self.step, info.world_size, self.precision.to_json())
        self.sampler = EpochSampler(len(self.dataset), self.loop.seed, info.rank, info.world_size)
        self.steps_per_epoch = math.ceil(self.sampler.per_rank / self.loop.batch_size)
        self.total_epochs = self.loop.epochs + self.loop.epochs_decay
        self.total_steps = self.total_epochs * self.steps_per_epoch
        if self.loop.max_steps is not None:
            self.total_steps = min(self.total_steps, self.loop.max_steps)

    # ------------------------------------------------------------------ setup
    def _restore(self) -> Dict[str, Any]:
        """Load ``train_state/latest.pt`` into the nets, optimizers, schedulers, scalers, method
        state and RNG; returns the state."""
        p, info = self.parts, self.info
        state = load_state(self.run_dir)
        check_same_model(state["model_config"], self.model_config, self.run_dir)
        for name, net in self.method.nets.items():
            net.load_state_dict(state["nets"][name])
        for name, opt in p.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in p.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        p.scalers.load_state_dict(state["scalers"])
        saved = state.get("precision")
        if saved and saved != self.precision.precision and info.is_main:
            print(f"note: this run was trained in {saved} and now continues in {self.precision.describe()}; "
                  "allowed, but it does not repeat the uninterrupted run exactly", file=sys.stderr)
        # Per-rank states when the world size is unchanged; otherwise every rank takes rank 0's.
        rank = info.rank if len(state["rng"]) == info.world_size else 0
        self.method.load_state_dict(state["method"][rank])
        set_rng_state(state["rng"][rank])
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        return state

    def _wrap_for_processes(self) -> None:
        """Under torchrun, train every network through DistributedDataParallel (the raw nets stay
        in ``method.nets``)."""
        if not self.info.enabled:
            if self.loop.sync_bn:
                print("note: --sync-bn has no effect in a single process", file=sys.stderr)
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        nets, device = self.method.nets, self.device
        if self.loop.sync_bn:
            if device.type != "cuda":
                raise TrainingError("--sync-bn needs CUDA (NCCL); on CPU batch norm stays per process")
            for name in list(nets):
                nets[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(nets[name])
        ids = [device.index] if device.type == "cuda" else None
        self.method.wrap(lambda net: DDP(net, device_ids=ids))

    def _make_ema(self, state: Optional[Dict[str, Any]], resume: bool) -> Optional[GeneratorEMA]:
        """The averaged generators that the translator exports; only the writing process keeps them."""
        if not self.main or self.loop.ema_decay <= 0:
            return None
        ema = GeneratorEMA({name: self.method.nets[name] for name in self.method.generators.values()},
                           self.loop.ema_decay)
        if resume and state.get("ema"):
            ema.load_state_dict(state["ema"])
        elif resume:
            print("note: this run's checkpoint has no weight average; it starts from the current weights",
                  file=sys.stderr)
        return ema

    def _open_outputs(self) -> None:
        """The loader, the fixed sample batch and the writers of the main process."""
        cfg, main, run_dir = self.cfg, self.main, self.run_dir
        self.loader = make_loader(self.dataset, self.sampler, self.loop.batch_size, cfg.data.num_workers,
                                  self.device)
        self.fixed = fixed_batch(self.dataset, self.loop.sample_count, self.device) if main else None
        self.log = JsonlLog(run_dir / "log.jsonl", resume_step=self.step) if main else None
        self.monitor = Monitor(run_dir, cfg) if main else None
        self.health = HealthReporter(self.method, cfg, self.log, self._say) if main else None
        self.keeper = BestKeeper(run_dir, cfg, self.evaluate_fn) if main and self.loop.eval_every else None
        self.preprocessing = preprocessing_record(cfg, self.method.size_multiple)
        if main:
            info = self.info
            procs = f" x {info.world_size} processes ({info.backend})" if info.enabled else ""
            print(f"{cfg.method}: {self.dataset.describe()}; {self.steps_per_epoch} steps/epoch, training to step "
                  f"{self.total_steps} on {self.device}{procs} in {self.precision.describe()}; outputs in {run_dir}",
                  file=sys.stderr)

    # ------------------------------------------------------------------ outputs
    def checkpoint(self) -> None:
        """Save the resume state and the translator folder.

        Collective on every rank (per-rank RNG streams and image pools), written by rank 0 only.
        """
        method, p, info = self.method, self.parts, self.info
        D.broadcast_buffers(method.nets.values(), info)
        rngs = D.gather_objects(rng_state(), info)
        method_states = D.gather_objects(method.state_dict(), info)
        if not nets_are_finite(method.nets.values()):
            raise NonFiniteError(f"step {self.step}: the networks hold non-finite weights; the checkpoint was not "
                                 f"written (the last good one in {self.run_dir / STATE_FILE} is unchanged). Try a "
                                 "lower --lr or --precision fp32, then --resume.")
        if not self.main:
            return
        ema = self.ema
        save_state(self.run_dir, step=self.step, epoch=self.epoch, step_in_epoch=self.step_in_epoch,
                   model_config=self.model_config, nets=method.nets, optimizers=p.optimizers,
                   schedulers=p.schedulers, scalers=p.scalers, method_states=method_states, rng_states=rngs,
                   ema=ema.state_dict() if ema is not None else None, precision=self.precision.precision)
        exported = ema.nets if ema is not None else method.nets
        save_translator(self.run_dir / "translator", self.cfg.method,
                        {dirn: exported[name] for dirn, name in method.generators.items()},
                        self.preprocessing,
                        {"run": self.cfg.name, "step": self.step, "epoch": self.epoch, "data": str(self.cfg.data.root),
                         "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         **method.provenance()})  # e.g. a student names its teacher
        self.saved_step = self.step

    def samples(self, tag: str) -> None:
        """The sample grid of the fixed batch (with the averaged generators when there are)."""
        if not self.main:
            return
        rng = torch.get_rng_state()  # sampling must not change the training random stream
        ema = self.ema
        with (ema.swapped_into(self.method.nets) if ema is not None else contextlib.nullcontext()):
            png = save_grid(self.method.sample(self.fixed, self.parts.amp), self.run_dir / "samples" / f"{tag}.png")
        torch.set_rng_state(rng)
        self.monitor.image(tag, png, self.step)

    def evaluate_now(self) -> None:
        if self.keeper is not None:
            record = self.keeper.evaluate(self.step)
            self.log.write(record)
            self.monitor.log(record)

    def _log_window(self) -> None:
        """Write the mean losses since the last log line (averaged over processes)."""
        elapsed = time.perf_counter() - self.window_start
        n, info = self.window_steps, self.info
        means = D.mean_over_ranks(self.sums, info)
        good = max(self.window_good, 1)
        record = {"step": self.step, "epoch": self.epoch + 1,
                  **{k: round(v.item() / good, 6) for k, v in means.items()}, "lr": self._lr(),
                  "images_per_s": round(n * self.loop.batch_size * info.world_size / max(elapsed, 1e-9), 3)}
        if self.nonfinite.skipped:
            record["skipped_steps"] = self.nonfinite.skipped
        if self.main:
            self.log.write(record)
            self.health.losses(self.step, record)
            self.monitor.log(record)
        postfix = {k: f"{v:.3g}" for k, v in record.items() if k not in ("step", "lr")}
        if self.main and self.health.active:
            postfix["health"] = ",".join(self.health.active)
        self.pbar.set_postfix(postfix, refresh=False)
        self.sums, self.window_start, self.window_steps, self.window_good = {}, time.perf_counter(), 0, 0

    def _say(self, line: str) -> None:
        self.pbar.write(line, file=sys.stderr)

    def _lr(self) -> float:
        return self.parts.optimizers[self.method.optimizer_names[0]].param_groups[0]["lr"]

    # ------------------------------------------------------------------ the loop
    def train(self) -> TrainResult:
        if self.step >= self.total_steps:
            print(f"{self.run_dir}: already trained for {self.step} steps (target {self.total_steps}); nothing "
                  "to do. Raise --max-steps or --epochs to train longer.", file=sys.stderr)
            return TrainResult(self.run_dir, self.step, self.epoch, method=self.method)
        self._open_outputs()
        from tqdm import tqdm

        self.pbar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                         desc=self.precision.precision,
                         file=sys.stderr, disable=None if self.main else True)
        self.sums: Dict[str, torch.Tensor] = {}
        self.window_start, self.window_steps, self.window_good = time.perf_counter(), 0, 0
        minutes = self.loop.max_minutes
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes
        for net in self.method.nets.values():
            net.train()  # sampling and evaluation work on copies, so the nets stay in training mode
        stopped_by = None
        with StopRequest() as stop:
            try:
                stopped_by = self._epochs(stop)
            except LoaderWorkerDied as e:
                self._stop_for_dead_worker(e)
            except RuntimeError as e:  # PyTorch's own report, from code outside batches()
                if not is_worker_death(e):
                    raise
                self._stop_for_dead_worker(LoaderWorkerDied(str(e), between_steps=False))
            finally:
                self.pbar.close()
                self._close_outputs()
        return TrainResult(self.run_dir, self.step, self.epoch, stopped_by, self.method)

    def _stop_for_dead_worker(self, error: LoaderWorkerDied) -> None:
        """Save the state when it is complete (the worker died between steps, single process), then stop."""
        saved = None
        if error.between_steps and not self.info.enabled:
            try:
                self.checkpoint()
                saved = self.step
            except RuntimeError as e:  # another worker dying during the save
                if not is_worker_death(e):
                    raise
        raise TrainingError(worker_death_message(error, self.step, saved, resolve_num_workers(
            self.cfg.data.num_workers))) from None

    def _close_outputs(self) -> None:
        """Close log.jsonl and draw losses.png; a failed write here is reported, not raised (the run's
        own outcome, or the error that stopped it, is what matters)."""
        if self.log is None:
            return
        try:
            self.log.close()
            self.monitor.close()
        except OSError as e:
            if not is_write_failure(e):
                raise
            print(f"warning: could not finish the run's log: {describe_os_error(e)}", file=sys.stderr)

    def _epochs(self, stop: StopRequest) -> Optional[int]:
        """Train epoch after epoch until the target; returns the stopping signal, if any."""
        loop = self.loop
        while self.step < self.total_steps and self.epoch < self.total_epochs:
            stopping = self._steps(stop)
            if self.step_in_epoch == self.steps_per_epoch:  # end of an epoch
                for sched in self.parts.schedulers.values():
                    sched.step()
                self.epoch += 1
                self.step_in_epoch = 0
                self.samples(f"epoch_{self.epoch:04d}")
                self.checkpoint()
                if loop.eval_every and (self.step % loop.eval_every == 0 or self.step >= self.total_steps):
                    self.evaluate_now()
            elif stopping or self.step >= self.total_steps:  # stopped within an epoch
                self.samples(f"step_{self.step:07d}")
                self.checkpoint()
                if loop.eval_every and self.step >= self.total_steps:
                    self.evaluate_now()
            if stopping:
                if stop.signum is None and self._out_of_time():
                    if self.main:
                        print(f"time budget of {loop.max_minutes} min reached at step {self.step}", file=sys.stderr)
                    return None
                return stop.signum or signal.SIGTERM  # a signal here, or on another rank
        return None

    def _steps(self, stop: StopRequest) -> bool:
        """Steps of the current epoch until it ends, the step target is reached or a stop is
        agreed on (returned); checkpoints and evaluations fall due in between."""
        loop = self.loop
        self.sampler.set_epoch(self.epoch, self.step_in_epoch * loop.batch_size)
        stopping = False
        for batch in batches(self.loader):
            if self.step + 1 in self.inject_nan:
                batch = poison(batch)
            self.guard.begin()
            losses = self.parts.step(batch)
            self.step += 1
            self.step_in_epoch += 1
            self.window_steps += 1
            self._after_step(losses, self.guard.end())
            self.pbar.update(1)
            if self.step % loop.log_every == 0 or self.step == self.total_steps:
                self._log_window()
            stopping = self._agree_to_stop(stop)
            if self.step_in_epoch == self.steps_per_epoch or stopping or self.step >= self.total_steps:
                break  # handled by the caller
            due_eval = loop.eval_every and self.step % loop.eval_every == 0
            if self.step % loop.save_every == 0 or due_eval:
                self.checkpoint()
            if due_eval:
                self.evaluate_now()
        return stopping

    def _after_step(self, losses: Dict[str, torch.Tensor], bad: Optional[str]) -> None:
        """Count a finished step: a good one updates the weight average and the loss sums; a
        non-finite one (already skipped by the guard) is reported, and stops the run when it is one
        too many in a row."""
        if self.nonfinite.record(self.step, bad):
            self._stop_nonfinite(bad)
        if bad is not None:
            if self.nonfinite.in_a_row == 1 and self.main:
                self._say(f"step {self.step}: non-finite loss ({bad}); the update was skipped")
                self.log.write({"step": self.step, "event": "nonfinite_skipped", "loss": bad})
            return
        if self.ema is not None:
            self.ema.update(self.step)
        self.window_good += 1
        add_losses(self.sums, losses)
        if self.main:
            self.health.samples(self.step, self.fixed, self.parts.amp, self._lr())

    def _stop_nonfinite(self, bad: str) -> None:
        """Put the last good checkpoint back into the nets (when there is one) and stop."""
        stop_step, lr = self.step, self._lr()
        restored = None
        if (self.run_dir / STATE_FILE).exists():
            state = self._restore()
            if self.ema is not None and state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            restored = self.step
        message = self.nonfinite.message(stop_step, bad, restored, self.loop.precision, lr)
        if self.main:
            self.log.write({"step": stop_step, "event": "nonfinite_stop", "loss": bad, "restored_step": restored})
        raise NonFiniteError(message)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _agree_to_stop(self, stop: StopRequest) -> bool:
        """Whether to stop after this step; all ranks must agree, so they compare notes every few steps."""
        info = self.info
        if not info.enabled or self.step % STOP_CHECK_EVERY == 0 or self.step_in_epoch == self.steps_per_epoch:
            return D.any_rank(stop.signum is not None or self._out_of_time(), info, self.device)
        return False
