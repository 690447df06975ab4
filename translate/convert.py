"""The conversion job behind ``translate convert``: load the translator, run an engine, summarise.

:func:`convert_folder` is the whole job. Engines:

- ``local`` (default): one process, decode/encode threads around the network
  (:func:`translate.conversion.local.convert`, also what ``Translator.translate_folder`` runs);
- torchrun: the local engine launched by ``torchrun``; every process plans the same job and
  converts its share of the files, rank 0 merges the summaries (docs/scaling.md);
- ``ray``: a Ray Data pipeline over an actor pool, for clusters (:mod:`translate.ray`).

Inputs, outputs and the translator may be local paths or object-storage URLs
(:mod:`translate.storage`); the guarantees are listed in :mod:`translate.conversion`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Dict, Optional

from . import distributed as D
from .conversion.local import convert
from .conversion.plan import (FAILED_FILE, OUTPUT_EXTS, ConvertError, ConvertSummary, Item, list_inputs,
                              merge_summaries, plan, write_failures_file)
from .runtime import resolve_device
from .storage import Folder
from .translator import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_PIXELS, Translator

__all__ = ["ENGINES", "FAILED_FILE", "OUTPUT_EXTS", "ConvertError", "ConvertJob", "ConvertSummary", "Item",
           "convert", "convert_folder", "list_inputs", "merge_summaries", "plan", "write_failures_file"]

ENGINES = ("local", "ray")


@dataclass
class ConvertJob:
    """What :func:`convert_folder` did: the (merged) summary and how many processes shared it."""

    summary: ConvertSummary
    processes: int = 1
    is_main: bool = True  # this process reports the job (rank 0 under torchrun)
    engine: str = "local"

    def line(self) -> str:
        if self.engine == "ray":
            return self.summary.line() + f" by {self.processes} Ray worker{'s' if self.processes > 1 else ''}"
        procs = f" by {self.processes} processes" if self.processes > 1 else ""
        return self.summary.line() + procs


def convert_folder(checkpoint, input, output, *, device: Optional[str] = None, precision: Optional[str] = None,
                   tile_pixels: Optional[int] = None, tile_overlap: Optional[int] = None,
                   progress: bool = True, backend: str = "torch", onnx=None, compile: bool = False,
                   engine: str = "local", ray: Optional[Dict[str, Any]] = None,
                   storage_options: Optional[Dict[str, Any]] = None, **options) -> ConvertJob:
    """Load ``checkpoint`` and translate every image of ``input`` into ``output``.

    Launched by ``torchrun``, every process loads the translator on its own device, plans the
    same job and converts its share of the files (each file exactly once); rank 0 removes
    leftover temp files first, then merges the summaries and writes ``failed.jsonl``. SIGTERM
    stops the job like Ctrl-C: what is being written is finished, and a rerun completes it.

    Args:
        checkpoint: a run folder or its ``translator/`` folder (local path or URL).
        input, output: see :func:`translate.conversion.local.convert` (local paths or URLs).
        device: "cpu", "cuda", "cuda:N" (default: CUDA when available; under torchrun each
            process takes its local GPU; on Ray each worker takes the GPU Ray gives it).
        precision: None or "auto" (bf16 where the device runs it natively, else fp32), "fp32",
            "bf16" or "fp16".
        tile_pixels, tile_overlap: see :meth:`translate.Translator.load` (None: its defaults).
        progress: show a progress bar (rank 0 only under torchrun).
        backend, onnx, compile: see :meth:`translate.Translator.load` (local engine only).
        engine: "local" (default; torchrun when launched by it) or "ray".
        ray: Ray engine settings, see :class:`translate.ray.RayOptions` (address, workers,
            cpus_per_worker, gpus_per_worker).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``).
        **options: the options of :func:`translate.conversion.local.convert` (direction, batch_size,
            ext, quality, overwrite, in_place_ok, resize, max_pixels, workers, paths, video).

    Returns:
        ConvertJob with the merged summary (``interrupted`` set when stopped by a signal).

    Raises:
        ConvertError: an unknown engine, or options the engine cannot take.
    """
    tile_pixels = DEFAULT_TILE_PIXELS if tile_pixels is None else tile_pixels
    tile_overlap = DEFAULT_TILE_OVERLAP if tile_overlap is None else tile_overlap
    if engine == "ray":
        try:
            from .ray import RayOptions, convert_with_ray  # the optional [ray] extra
        except ImportError as e:
            raise ConvertError(f"--engine ray needs Ray Data: pip install 'translate-images[ray]' ({e})") from None

        if backend != "torch" or onnx is not None or compile:
            raise ConvertError("--engine ray runs the torch backend only (no --backend/--onnx/--compile)")
        options.pop("video", None)  # videos are the local engine's: the Ray engine lists them as failures
        job = convert_with_ray(checkpoint, input, output, RayOptions(**(ray or {})), device=device,
                               precision=precision, tile_pixels=tile_pixels, tile_overlap=tile_overlap,
                               progress=progress, storage_options=storage_options, **options)
        return ConvertJob(job.summary, job.workers, True, "ray")
    if engine != "local":
        raise ConvertError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    return _convert_local(checkpoint, input, output, device=device, storage_options=storage_options,
                          progress=progress, load=dict(precision=precision, tile_pixels=tile_pixels,
                                                       tile_overlap=tile_overlap, backend=backend, onnx=onnx,
                                                       compile=compile),
                          options=options)


def _convert_local(checkpoint, input, output, *, device, storage_options, progress, load, options) -> ConvertJob:
    """The local engine, in one process or in each process that torchrun launched."""
    info = D.DistInfo()
    if D.launched_by_torchrun():  # torchrun: each process converts its share of the files
        want = resolve_device(device)
        info = D.setup(want)
        device = D.rank_device(want, info)
    try:
        t = Translator.load(checkpoint, device=device, storage_options=storage_options, **load)
        if info.enabled:
            out = Folder(output, storage_options)
            if info.is_main and out.is_dir():
                out.clean_temp()  # once, before any rank starts writing
            D.barrier(info)
        summary = _stoppable(lambda: convert(
            t, input, output, progress=progress and info.is_main, shard=(info.rank, info.world_size),
            write_failures=not info.enabled, clean_temp=not info.enabled, storage_options=storage_options,
            after_plan=(lambda: D.barrier(info)) if info.enabled else None, **options))
        if info.enabled:
            summary = merge_summaries(D.gather_objects(summary, info))
            if info.is_main:
                write_failures_file(Folder(output, storage_options), summary.failures)
    finally:
        D.shutdown()
    return ConvertJob(summary, info.world_size if info.enabled else 1, info.is_main)


def _stoppable(job):
    """Run ``job()`` with SIGTERM raising KeyboardInterrupt (handled like Ctrl-C by the engine)."""
    def on_term(signum, _frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        return job()
    finally:
        signal.signal(signal.SIGTERM, old)
