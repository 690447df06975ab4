"""``translate bench``: how fast training and conversion run here, against the machine's peak.

Measurements (``--what``), each after a warm-up, as the median of several timed windows:

- ``train-NAME`` for every method that declares how it is measured (its ``bench``, see
  :class:`translate.methods.BenchSpec`): training images/s or iterations/s, as the method says
  what a step counts (pix2pix: images; CycleGAN, CUT, FastCUT: iterations), with data loading
  included. A synthetic dataset in the real layout (side-by-side A|B files for methods trained on
  paired data, ``trainA/`` + ``trainB/`` for unpaired ones, JPEG) goes through the training data
  path (dataset, ``EpochSampler``, ``EpochIndexed``, ``DataLoader`` with the loop's worker count)
  and each step is the method's ``train_step`` called the way the training loop calls it.
- ``convert-NAME`` for the methods that declare conversion directions (pix2pix, CycleGAN):
  conversion images/s of a folder end to end (decode, translate, encode; JPEG in, PNG out) with
  :meth:`Translator.translate_folder`. The translators have random-init weights unless
  ``--checkpoint`` names one.
- ``peak``: the best FLOP/s of large square matmuls in each precision, the yardstick for
  "% of peak".

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``: over one real training step
(forward and backward of every network, during warm-up) and over a generator forward for
conversion (on the meta device, at each input's padded size), so achieved FLOP/s = FLOPs per item
x items/s. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the growth of this
process's peak resident memory on CPU (loader worker processes are not included).

Reduced precisions come with a quality guard: the PSNR between the fp32 and the reduced-precision
conversion outputs of the same translator on the same images.

Each measurement has a time budget (``--window-seconds`` x ``--windows`` after ``--warmup``)
rather than a fixed step count; a window runs at least one step, so when one step takes longer
than the whole budget a single window is timed (the output says so).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ..runtime import AUTO, PRECISION_CHOICES, DeviceError, check_precision, has_native_precision, native_precisions, resolve_device
from .machine import machine_facts
from ..checkpoint import read_translator_json
from ..conversion.plan import DEFAULT_BATCH_SIZE
from .measure import Bench, BenchError, Settings, all_what, convert_what, label_what, train_what
from .report import fmt_with_unit, format_table, write_json
from .synthetic import make_synthetic_datasets
from .variants import (FP32_ONLY, RUNTIME_WHAT, STUDENT_WHAT, compile_what, measure_variant, student_and_teacher,
                       variant_what)

__all__ = ["BenchError", "add_bench_parser", "all_what", "format_table", "make_synthetic_datasets", "opt_in_what",
           "run_bench"]


def opt_in_what() -> Tuple[str, ...]:
    """Measurements made only when ``--what`` names them."""
    return label_what() + variant_what()


def what_groups() -> Dict[str, Tuple[str, ...]]:
    """``--what train`` / ``--what convert``: every such row of the default run."""
    return {"train": train_what(), "convert": convert_what()}


def _as_list(value, valid: Sequence[str], what: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out: List[str] = []
    for item in value:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if part not in valid:
                raise BenchError(f"unknown {what} {part!r}; valid: {', '.join(valid)}")
            if part not in out:
                out.append(part)
    return out


def _resolve_device(device) -> torch.device:
    try:
        dev = resolve_device(device)
    except DeviceError as e:
        raise BenchError(str(e)) from None
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"device {device!r} is not supported by the benchmark; use cpu or cuda")
    return dev


def run_bench(
    *,
    device=None,
    precisions: Optional[Iterable[str]] = None,
    size: Optional[int] = None,
    batch_size: int = 1,
    convert_batch_size: int = DEFAULT_BATCH_SIZE,
    netG_pix2pix: Optional[str] = None,
    netG_cyclegan: Optional[str] = None,
    what: Optional[Iterable[str]] = None,
    data=None,
    images: Optional[int] = None,
    warmup: Optional[float] = None,
    windows: Optional[int] = None,
    window_seconds: Optional[float] = None,
    checkpoint=None,
    quick: bool = False,
    num_workers: int = -1,
    seed: int = 0,
    argv: Optional[Sequence[str]] = None,
    log: Optional[Callable[[str], None]] = None,
    label_size: Optional[str] = None,
    label_nc: int = 35,
    compile: bool = False,
    ngf: Optional[int] = None,
) -> Dict[str, Any]:
    """Measure training and conversion speed, FLOP/s against the matmul peak, memory and quality.

    Args:
        device: "cpu", "cuda", "cuda:N" or None/"auto" (CUDA when available).
        precisions: e.g. ["fp32", "bf16"] (comma lists accepted); default: fp32 plus the reduced
            precision the device runs natively (bf16/fp16 on CUDA, bf16 on CPUs with AVX512-BF16 or AMX).
        size: square image side for training and synthetic conversion inputs (256; 64 with quick).
        batch_size, convert_batch_size: training batch; images per call of the conversion rows.
        netG_pix2pix, netG_cyclegan: generators of the methods trained on paired data and of those
            trained on unpaired data (unet_256 / resnet_9blocks; tiny nets with quick).
        what: measurements among :func:`all_what` and :func:`opt_in_what` (default: all_what()).
        data: a folder whose images (recursive, the first ``images``) are converted and used for the
            quality guard, as they are (a paired A|B file is translated whole); default synthetic JPEGs.
        images: images in the conversion folder (100; 6 with quick). Each window converts as many of
            them, cycling, as fit ``window_seconds``.
        warmup: minimum warm-up seconds per measurement (at least one step / one pass).
        windows: timed windows per measurement (the median is reported).
        window_seconds: length of one window (at least one step).
        checkpoint: a translator (run folder or translator/) used for its method's conversion and
            quality guard instead of random-init weights.
        quick: tiny settings for tests (size 64, ngf/ndf 8, a 2-block resnet, short windows).
        num_workers: training loader processes (-1: as training picks them).
        seed: seed of the synthetic data and of the networks' initialisation.
        argv: the command line, recorded in the result.
        log: progress callback (default: lines on stderr).
        label_size: "WxH" of the synthetic class-ID maps of ``train-pix2pixhd`` (default: size x size).
        label_nc: classes of those maps (default 35, as Cityscapes).
        compile: also measure the ``-compile`` variant of each requested training and conversion
            measurement that has one (see :mod:`translate.bench.variants`).
        ngf: generator width of the synthetic translators and training networks (default: the
            method's, 8 with quick), e.g. 16 for a slim_unet or mobile_resnet student.

    Returns:
        A JSON-serialisable dict: ``machine``, ``settings``, ``command``, ``peak``, ``flops``,
        ``rows`` (one per measurement x precision), ``quality`` and ``seconds``.

    Raises:
        BenchError (a ValueError): invalid options.
    """
    t_start = time.perf_counter()
    log = log or (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    settings = _settings(device=device, precisions=precisions, size=size, batch_size=batch_size,
                         netG_pix2pix=netG_pix2pix, netG_cyclegan=netG_cyclegan, what=what, data=data,
                         images=images, warmup=warmup, windows=windows, window_seconds=window_seconds,
                         checkpoint=checkpoint, quick=quick, num_workers=num_workers, seed=seed,
                         compile=compile)
    settings.ngf = _ngf(ngf)
    settings.convert_batch_size = _at_least_one("conversion batch size", convert_batch_size)
    settings.label_size, settings.label_nc = _label_settings(label_size, label_nc)
    result = _new_result(settings, list(sys.argv if argv is None else argv), log)
    with tempfile.TemporaryDirectory(prefix="translate-bench-", ignore_cleanup_errors=True) as tmp:
        _measure_all(Bench(settings, Path(tmp), log), result, log)
    result["seconds"] = time.perf_counter() - t_start
    return result


def _new_result(settings: Settings, argv: List[str], log: Callable[[str], None]) -> Dict[str, Any]:
    """The result document before any measurement: command, machine, settings (and a warning
    when bf16 is asked for on a CPU that only emulates it)."""
    dev, precs = settings.device, settings.precisions
    result: Dict[str, Any] = {
        "command": shlex.join(argv), "argv": argv, "machine": machine_facts(dev), "settings": settings.to_json(),
        "peak": {}, "flops": {}, "rows": [], "quality": [],
    }
    if dev.type == "cpu" and "bf16" in precs and not has_native_precision(dev, "bf16"):
        result["warning"] = ("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated here and "
                             "is usually much slower than fp32")
        log(result["warning"])
    return result


def _measure_all(bench: Bench, result: Dict[str, Any], log: Callable[[str], None]) -> None:
    """Every requested measurement in every precision, as rows of ``result``; the quality guard of
    each conversion measurement; the FLOP counts."""
    settings = bench.s
    variants, convert_whats = variant_what(), convert_what()
    for w in settings.what:
        for prec in (peak_precisions(settings.precisions) if w == "peak" else settings.precisions):
            if w in FP32_ONLY and prec != "fp32":
                result.setdefault("notes", []).append(f"{w}: fp32 only (the runtimes run the fp32 graph); "
                                                      f"{prec} skipped")
                continue
            if w in variants:
                log(f"{w} {prec} ...")
                for row in measure_variant(bench, w, prec, result, log):
                    result["rows"].append(_finish_row(w, prec, row, time.perf_counter(), result, log))
                continue
            result["rows"].append(_measure(bench, w, prec, result, log))
        if w in convert_whats:
            _quality_guard(bench, w, settings.precisions, result)
    result["flops"] = bench.flops


def peak_precisions(precs: List[str]) -> List[str]:
    """The matmul peaks to probe: fp32 and bf16 always (every row is shown as a share of both),
    plus fp16 when asked for; "auto" has no peak of its own (its rows use the one it picked)."""
    return ["fp32", "bf16"] + [p for p in precs if p not in ("fp32", "bf16", AUTO)]


def _at_least_one(what: str, value: int) -> int:
    if value < 1:
        raise BenchError(f"{what} must be >= 1, got {value}")
    return value


def _settings(*, device, precisions, size, batch_size, netG_pix2pix, netG_cyclegan, what, data, images,
              warmup, windows, window_seconds, checkpoint, quick, num_workers, seed, compile=False) -> Settings:
    """Validate :func:`run_bench`'s options and fill in the defaults."""
    dev = _resolve_device(device)
    precs = _as_list(precisions, PRECISION_CHOICES, "precision") or native_precisions(dev) + [AUTO]
    try:
        for prec in precs:
            if prec != AUTO:
                check_precision(prec, dev)
    except DeviceError as e:
        raise BenchError(str(e)) from None
    doc = None
    if checkpoint:
        doc = read_translator_json(checkpoint)  # fail early with the checkpoint's own message
    groups, every = what_groups(), all_what() + opt_in_what()
    whats = _as_list(what, every + tuple(groups), "measurement") or list(all_what())
    whats = [m for w in whats for m in groups.get(w, (w,))]
    if whats and "peak" not in whats:
        whats.append("peak")  # every row is shown as a share of the measured fp32 and bf16 peaks
    if not what and doc is not None and doc["provenance"].get("teacher"):
        whats += list(STUDENT_WHAT + RUNTIME_WHAT)  # a student: next to its teacher, and through each runtime
    if compile:
        whats += [f"{w}-compile" for w in whats if f"{w}-compile" in compile_what()]
    whats = [w for w in every if w in whats]  # peak first, in a fixed order
    whats = (["peak"] if "peak" in whats else []) + [w for w in whats if w != "peak"]
    if batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {batch_size}")
    size = size or (64 if quick else 256)
    if size < 8:
        raise BenchError(f"size must be >= 8, got {size}")
    images = images or (6 if quick else 100)
    if images < 1:
        raise BenchError(f"images must be >= 1, got {images}")
    windows = windows or 3
    if windows < 1:
        raise BenchError(f"windows must be >= 1, got {windows}")
    settings = Settings(
        device=dev, precisions=precs, size=size, batch_size=batch_size,
        netG_pix2pix=netG_pix2pix or ("unet" if quick else "unet_256"),
        netG_cyclegan=netG_cyclegan or ("resnet" if quick else "resnet_9blocks"),
        what=whats, data=Path(data) if data else None, images=images,
        warmup=(0.2 if quick else 2.0) if warmup is None else float(warmup),
        windows=windows,
        window_seconds=(0.4 if quick else 5.0) if window_seconds is None else float(window_seconds),
        checkpoint=Path(checkpoint) if checkpoint else None, quick=quick, num_workers=num_workers, seed=seed,
        train_images=max(8, 2 * batch_size) if quick else max(64, 4 * batch_size),
        matmul_size=(256 if quick else (8192 if dev.type == "cuda" else 4096)),
        matmul_seconds=(0.3 if quick else 3.0),
    )
    if settings.window_seconds <= 0 or settings.warmup < 0:
        raise BenchError("window seconds must be > 0 and warm-up seconds >= 0")
    if settings.data is not None and not settings.data.is_dir():
        raise BenchError(f"--data {settings.data}: not a folder")
    if any(w in STUDENT_WHAT for w in whats):
        student_and_teacher(settings.checkpoint)  # a student that names a readable teacher
    return settings


def _ngf(ngf: Optional[int]) -> Optional[int]:
    if ngf is not None and ngf < 1:
        raise BenchError(f"--ngf must be >= 1, got {ngf}")
    return ngf


def _label_settings(label_size: Optional[str], label_nc: int):
    """(width, height) or None, and the class count, of ``train-pix2pixhd``."""
    if label_nc < 1:
        raise BenchError(f"--label-nc must be >= 1, got {label_nc}")
    if label_size is None:
        return None, label_nc
    try:
        w, h = (int(v) for v in str(label_size).lower().split("x"))
    except ValueError:
        raise BenchError(f"--label-size expects WIDTHxHEIGHT, e.g. 2048x1024, got {label_size!r}") from None
    if w < 8 or h < 8:
        raise BenchError(f"--label-size must be at least 8x8, got {label_size}")
    return (w, h), label_nc


def _measure(bench: Bench, w: str, prec: str, result: Dict[str, Any], log: Callable[[str], None]) -> Dict[str, Any]:
    """One row of the result: measurement ``w`` in precision ``prec``."""
    t0 = time.perf_counter()
    log(f"{w} {prec} ...")
    if w == "peak":
        p = bench.peak(prec)
        result["peak"][prec] = p
        row = {"metric": f"matmul {p['n']}x{p['n']}", "value": p["flops_per_s"], "unit": "FLOP/s",
               "flops_per_item": None, "achieved_flops_per_s": p["flops_per_s"],
               "peak_memory_bytes": None, "peak_memory_kind": None, "n": p["n"], "repeats": p["repeats"],
               "windows": p["windows"], "statistic": "best"}
    elif w in train_what() + label_what():
        row = bench.train(w.split("-", 1)[1], prec)
    else:
        row = bench.convert(w.split("-", 1)[1], prec)
    return _finish_row(w, prec, row, t0, result, log)


def _finish_row(w: str, prec: str, row: Dict[str, Any], t0: float, result: Dict[str, Any],
                log: Callable[[str], None]) -> Dict[str, Any]:
    """Name a measured row, add its achieved FLOP/s and % of the peak, and log it."""
    row = {"measurement": w, "precision": prec, "statistic": "median", "seconds": time.perf_counter() - t0, **row}
    prec = row.get("computed_in") or row["precision"]  # an int8 row keeps its own; auto: what it picked
    if w != "peak" and row.get("flops_per_item") is not None:
        row["achieved_flops_per_s"] = row["flops_per_item"] * row["value"]
    peak = result["peak"].get(prec, {}).get("flops_per_s")
    row["pct_of_peak"] = (100.0 * row["achieved_flops_per_s"] / peak
                          if peak and row.get("achieved_flops_per_s") else None)
    for ref in ("fp32", "bf16"):  # the share of both measured peaks, whatever the row computes in
        ref_peak = result["peak"].get(ref, {}).get("flops_per_s")
        row[f"pct_of_{ref}_peak"] = (100.0 * row["achieved_flops_per_s"] / ref_peak
                                     if ref_peak and row.get("achieved_flops_per_s") and w != "peak" else None)
    log(f"{w} {prec}: {fmt_with_unit(row['value'], row['unit'])} ({row['seconds']:.1f}s)")
    return row


def _quality_guard(bench: Bench, w: str, precs: List[str], result: Dict[str, Any]) -> None:
    """PSNR of each reduced precision's conversion outputs against fp32's (rows and ``quality``)."""
    method = w.split("-", 1)[1]
    for prec in precs:
        if prec == "fp32":
            continue
        q = {"measurement": w, "precision": prec, **bench.psnr(method, prec), "weights": bench.translator(method)[1]}
        result["quality"].append(q)
        for row in result["rows"]:
            if row["measurement"] == w and row["precision"] == prec:
                row["psnr_vs_fp32_db"] = q["psnr_db"]


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "bench", help="measure training and conversion speed, FLOP/s against the machine's peak",
        description="Measure training images/s (pix2pix) and iterations/s (CycleGAN) with data loading, "
                    "folder conversion images/s end to end, peak memory, and achieved FLOP/s as a "
                    "percentage of the measured matmul peak; reduced precisions are checked against fp32 "
                    "(PSNR of the conversion outputs). Each figure is the median of timed windows after a "
                    "warm-up. Inputs are synthetic unless --data is given; translators have random-init "
                    "weights unless --checkpoint is given.")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N or auto (default: cuda when available, else cpu)")
    p.add_argument("--precision", action="append", default=None, metavar="P[,P...]",
                   help="auto, fp32, bf16, fp16; repeatable or a comma list (default: fp32, the device's native "
                        "reduced precision and auto; fp32 and auto only on CPUs without AVX512-BF16/AMX); the "
                        "matmul peak is probed in fp32 and bf16 either way")
    p.add_argument("--size", type=int, default=None, help="image side for training and synthetic inputs "
                                                          "(default 256; 64 with --quick)")
    p.add_argument("--batch-size", type=int, default=1, help="training batch size (default 1)")
    p.add_argument("--convert-batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"images per network call in the conversion rows (default {DEFAULT_BATCH_SIZE}, as "
                        "translate convert)")
    p.add_argument("--netG-pix2pix", default=None,
                   help="generator of the methods trained on paired data, e.g. pix2pix (default unet_256; a tiny "
                        "unet with --quick; unet: as deep as --size allows)")
    p.add_argument("--netG-cyclegan", default=None,
                   help="generator of the methods trained on unpaired data, e.g. CycleGAN (default resnet_9blocks; "
                        "a tiny 2-block resnet with --quick)")
    p.add_argument("--what", action="append", default=None, metavar="M[,M...]",
                   help=f"measurements, repeatable or a comma list: {', '.join(all_what())} (default all; train and "
                        f"convert name every train-/convert- row; peak is always added); opt-in: "
                        f"{', '.join(opt_in_what())}")
    p.add_argument("--data", default=None,
                   help="folder of real images to convert and to check quality on (recursive, the first "
                        "--images files, translated whole, e.g. datasets/facades/test); default: "
                        "synthetic JPEGs of --size")
    p.add_argument("--images", type=int, default=None,
                   help="images in the conversion folder (default 100; 6 with --quick); each window "
                        "converts as many of them as fit --window-seconds")
    p.add_argument("--checkpoint", default=None,
                   help="translator (run folder or translator/) to use for its method's conversion and the "
                        "quality guard instead of random-init weights; a distilled student also gets, without "
                        "--what, the rows convert-student (next to its teacher) and convert-backends")
    p.add_argument("--warmup", type=float, default=None,
                   help="minimum warm-up seconds per measurement, at least one step (default 2; 0.2 with --quick)")
    p.add_argument("--windows", type=int, default=None, help="timed windows per measurement; the median is "
                                                              "reported (default 3)")
    p.add_argument("--window-seconds", type=float, default=None,
                   help="length of one timed window, at least one step (default 5; 0.4 with --quick)")
    p.add_argument("--num-workers", type=int, default=-1,
                   help="training data loader processes (default -1: as many as training uses)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and network initialisation (default 0)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the full result as JSON to OUT")
    p.add_argument("--label-size", default=None, metavar="WxH",
                   help=f"size of the synthetic class-ID maps of {', '.join(label_what())} (opt-in with --what; "
                        "default: --size square), e.g. 2048x1024")
    p.add_argument("--label-nc", type=int, default=35, help="classes of those maps (default 35)")
    p.add_argument("--compile", action="store_true",
                   help="also measure each requested train-/convert- measurement that has a -compile row "
                        f"({', '.join(compile_what())}) with torch.compile")
    p.add_argument("--ngf", type=int, default=None,
                   help="generator width of the synthetic translators and training nets (default: the method's)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (size 64, small nets, short windows) for smoke tests")
    p.set_defaults(func=_cmd_bench)
    return p


def _cmd_bench(args, argv) -> int:
    result = run_bench(
        device=args.device, precisions=args.precision, size=args.size, batch_size=args.batch_size,
        convert_batch_size=args.convert_batch_size,
        netG_pix2pix=args.netG_pix2pix, netG_cyclegan=args.netG_cyclegan, what=args.what, data=args.data,
        images=args.images, warmup=args.warmup, windows=args.windows, window_seconds=args.window_seconds,
        checkpoint=args.checkpoint, quick=args.quick, num_workers=args.num_workers, seed=args.seed,
        argv=argv, label_size=args.label_size, label_nc=args.label_nc, compile=args.compile, ngf=args.ngf,
    )
    print(format_table(result))
    if args.json:
        out = write_json(result, args.json)
        print(f"JSON written to {out}", file=sys.stderr)
    return 0
