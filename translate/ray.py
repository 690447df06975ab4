"""Conversion on a Ray cluster (``translate convert --engine ray``) and :class:`TranslateBatch` for
your own Ray Data pipelines. Needs the ``[ray]`` extra (``ray[data]``).

Embedding a translator in a pipeline::

    import ray
    from translate.ray import TranslateBatch

    ds = ray.data.read_images("s3://bucket/photos/")                     # column "image"
    ds = ds.map_batches(TranslateBatch, fn_constructor_kwargs={"translator": "s3://bucket/runs/facades"},
                        concurrency=4, batch_size=8, num_gpus=1)           # one translator per actor
    ds.write_images("s3://bucket/translated/", column="image", file_format="png")

The engine behind ``--engine ray`` plans the job on the driver like every engine (names, outputs
already present, safety rules), then streams the to-do list through an actor pool: each actor
loads one :class:`translate.Translator` (on the GPU Ray gives it, if any) and, for each block of
names it receives, reads the bytes, decodes, translates (tiled for large images), encodes and
writes each output atomically, overlapping reads and writes with the network in threads as the
local engine does. Only names and per-file results travel through Ray, so the driver's memory
stays flat. A worker that dies has its block retried by Ray (actors restart); outputs have fixed
names and are written atomically (temp + rename, or one complete PUT), so a retried block
rewrites the same complete files: nothing lost, duplicated or half-written.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import ray

from .checkpoint import label_encoding, read_translator_json
from .conversion.plan import (DEFAULT_BATCH_SIZE, ConvertError, ConvertSummary, Item, StreamOptions, check_options,
                              list_inputs, plan, record_failure, write_failures_file)
from .errors import DirectionError
from .formats import DEFAULT_MAX_PIXELS
from .storage import Folder, is_url

# The classes below run in Ray actors; they import torch and the translator there, in __init__,
# so that a driver that only names them (to build a pipeline) never loads torch.

__all__ = ["TranslateBatch", "ConvertBatch", "RayOptions", "RayJob", "convert_with_ray", "load_translator"]


class TranslateBatch:
    """A translator as a Ray Data callable class: ``ds.map_batches(TranslateBatch, ...)``.

    Ray builds one instance per actor (so the translator is loaded once per actor, on its GPU when
    ``num_gpus`` is given) and calls it on batches in the ``numpy`` format.

    Args:
        translator: a translator folder or run folder, local (seen by every node) or a URL.
        direction: "a2b"/"b2a" (required for CycleGAN translators).
        column: the input column: decoded images (``(H, W[, C])`` uint8/uint16/float arrays, as
            ``ray.data.read_images`` gives) or encoded image bytes (as ``read_binary_files``
            gives in ``"bytes"``); default "image".
        output_column: where the translated images go (default: replace ``column``).
        output_format: None: decoded arrays of the input's dtype and size; "png", "jpg", "webp"
            or "tif": encoded bytes in that format.
        device, precision, tile_pixels, tile_overlap, storage_options: see
            :meth:`translate.Translator.load` (tile settings: None keeps its defaults).
        resize: see :meth:`translate.Translator.__call__`.
        max_pixels: refuse encoded inputs with more pixels than this.
    """

    def __init__(self, translator, *, direction: Optional[str] = None, column: str = "image",
                 output_column: Optional[str] = None, output_format: Optional[str] = None,
                 device: Optional[str] = None, precision: str = "fp32", resize=None,
                 tile_pixels: Optional[int] = None, tile_overlap: Optional[int] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, storage_options: Optional[Dict[str, Any]] = None):
        self.translator = load_translator(translator, device=device, precision=precision, tile_pixels=tile_pixels,
                                          tile_overlap=tile_overlap, storage_options=storage_options)
        self.direction = self.translator.pick_direction(direction)
        self.column, self.output_column = column, output_column or column
        self.output_format, self.resize, self.max_pixels = output_format, resize, max_pixels

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Translate ``batch[column]``; returns the batch with ``output_column`` set."""
        if self.column not in batch:
            raise KeyError(f"TranslateBatch: no column {self.column!r} in the batch (columns: {', '.join(batch)})")
        from .data.io import encode_image, fit_to_format

        images = [self._decoded(v, k) for k, v in enumerate(batch[self.column])]
        outputs = self._translate(images)
        if self.output_format is not None:
            ext = "." + self.output_format.lstrip(".")
            outputs = [encode_image(fit_to_format(o, ext), ext, name=f"row {k}") for k, o in enumerate(outputs)]
        batch = dict(batch)
        batch[self.output_column] = _column(outputs)
        return batch

    def _decoded(self, value, k: int) -> np.ndarray:
        from .data.io import decode_image

        if isinstance(value, (bytes, bytearray, memoryview)):
            return decode_image(value, f"row {k}", max_pixels=self.max_pixels)
        return np.asarray(value)

    def _translate(self, images: List[np.ndarray]) -> List[np.ndarray]:
        """Translate same-size images together, each group in one network call (tiled when large)."""
        import torch

        t, outputs = self.translator, [None] * len(images)
        prepared = [t.prepare(im, self.direction, self.resize) for im in images]
        groups: Dict[tuple, List[int]] = {}
        for k, p in enumerate(prepared):
            groups.setdefault(tuple(p[0].shape), []).append(k)
        for ks in groups.values():
            y = t.translate_tensor(torch.stack([prepared[k][0] for k in ks]), self.direction)
            for k, y_k in zip(ks, y):
                _x, alpha, dtype, squeeze = prepared[k]
                outputs[k] = t.finish(y_k, images[k].shape[:2], alpha, dtype, squeeze)
        return outputs


