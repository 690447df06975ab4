"""The conversion of a list of planned items with one loaded translator: read, decode, translate,
encode, write. Every engine runs this: the local engine over the whole plan, each torchrun process
over its share, each Ray actor over the batches it is given.

Decoding and encoding run in threads (OpenCV releases the GIL) overlapped with the network, which
sees batches of same-size images; images above the translator's tile budget take its tiled path.

Each item ends in exactly one call of ``on_done(item, error)``: ``error`` is None when its output
was written, else the reason it failed (one line). :func:`write_output` is the one place an
output is written.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from ..data.io import ImageReadError, decode_image, encode_image, fit_to_format
from ..fsutil import describe_os_error, is_disk_full
from ..storage import Folder
from .plan import ConvertError, Item, OutputFullError, StreamOptions

OnDone = Callable[[Item, Optional[str]], None]


def write_output(output: Folder, dst: str, arr: np.ndarray, quality: Optional[int]) -> None:
    """Encode ``arr`` in the format of ``dst``'s extension and write it atomically into ``output``.

    Raises:
        ValueError: the image cannot be encoded in that format.
        OSError: the write failed (nothing partial is left).
    """
    ext = "." + dst.rpartition(".")[2]
    data = encode_image(fit_to_format(arr, ext), ext, quality=quality, name=output.join(dst))
    output.put(dst, data)


class Stream:
    """Converts items from ``inputs`` into ``output`` with ``translator`` (see the module doc)."""

    def __init__(self, translator, inputs: Folder, output: Folder, opts: StreamOptions, on_done: OnDone):
        self.t, self.inputs, self.output, self.opts, self.on_done = translator, inputs, output, opts, on_done
        self.labels = getattr(translator, "labels", None)
        if self.labels is not None and not inputs.local:
            raise ConvertError(f"label-map translators convert local folders only, not {inputs}")
        self.pending_writes: deque = deque()

    # ------------------------------------------------------------------ one file
    def decode(self, item: Item):
        """Read and decode one input; returns (array, what translator.prepare made of it)."""
        t, o = self.t, self.opts
        where = self.inputs.join(item.src)
        if self.labels is None:
            try:
                data = self.inputs.read_bytes(item.src)
            except OSError as e:
                raise ImageReadError(where, f"cannot read the file ({e.strerror or e})") from None
            arr = decode_image(data, where, max_pixels=o.max_pixels)
            return arr, t.prepare(arr, o.direction, o.resize)
        arr = t.read(where, max_pixels=o.max_pixels)  # class IDs, one-hot encoded by prepare
        inst = None
        if o.instance_maps is not None:
            key = item.src.rpartition(".")[0]
            if key not in o.instance_maps:
                raise ValueError("no instance map for it in the instance folder (matched by relative path)")
            inst = t.read(o.instance_maps[key], max_pixels=o.max_pixels)
        return arr, t.prepare(arr, o.direction, o.resize, instance=inst)

    def _written(self, item: Item, fut) -> None:
        try:
            fut.result()
        except (OSError, ValueError) as e:
            if is_disk_full(e):  # every later write would fail the same way: stop the job
                raise OutputFullError(
                    f"cannot write {describe_os_error(e)}; the job stopped. Free space and run the same "
                    "command again: the finished outputs are kept and skipped") from None
            self.on_done(item, f"cannot write {self.output.join(item.dst)}: {e}")
        else:
            self.on_done(item, None)

    def _drain_writes(self, limit: int) -> None:
        while len(self.pending_writes) > limit:
            item, fut = self.pending_writes.popleft()
            self._written(item, fut)

    def _run_group(self, items, writer) -> None:
        """Translate one batch of same-size prepared images and queue their writes."""
        x = torch.stack([prepared[0] for _item, prepared, _hw in items])
        try:
            y = self.t.translate_tensor(x, self.opts.direction)
        except RuntimeError as e:  # e.g. out of memory on one batch: report, keep going
            for item, _p, _hw in items:
                self.on_done(item, f"translation failed: {e}")
            return
        for (item, (_x, alpha, dtype, squeeze), hw), y_i in zip(items, y):
            arr = self.t.finish(y_i, hw, alpha, dtype, squeeze)
            self.pending_writes.append((item, writer.submit(write_output, self.output, item.dst, arr,
                                                             self.opts.quality)))
        self._drain_writes(2 * self.opts.workers)

    # ------------------------------------------------------------------ the loop
    def run(self, items: Iterable[Item]) -> None:
        """Convert ``items``; on KeyboardInterrupt, finish the writes under way and re-raise."""
        workers = self.opts.workers
        window = max(2 * self.opts.batch_size, 2 * workers)
        with ThreadPoolExecutor(workers, thread_name_prefix="decode") as reader, \
                ThreadPoolExecutor(max(1, workers // 2), thread_name_prefix="encode") as writer:
            inflight: deque = deque()
            try:
                self._loop(iter(items), inflight, window, reader, writer)
            except KeyboardInterrupt:
                for _item, fut in inflight:
                    fut.cancel()
                self._drain_writes(0)  # finish what is being written (each write is atomic anyway)
                raise
            except OutputFullError:
                for _item, fut in inflight:
                    fut.cancel()
                raise

    def _loop(self, queue, inflight: deque, window: int, reader, writer) -> None:
        groups: "OrderedDict[tuple, list]" = OrderedDict()
        while True:
            while len(inflight) < window:
                nxt = next(queue, None)
                if nxt is None:
                    break
                inflight.append((nxt, reader.submit(self.decode, nxt)))
            if not inflight:
                break
            item, fut = inflight.popleft()
            try:
                arr, prepared = fut.result()
            except ImageReadError as e:
                self.on_done(item, e.reason)
                continue
            except ValueError as e:  # e.g. a channel layout the translator cannot use
                self.on_done(item, str(e))
                continue
            key = tuple(prepared[0].shape)
            group = groups.setdefault(key, [])
            group.append((item, prepared, arr.shape[:2]))
            pixels = key[-1] * key[-2] * len(group)
            if len(group) >= self.opts.batch_size or pixels >= self.t.tile_pixels:
                self._run_group(groups.pop(key), writer)
            elif len(groups) > window:  # many different sizes: flush the oldest group
                self._run_group(groups.pop(next(iter(groups))), writer)
        while groups:
            self._run_group(groups.pop(next(iter(groups))), writer)
        self._drain_writes(0)
