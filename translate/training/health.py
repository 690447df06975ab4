"""The non-finite guard: a training step whose losses are not finite changes nothing.

Every method updates its networks through the same two calls, ``scalers.backward(name, loss)``
and ``scalers.step(name, optimizer)`` (``translate.methods``). :class:`StepGuard` stands in for the
run's :class:`~translate.runtime.Scalers` and checks, before each optimizer update, that the loss
being stepped is finite: one scalar host synchronisation per update (two per step of a GAN),
nothing else. Once a step has seen a non-finite loss, that update and every later one of the
same step are skipped, the loop skips the weight-average (EMA) update, and the networks' buffers
(batch-norm running statistics, which a forward pass on non-finite values spoils) are put back as
they were before the step. Under torchrun the flag is reduced over the ranks (any rank bad: all
skip), so every process takes the same decision.

:class:`NonFiniteTracker` counts skipped steps; after ``loop.nonfinite_patience`` bad steps in a
row the loop restores the last saved ``train_state`` and stops with :class:`NonFiniteError`.

A test hook: the environment variable ``TRANSLATE_INJECT_NAN`` (step numbers, comma-separated,
``a-b`` for a range) makes the loop poison the input images of those steps with NaN, a real
non-finite batch going through the real step.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional

import torch
from torch import nn

from .. import distributed as D
from ..fsutil import describe_os_error
from .pipeline import TrainingError

INJECT_ENV = "TRANSLATE_INJECT_NAN"


class NonFiniteError(TrainingError):
    """Training stopped after too many non-finite steps in a row; the message says what to try."""


def injected_nan_steps() -> FrozenSet[int]:
    """The steps ``TRANSLATE_INJECT_NAN`` asks to poison (``"5,9-11"`` -> {5, 9, 10, 11})."""
    text = os.environ.get(INJECT_ENV, "").strip()
    steps = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            steps.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise TrainingError(f"{INJECT_ENV}={text!r}: expected step numbers like 5,9-11") from None
    return frozenset(steps)


def poison(batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The batch with its input images ``a`` replaced by NaN (the test hook)."""
    return {**batch, "a": torch.full_like(batch["a"], float("nan"))}


