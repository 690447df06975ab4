"""Dynamic micro-batching: concurrent requests of the same size share one network call.

One worker thread owns the network (the :class:`~translate.Translator` runs one call at a time).
Requests wait in groups keyed by (direction, tensor shape). The worker takes the group whose
oldest request arrived first and runs it as soon as it holds ``max_batch`` requests or that
request has waited ``max_wait_ms``; a group never exceeds the translator's tile pixel budget.

The queue is bounded: :meth:`MicroBatcher.submit` raises :class:`QueueFull` instead of letting
memory grow under overload. A request whose future was cancelled (its client went away) is
dropped before it reaches the network. :meth:`MicroBatcher.close` stops taking requests and, by
default, finishes every queued one before the worker exits.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from typing import Callable, Deque, List, Optional, Tuple

import torch

from ..runtime import release_free_memory

Key = Tuple[str, Tuple[int, ...]]  # (direction, (C, H, W))


class QueueFull(Exception):
    """The batcher already holds ``max_queue`` requests; try again later."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new requests."""


class _Item:
    __slots__ = ("x", "future", "arrived")

    def __init__(self, x: torch.Tensor, future: Future, arrived: float):
        self.x, self.future, self.arrived = x, future, arrived


class MicroBatcher:
    """Batches same-size requests for one translator on one device.

    Args:
        run: ``run(batch (B, C, H, W), direction) -> (B, C_out, H, W)``, e.g.
            ``translator.translate_tensor``; called only from the worker thread.
        max_batch: most requests in one network call.
        max_wait_ms: how long the oldest request of a group waits for company.
        max_queue: most requests waiting (not yet running); more raise :class:`QueueFull`.
        max_batch_pixels: a group stops growing when its total pixels would exceed this.
        on_batch: called with the size of every batch run (metrics).
        trim_every_s: after a batch, hand the allocator's cached free memory back to the system
            when this many seconds have passed since the last time (None: never), so that the
            resident size of a long-running server does not creep up.
    """

    def __init__(self, run: Callable[[torch.Tensor, str], torch.Tensor], max_batch: int = 8,
                 max_wait_ms: float = 10.0, max_queue: int = 64, max_batch_pixels: Optional[int] = None,
                 on_batch: Optional[Callable[[int], None]] = None, name: str = "translate-batcher",
                 trim_every_s: Optional[float] = 1.0):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0; got "
                             f"{max_batch}, {max_queue}, {max_wait_ms}")
        self.run, self.max_batch, self.max_queue = run, max_batch, max_queue
        self.max_wait = max_wait_ms / 1000.0
        self.max_batch_pixels = max_batch_pixels
        self.on_batch = on_batch
        self.trim_every_s, self._trimmed = trim_every_s, time.monotonic()
        self._groups: "OrderedDict[Key, Deque[_Item]]" = OrderedDict()
        self._depth = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting for the network (not counting the batch that is running)."""
        return self._depth

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, x: torch.Tensor, direction: str) -> Future:
        """Queue one image ``(C, H, W)`` in [-1, 1]; the future gives its output ``(C_out, H, W)``.

        Raises:
            QueueFull: ``max_queue`` requests are already waiting.
            BatcherClosed: :meth:`close` was called.
        """
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if self._depth >= self.max_queue:
                raise QueueFull(f"{self._depth} requests are waiting (--max-queue {self.max_queue})")
            key = (direction, tuple(x.shape))
            self._groups.setdefault(key, deque()).append(_Item(x, fut, time.monotonic()))
            self._depth += 1
            self._cond.notify()
        return fut

    def close(self, drain: bool = True, timeout: Optional[float] = None) -> None:
        """Take no new requests; finish the queued ones (``drain``) or cancel them, then stop."""
        with self._cond:
            self._closed = True
            if not drain:
                for group in self._groups.values():
                    for item in group:
                        item.future.cancel()
                self._groups.clear()
                self._depth = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _next_batch(self) -> Optional[Tuple[str, List[_Item]]]:
        """Blocks until a group is ready; None when closed and empty."""
        with self._cond:
            while True:
                if not self._groups:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                # The group whose oldest request came first: groups keep arrival order, but a
                # group emptied and refilled moves to the end, so look at every head.
                key = min(self._groups, key=lambda k: self._groups[k][0].arrived)
                group = self._groups[key]
                limit = self._limit(key)
                wait = group[0].arrived + self.max_wait - time.monotonic()
                if len(group) >= limit or wait <= 0 or self._closed:
                    items = [group.popleft() for _ in range(min(limit, len(group)))]
                    if not group:
                        del self._groups[key]
                    self._depth -= len(items)
                    return key[0], items
                self._cond.wait(wait)

    def _limit(self, key: Key) -> int:
        if self.max_batch_pixels is None:
            return self.max_batch
        pixels = key[1][-1] * key[1][-2]
        return max(1, min(self.max_batch, self.max_batch_pixels // max(1, pixels)))

    def _work(self) -> None:
        while True:
            nxt = self._next_batch()
            if nxt is None:
                return
            direction, items = nxt
            # A cancelled future (client gone) is dropped here, before it costs network time.
            items = [it for it in items if it.future.set_running_or_notify_cancel()]
            if not items:
                continue
            try:
                y = self.run(torch.stack([it.x for it in items]), direction)
            except BaseException as e:  # noqa: BLE001 - every waiter must hear about it
                for it in items:
                    it.future.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(items))
            for it, y_i in zip(items, y):
                it.future.set_result(y_i)
            del y
            if self.trim_every_s is not None and time.monotonic() - self._trimmed >= self.trim_every_s:
                release_free_memory()
                self._trimmed = time.monotonic()


def batch_sizes_buckets(max_batch: int) -> List[float]:
    """Histogram buckets that resolve every batch size from 1 to ``max_batch``."""
    return [float(b) for b in range(1, max_batch + 1)]


__all__ = ["MicroBatcher", "QueueFull", "BatcherClosed", "batch_sizes_buckets"]