def load_translator(location, tile_pixels: Optional[int] = None, tile_overlap: Optional[int] = None, **load):
    """``Translator.load`` in an actor (None: the translator's default tile settings)."""
    from .translator import Translator

    tiles = {k: v for k, v in (("tile_pixels", tile_pixels), ("tile_overlap", tile_overlap)) if v is not None}
    return Translator.load(location, **tiles, **load)


def _column(values: List[Any]) -> np.ndarray:
    """A numpy column: stacked when all arrays share a shape, else an object array of them."""
    if values and all(isinstance(v, np.ndarray) for v in values) \
            and len({(v.shape, v.dtype) for v in values}) == 1:
        return np.stack(values)
    col = np.empty(len(values), dtype=object)
    col[:] = values
    return col


class ConvertBatch:
    """The actor of ``--engine ray``: converts blocks of planned (src, dst) names, returns per-file errors."""

    def __init__(self, translator, inputs: Folder, output: Folder, stream: Dict[str, Any], load: Dict[str, Any]):
        self.translator = load_translator(translator, **load)
        self.inputs, self.output = inputs, output
        self.opts = StreamOptions(**stream)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        from .conversion.stream import Stream

        items = [Item(str(s), str(d)) for s, d in zip(batch["src"], batch["dst"])]
        errors: Dict[Item, str] = {}

        def on_done(item: Item, error: Optional[str]) -> None:
            errors[item] = error or ""

        Stream(self.translator, self.inputs, self.output, self.opts, on_done).run(items)
        return {"src": np.array([i.src for i in items], dtype=object),
                "error": np.array([errors[i] for i in items], dtype=object)}


@dataclass
class RayOptions:
    """Where and how ``--engine ray`` runs.

    Attributes:
        address: None (start a local Ray instance), "auto" (the cluster this machine belongs to)
            or "ray://HOST:PORT" (Ray Client).
        workers: actors in the pool (None: the cluster's GPUs / gpus_per_worker, else its CPUs /
            cpus_per_worker).
        cpus_per_worker: CPUs each actor reserves (also its torch threads).
        gpus_per_worker: GPUs each actor reserves (0: CPU inference).
        rows_per_call: names per actor call (None: 8 x batch size, so reads and writes overlap
            the network within a call); a retried call redoes at most this many files.
    """

    address: Optional[str] = None
    workers: Optional[int] = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    rows_per_call: Optional[int] = None


@dataclass
class RayJob:
    summary: ConvertSummary
    workers: int


def _pick_direction(doc: Dict[str, Any], direction: Optional[str]) -> str:
    gens = doc["generators"]
    what = f"this {doc['method']} translator"
    if direction is None and len(gens) > 1 or direction is not None and direction not in gens:
        raise DirectionError(direction, gens, what)
    return direction or next(iter(gens))