class StepGuard:
    """Wraps the run's scalers: optimizer updates happen only while the step's losses are finite.

    Args:
        scalers: the run's :class:`~translate.runtime.Scalers` (updates and loss scaling go through it).
        nets: the raw networks whose buffers a skipped step restores.
        info: the process group (flags are reduced over ranks when it is enabled).
        device: where the reduction tensor lives.
    """

    def __init__(self, scalers, nets: Iterable[nn.Module], info: D.DistInfo, device: torch.device):
        self.scalers, self.info, self.device = scalers, info, device
        self.buffers: List[torch.Tensor] = [b for net in nets for b in net.buffers()]
        self.saved: List[torch.Tensor] = [b.detach().clone() for b in self.buffers]
        self.losses: Dict[str, torch.Tensor] = {}
        self.bad: Optional[str] = None  # "name = value" of the first non-finite loss of the step

    @property
    def enabled(self) -> bool:
        return self.scalers.enabled

    def begin(self) -> None:
        """Before a step: remember the buffers, clear the flag."""
        if self.buffers:
            torch._foreach_copy_(self.saved, self.buffers)
        self.losses.clear()
        self.bad = None

    def backward(self, name: str, loss: torch.Tensor) -> None:
        self.losses[name] = loss.detach()
        self.scalers.backward(name, loss)  # always: under DDP every rank must take part in the all-reduce

    def step(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        """Update with ``optimizer`` unless this or an earlier loss of the step was not finite."""
        if self.bad is None:
            loss = self.losses.get(name)
            finite = loss is None or bool(torch.isfinite(loss).all())  # the one synchronisation
            if D.any_rank(not finite, self.info, self.device):
                self.bad = f"loss_{name} = {float(loss.float().sum()) if loss is not None else 'nan'}"
                if finite:
                    self.bad = f"loss_{name} on another process"
        if self.bad is None:
            self.scalers.step(name, optimizer)
        else:
            optimizer.zero_grad(set_to_none=True)

    def end(self) -> Optional[str]:
        """After a step: None when it was good; otherwise restore the buffers and return what was bad."""
        if self.bad is not None and self.buffers:
            torch._foreach_copy_(self.buffers, self.saved)
        return self.bad

    def state_dict(self):
        return self.scalers.state_dict()

    def load_state_dict(self, state) -> None:
        self.scalers.load_state_dict(state)


class NonFiniteTracker:
    """Counts skipped steps and bad steps in a row; says when to give up.

    Args:
        patience: bad steps in a row that stop the run.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.skipped = 0
        self.in_a_row = 0
        self.first_bad_step: Optional[int] = None

    def record(self, step: int, bad: Optional[str]) -> bool:
        """Count step ``step``; True when the run must stop."""
        if bad is None:
            self.in_a_row = 0
            return False
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row == 1:
            self.first_bad_step = step
        return self.in_a_row >= self.patience

    def message(self, step: int, bad: str, restored_step: Optional[int], precision: str, lr: float) -> str:
        """What stopped the run, what state it is in and what to try."""
        if restored_step is None:
            state = "no checkpoint had been saved yet, so there is nothing to resume; start again"
        else:
            state = (f"the nets were restored from the last good checkpoint (step {restored_step}, "
                     "train_state/latest.pt, left unchanged); --resume continues from there")
        tips = [f"a lower --lr (now {lr:g})"]
        if precision != "fp32":
            tips.append(f"--precision fp32 (now {precision})")
        tips += ["`translate check-data` on the data", "another --gan-mode (lsgan is the most stable)"]
        return (f"training stopped at step {step}: {self.in_a_row} steps in a row (from step {self.first_bad_step}) had "
                f"non-finite losses ({bad}); each was skipped. {state[0].upper() + state[1:]}. Try: "
                + ", ".join(tips) + ".")


def nets_are_finite(nets: Iterable[nn.Module]) -> bool:
    """Whether every floating-point parameter and buffer of ``nets`` is finite (one synchronisation)."""
    tensors = [t for net in nets for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    norms = torch._foreach_norm([t.detach().float() for t in tensors])
    return math.isfinite(float(torch.stack(norms).sum()))


class LoaderWorkerDied(TrainingError):
    """A data-loader worker process died (killed by the out-of-memory killer, say).

    Attributes:
        between_steps: True when it was noticed while waiting for a batch, so the networks hold the
            complete state after the last step (it can be saved); False when it interrupted a step.
    """

    def __init__(self, detail: str, between_steps: bool):
        super().__init__(detail)
        self.detail, self.between_steps = detail, between_steps


def is_worker_death(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch's report of a DataLoader worker that exited or was killed."""
    return isinstance(error, RuntimeError) and "DataLoader worker" in str(error)


def batches(loader) -> Iterator:
    """The batches of ``loader``; a dead worker raises :class:`LoaderWorkerDied` between steps.

    PyTorch notices a dead worker in two ways: its SIGCHLD handler raises at whatever line the
    main thread is running (possibly between the generator and discriminator updates of a step,
    leaving a state that must not be saved), and ``next()`` finds the worker gone while waiting
    for its batch (within 5 s). While the batches are drawn here the first is switched off, so the
    error always arrives between two steps and the state after the last step can be saved.
    """
    try:
        it = iter(loader)  # creates (or, persistent, resets) the workers; no step is under way here
    except RuntimeError as e:
        if not is_worker_death(e):
            raise
        raise LoaderWorkerDied(str(e), between_steps=True) from None
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL) if main_thread else None
    try:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except RuntimeError as e:
                if not is_worker_death(e):
                    raise
                raise LoaderWorkerDied(str(e), between_steps=True) from None
            except (ConnectionError, EOFError) as e:  # a worker killed while handing over its batch
                raise LoaderWorkerDied(f"a worker's batch could not be received ({type(e).__name__}: {e})",
                                       between_steps=True) from None
            yield batch
    finally:
        if main_thread:
            signal.signal(signal.SIGCHLD, previous)


def worker_death_message(error: LoaderWorkerDied, step: int, saved: Optional[int], num_workers: int) -> str:
    """One paragraph: what happened, what state the run is in, what to try."""
    state = (f"a checkpoint of step {saved} is saved; continue with --resume" if saved is not None else
             "the last saved checkpoint, if any, is kept; continue with --resume")
    return (f"training stopped at step {step}: a data-loader worker process died ({error.detail.strip()}). This is "
            "usually the kernel's out-of-memory killer (see `dmesg`). Try fewer loader processes (--num-workers, "
            f"now {num_workers}), a smaller --batch-size or --load-size, or more memory; {state}.")


def write_failure_message(error: OSError, step: Optional[int], saved_step: Optional[int], run_dir: Path) -> str:
    """One line for a run stopped by a failed write (full disk, I/O error, permission): where it
    stopped, what failed, which checkpoint is intact and what to do."""
    where = f"at step {step}" if step is not None else "before the first step"
    if saved_step is not None:
        kept = (f"the last complete checkpoint (step {saved_step}) in {run_dir} is intact; fix the cause, then add "
                "--resume")
    else:
        kept = "no checkpoint had been written yet; fix the cause, then start the run again"
    return f"training stopped {where}: could not write {describe_os_error(error)}; {kept}"