def _pool_size(opts: RayOptions) -> int:
    if opts.workers is not None:
        if opts.workers < 1:
            raise ConvertError(f"--workers must be >= 1, got {opts.workers}")
        return opts.workers
    res = ray.cluster_resources()
    if opts.gpus_per_worker > 0:
        return max(1, int(res.get("GPU", 0) // opts.gpus_per_worker))
    return max(1, int(res.get("CPU", 1) // max(opts.cpus_per_worker, 1e-9)))


def convert_with_ray(checkpoint, input, output, opts: RayOptions, *, device: Optional[str] = None,
                     precision: str = "fp32", tile_pixels: Optional[int] = None,
                     tile_overlap: Optional[int] = None, progress: bool = True,
                     storage_options: Optional[Dict[str, Any]] = None, direction: Optional[str] = None,
                     batch_size: int = DEFAULT_BATCH_SIZE, ext: str = "same", quality: Optional[int] = None,
                     overwrite: bool = False, in_place_ok: bool = False, resize=None,
                     max_pixels: Optional[int] = None, workers: Optional[int] = None, paths=None,
                     instance_dir=None) -> RayJob:
    """Plan on this process (the driver), convert on a Ray actor pool, summarise here.

    Arguments as for :func:`translate.convert.convert_folder`; ``workers`` (decode/encode threads
    of the local engine) is taken by :attr:`RayOptions.workers` instead and ignored here.

    Returns:
        RayJob with the summary (same counts and ``failed.jsonl`` as the local engine) and the
        number of actors.
    """
    check_options(ext, batch_size, quality)
    if instance_dir is not None:
        raise ConvertError("--instance-dir is for the local engine (label translators)")
    doc = read_translator_json(checkpoint, storage_options, weights=False)  # the actors load the weights
    if label_encoding(doc["preprocessing"]) is not None:
        raise ConvertError("label-map translators convert with the local engine only")
    stream = asdict(StreamOptions(_pick_direction(doc, direction), batch_size, quality, resize,
                                  DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                                  workers=max(2, min(8, int(math.ceil(opts.cpus_per_worker))))))
    out = Folder(output, storage_options)
    inputs = list_inputs(input, paths, storage_options)
    todo, skipped, failures = plan(inputs, out, ext, overwrite, in_place_ok)
    failures += [(inputs.folder.join(v), "videos are converted by the local engine (--engine local)")
                 for v in inputs.videos]
    summary = ConvertSummary(output=out.root, total=len(inputs.names) + len(inputs.videos), skipped=skipped,
                             failures=failures)
    out.make()
    out.clean_temp()
    started = not ray.is_initialized()
    if started:
        ray.init(address=opts.address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        rows = opts.rows_per_call or 8 * batch_size
        pool = min(_pool_size(opts), max(1, math.ceil(len(todo) / rows)))
        location = checkpoint if is_url(checkpoint) else os.path.abspath(checkpoint)
        load = dict(device=device, precision=precision, tile_pixels=tile_pixels, tile_overlap=tile_overlap,
                    storage_options=storage_options)
        _run_pool(todo, (location, inputs.folder, out, stream, load), opts, pool, rows, summary, progress)
    finally:
        if started:
            ray.shutdown()
    if not summary.interrupted:  # no actor writes any more: remove what a worker killed mid-write left
        out.clean_temp()
    write_failures_file(out, summary.failures)
    return RayJob(summary, pool)


def _run_pool(todo: List[Item], args, opts: RayOptions, pool: int, rows: int, summary: ConvertSummary,
              progress: bool) -> None:
    """Stream ``todo`` through the actor pool, counting results into ``summary`` as they arrive."""
    from tqdm import tqdm

    inputs = args[1]
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", disable=not progress or None, file=sys.stderr, dynamic_ncols=True)
    try:
        if todo:
            for batch in _dataset(todo, args, opts, pool, rows).iter_batches(batch_size=None, batch_format="numpy"):
                for src, error in zip(batch["src"], batch["error"]):
                    if error:
                        record_failure(summary, inputs.join(str(src)), str(error))
                        bar.set_postfix(failed=summary.failed, refresh=False)
                    else:
                        summary.converted += 1
                bar.update(len(batch["src"]))
    except KeyboardInterrupt:
        summary.interrupted = True
    except (ray.exceptions.RayError, RuntimeError) as e:
        text = str(e).strip().splitlines()
        raise ConvertError(f"the Ray job failed: {text[-1] if text else type(e).__name__}") from None
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0


def _dataset(todo: List[Item], args, opts: RayOptions, pool: int, rows: int):
    """The Ray Data pipeline: planned names -> actor pool (read, decode, translate, encode, write).

    One block per actor call, so a retried call redoes at most ``rows`` files.
    """
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the job has its own bar, counted from the results
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    blocks = max(1, math.ceil(len(todo) / rows))
    ds = ray.data.from_items([{"src": it.src, "dst": it.dst} for it in todo], override_num_blocks=blocks)
    return ds.map_batches(ConvertBatch, fn_constructor_args=args, batch_size=rows, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=pool),
                          num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker or None)
