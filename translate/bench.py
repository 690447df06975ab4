"""``translate bench``: how fast training and conversion run here, against the machine's peak.

Measurements (``--what``), each after a warm-up, as the median of several timed windows:

- ``train-pix2pix`` / ``train-cyclegan``: training images/s (pix2pix) and iterations/s (CycleGAN)
  with data loading included. A synthetic dataset in the real layout (side-by-side A|B files for
  pix2pix, ``trainA/`` + ``trainB/`` for CycleGAN, JPEG) goes through the training data path
  (dataset, ``EpochSampler``, ``EpochIndexed``, ``DataLoader`` with the loop's worker count) and
  each step is the method's ``train_step`` called the way the training loop calls it.
- ``convert-pix2pix`` / ``convert-cyclegan``: conversion images/s of a folder end to end (decode,
  translate, encode; JPEG in, PNG out) with :meth:`Translator.translate_folder`. The translators
  have random-init weights unless ``--checkpoint`` names one.
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
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from itertools import count
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

TRAIN_WHAT = ("train-pix2pix", "train-cyclegan")
CONVERT_WHAT = ("convert-pix2pix", "convert-cyclegan")
ALL_WHAT = TRAIN_WHAT + CONVERT_WHAT + ("peak",)
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class BenchError(ValueError):
    """The benchmark cannot run as asked (bad option combination); the message says why."""


@dataclasses.dataclass
class _Settings:
    device: torch.device
    precisions: List[str]
    size: int
    batch_size: int
    netG_pix2pix: str
    netG_cyclegan: str
    what: List[str]
    data: Optional[Path]
    images: int
    warmup: float
    windows: int
    window_seconds: float
    checkpoint: Optional[Path]
    quick: bool
    num_workers: int
    seed: int
    train_images: int
    matmul_size: int
    matmul_seconds: float

    def to_json(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["device"] = str(self.device)
        d["data"] = None if self.data is None else str(self.data)
        d["checkpoint"] = None if self.checkpoint is None else str(self.checkpoint)
        return d


# ----------------------------------------------------------------------------- machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> List[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); otherwise bf16 is emulated
    and usually far slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # what oneDNN itself will use
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch: read the CPU flags
        return bool(set(_cpu_flags()) & {"avx512_bf16", "amx_bf16"})


def default_precisions(device: torch.device) -> List[str]:
    """fp32 plus the reduced precision this device runs natively (none on CPUs without bf16)."""
    if device.type == "cuda":
        return ["fp32", "bf16" if torch.cuda.is_bf16_supported() else "fp16"]
    return ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]


def _machine(device: torch.device) -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({_cpu_model()})"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": _cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
    try:
        from .version import __version__

        info["translate"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_capability() -> Optional[str]:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - older torch
        return None


# ----------------------------------------------------------------------------- timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PeakMemory:
    """Peak memory over a block: CUDA max_memory_allocated, or the growth of this process's peak
    RSS on CPU (VmHWM, reset through /proc/self/clear_refs; else sampled every few ms)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: Optional[int] = None
        self.kind = ""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sampled = 0

    def __enter__(self) -> "_PeakMemory":
        gc.collect()
        _trim_heap()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            return self
        self.base = _rss_bytes("VmRSS")
        if self.base is not None and _reset_peak_rss():
            self.kind = "cpu_peak_rss_delta"
        elif self.base is not None:
            self.kind = "cpu_sampled_rss_delta"
            self._sampled = self.base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.kind = "cpu_maxrss_delta"
            self.base = _maxrss_bytes()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            rss = _rss_bytes("VmRSS")
            if rss is not None and rss > self._sampled:
                self._sampled = rss

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        elif self.kind == "cpu_peak_rss_delta":
            self.peak = max(0, (_rss_bytes("VmHWM") or 0) - self.base)
        elif self.kind == "cpu_sampled_rss_delta":
            self._stop.set()
            self._thread.join()
            self.peak = max(0, self._sampled - self.base)
        else:
            self.peak = max(0, _maxrss_bytes() - self.base)
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so the RSS baseline of a measurement does
    not include what earlier measurements freed but the allocator kept."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _rss_bytes(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0); False when not possible here."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0


def _windows_for(step_seconds: float, windows: int, window_seconds: float) -> int:
    """How many windows fit the budget ``windows * window_seconds`` when one call takes
    ``step_seconds`` (at least one window)."""
    if step_seconds <= 1.5 * window_seconds:  # a little over is fine: the window ends after that step
        return windows
    return max(1, min(windows, int(windows * window_seconds // max(step_seconds, 1e-9))))


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


# ----------------------------------------------------------------------------- synthetic data


def _synthetic_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth, photo-like RGB uint8 image: low-frequency colour fields, a few shapes, grain."""
    import cv2

    field = rng.random((max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * 200 + 25
    for _ in range(int(rng.integers(3, 8))):
        color = tuple(float(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
        else:
            cv2.circle(img, (x0, y0), max(2, abs(x1 - x0) // 3), color, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    from .data.io import write_image

    write_image(path, rgb, quality=95)


def make_synthetic_datasets(root: Path, size: int, n_train: int, n_convert: int, seed: int = 0) -> Dict[str, Path]:
    """Write the benchmark's inputs under ``root``: a paired set (``paired/train/k.jpg``, A|B side
    by side), an unpaired set (``unpaired/trainA``, ``trainB``) and a conversion folder
    (``convert/k.jpg``), all JPEG at ``size``."""
    rng = np.random.default_rng(seed)
    paths = {"paired": root / "paired", "unpaired": root / "unpaired", "convert": root / "convert"}
    for k in range(n_train):
        a = _synthetic_image(rng, size, size)
        b = 255 - a[:, ::-1]  # a target that depends on the input
        _write_jpeg(paths["paired"] / "train" / f"{k:04d}.jpg", np.concatenate([a, b], axis=1))
        _write_jpeg(paths["unpaired"] / "trainA" / f"{k:04d}.jpg", _synthetic_image(rng, size, size))
        _write_jpeg(paths["unpaired"] / "trainB" / f"{k:04d}.jpg", _synthetic_image(rng, size, size))
    for k in range(n_convert):
        _write_jpeg(paths["convert"] / f"{k:04d}.jpg", _synthetic_image(rng, size, size))
    return paths


# ----------------------------------------------------------------------------- configurations


def _run_config(method: str, s: _Settings, precision: str, data_root: Path):
    from .config import MODEL_CONFIGS, RunConfig

    model: Dict[str, Any] = {"netG": s.netG_pix2pix if method == "pix2pix" else s.netG_cyclegan}
    if model["netG"] == "unet":  # as deep as the size allows
        model["num_downs"] = max(1, int(math.log2(s.size)))
    if model["netG"] == "resnet" and s.quick:
        model["n_blocks"] = 2
    if s.quick:
        model.update(ngf=8, ndf=8, n_layers_D=2)
    d = RunConfig(method=method, model=MODEL_CONFIGS[method]()).to_dict()
    d["name"] = "bench"
    d["data"].update(root=str(data_root), load_size=max(s.size, round(s.size * 286 / 256)), crop_size=s.size,
                     num_workers=s.num_workers)
    d["model"].update(model)
    d["loop"].update(batch_size=s.batch_size, device=str(s.device), precision=precision, seed=s.seed)
    return RunConfig.from_dict(d)


def _flop_count(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _generator_forward_flops(arch: str, config: Dict[str, Any], shape: Tuple[int, ...]) -> Optional[int]:
    """FLOPs of one generator forward for an input of ``shape``, counted on the meta device
    (no compute); None when the network cannot run on meta tensors."""
    from .models import build_generator

    try:
        with torch.device("meta"):
            net = build_generator(arch, **config)
            x = torch.empty(shape)
        net.eval()

        def fwd():
            with torch.no_grad():
                net(x)

        return _flop_count(fwd)
    except Exception:  # pragma: no cover - depends on operator coverage of the meta device
        return None


# ----------------------------------------------------------------------------- measurements


class _Bench:
    def __init__(self, s: _Settings, tmp: Path, log: Callable[[str], None]):
        self.s = s
        self.tmp = tmp
        self.log = log
        self.paths: Dict[str, Path] = {}
        self.translators: Dict[str, Tuple[Path, str]] = {}  # method -> (folder, weights label)
        self.convert_files: List[Path] = []
        self.guard_outputs: Dict[Tuple[str, str], Path] = {}
        self.flops: Dict[str, Dict[str, Any]] = {}
        self._shape_cache: Dict[Path, Tuple[int, int]] = {}
        self._flops_cache: Dict[tuple, Optional[int]] = {}

    # -- inputs
    def datasets(self) -> Dict[str, Path]:
        if not self.paths:
            s = self.s
            need_convert = any(w in s.what for w in CONVERT_WHAT) and s.data is None
            t0 = time.perf_counter()
            self.paths = make_synthetic_datasets(self.tmp / "data", s.size, s.train_images,
                                                 s.images if need_convert else 0, s.seed)
            self.log(f"synthetic data written in {time.perf_counter() - t0:.1f}s")
        return self.paths

    def conversion_files(self) -> List[Path]:
        if not self.convert_files:
            from .data.discover import list_images

            folder = self.s.data if self.s.data is not None else self.datasets()["convert"]
            files = list_images(folder)[: self.s.images]
            if not files:
                raise BenchError(f"no images found in {folder}")
            self.convert_files = files
        return self.convert_files

    def translator(self, method: str) -> Tuple[Path, str]:
        """The translator folder used for ``method``'s conversion, and what its weights are."""
        if method in self.translators:
            return self.translators[method]
        s = self.s
        if s.checkpoint is not None:
            from .checkpoint import read_translator_json

            doc = read_translator_json(s.checkpoint)
            if doc["method"] == method:
                self.translators[method] = (Path(doc["_folder"]), f"checkpoint {s.checkpoint}")
                return self.translators[method]
        from .checkpoint import save_translator
        from .methods.pix2pix import generator_kwargs
        from .models import build_generator
        from .nn import init_weights
        from .training.pipeline import preprocessing_record

        cfg = _run_config(method, s, "fp32", self.tmp)
        m = cfg.model
        with _fork_rng(s.device):
            torch.manual_seed(s.seed)
            gens = {}
            directions = ("a2b",) if method == "pix2pix" else ("a2b", "b2a")
            for direction in directions:
                net = build_generator(m.netG, **generator_kwargs(m, cfg.data.input_nc, cfg.data.output_nc))
                # Xavier (gain 1) rather than the training init N(0, 0.02): the outputs then span
                # much of the value range (std ~0.4-0.6), so the quality guard sees real contrast.
                init_weights(net, "xavier", 1.0)
                gens[direction] = net
        folder = save_translator(self.tmp / f"translator_{method}", method, gens,
                                 preprocessing_record(cfg, gens["a2b"].size_multiple),
                                 {"run": "bench", "weights": "random-init"})
        self.translators[method] = (folder, "random-init (xavier, gain 1)")
        return self.translators[method]

    # -- matmul peak
    def peak(self, precision: str) -> Dict[str, Any]:
        """Best FLOP/s of square matmuls in ``precision``: the side doubles from 256 up to
        ``matmul_size`` while one product stays short, then timed blocks of products are repeated
        for ``matmul_seconds`` (at least twice)."""
        s, device = self.s, self.s.device
        dtype = _DTYPES[precision]
        max_call = 0.5 if device.type == "cuda" else (0.3 if s.quick else 2.0)
        min_block = 0.05 if device.type == "cuda" else 0.0  # GPU: several products per timing
        gen = torch.Generator(device=device).manual_seed(0)

        def operands(n: int):
            return tuple(torch.randn(n, n, device=device, generator=gen).to(dtype) for _ in range(2))

        def timed(a, b, reps: int) -> float:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            _sync(device)
            return (time.perf_counter() - t0) / reps

        n = 256
        a, b = operands(n)
        timed(a, b, 1)  # library start-up
        while True:
            t = timed(a, b, 1)
            if n >= s.matmul_size or t * 8 > max_call:
                break
            n *= 2
            a, b = operands(n)
        reps = 1
        while reps < 1000 and timed(a, b, reps) * reps < min_block:
            reps *= 2
        t_end = time.perf_counter() + s.matmul_seconds
        times: List[float] = []
        while len(times) < 2 or (time.perf_counter() < t_end and len(times) < 100):
            times.append(timed(a, b, reps))
        rates = [2 * n ** 3 / t for t in times]
        return {"flops_per_s": max(rates), "n": n, "repeats": len(times), "products_per_timing": reps,
                "windows": rates}

    # -- training
    def train(self, method: str, precision: str) -> Dict[str, Any]:
        from .training.pipeline import (EpochSampler, build_trainables, build_training_dataset,
                                        default_num_workers, make_loader)

        s, device = self.s, self.s.device
        data_root = self.datasets()["paired" if method == "pix2pix" else "unpaired"]
        cfg = _run_config(method, s, precision, data_root)
        loop, d = cfg.loop, cfg.data
        mem = _PeakMemory(device)
        with _fork_rng(device), mem:
            parts = build_trainables(cfg, device)
            m = parts.method
            dataset = build_training_dataset(cfg, m.size_multiple)
            num_workers = default_num_workers() if d.num_workers < 0 else d.num_workers
            sampler = EpochSampler(len(dataset), loop.seed)
            loader = make_loader(dataset, sampler, loop.batch_size, num_workers, device)

            def endless():
                for epoch in count():
                    sampler.set_epoch(epoch)
                    yield from loader

            batches = endless()
            sums: Dict[str, torch.Tensor] = {}

            for net in m.nets.values():
                net.train()  # as in the training loop: once, before the steps

            def step() -> int:
                batch = next(batches)
                losses = parts.step(batch)
                for k, v in losses.items():  # what the loop does with the losses between logs
                    sums[k] = sums[k] + v if k in sums else v.clone()
                return batch["a"].shape[0]

            try:
                res = self._time_steps(step, per_step_items=method == "pix2pix")
            finally:
                batches.close()
                del batches, loader
                gc.collect()
            gen = m.nets["gen_a2b"]
            gen_flops = _generator_forward_flops(gen.arch, gen.config, (1, d.input_nc, s.size, s.size))
            del m, parts, dataset
        step_flops = res.pop("step_flops")
        key = method
        self.flops.setdefault(key, {})
        self.flops[key].update({"netG": cfg.model.netG, "generator": gen.arch,
                                "generator_forward_flops_per_image": gen_flops,
                                "train_step_flops": step_flops, "train_step_batch": s.batch_size,
                                "train_size": s.size})
        if method == "pix2pix":
            res.update(metric="training images/s", unit="img/s", flops_per_item=step_flops / s.batch_size)
        else:
            res.update(metric="training iterations/s", unit="it/s", flops_per_item=step_flops,
                       images_per_iteration=s.batch_size)
        res.update(peak_memory_bytes=mem.peak, peak_memory_kind=mem.kind, num_workers=num_workers,
                   netG=cfg.model.netG, generator=gen.arch)
        return res

    def _time_steps(self, step: Callable[[], int], per_step_items: bool) -> Dict[str, Any]:
        """Warm up (the first step under the FLOP counter), then time windows of steps."""
        s, device = self.s, self.s.device
        min_warm = 3 if device.type == "cuda" else 1
        t_start = time.perf_counter()
        step_flops = _flop_count(step)
        _sync(device)
        last = time.perf_counter() - t_start
        warm_steps = 1
        while warm_steps < min_warm or time.perf_counter() - t_start < s.warmup:
            t0 = time.perf_counter()
            step()
            _sync(device)
            last = time.perf_counter() - t0
            warm_steps += 1
        n_windows = _windows_for(last, s.windows, s.window_seconds)
        rates, steps_per_window = [], []
        for _ in range(n_windows):
            _sync(device)
            t0 = time.perf_counter()
            items = steps = 0
            while True:
                n = step()
                items += n if per_step_items else 1
                steps += 1
                if time.perf_counter() - t0 >= s.window_seconds:
                    break
            _sync(device)
            rates.append(items / (time.perf_counter() - t0))
            steps_per_window.append(steps)
        out = {"value": _median(rates), "windows": rates, "steps_per_window": steps_per_window,
               "warmup_steps": warm_steps, "step_flops": step_flops}
        if n_windows < s.windows:
            out["note"] = (f"one step takes {last:.1f}s, longer than the window budget: {n_windows} window(s) "
                           f"timed; raise --window-seconds for a median over {s.windows}")
        return out

    # -- conversion
    def guard_files(self) -> List[Path]:
        """The images whose outputs the quality guard compares (also the conversion warm-up)."""
        files = self.conversion_files()
        return files[: min(len(files), max(4, 2 * self.s.batch_size))]

    def _convert_files(self, translator, paths: List[Path], out: Path, direction: str) -> Tuple[int, float]:
        t0 = time.perf_counter()
        summary = translator.translate_folder("-", out, paths=paths, direction=direction,
                                              batch_size=self.s.batch_size, ext="png", overwrite=True,
                                              progress=False)
        seconds = time.perf_counter() - t0
        if summary.failures:
            raise BenchError(f"conversion failed for {len(summary.failures)} image(s), e.g. "
                             f"{summary.failures[0][0]}: {summary.failures[0][1]}")
        return summary.converted, seconds

    def convert(self, method: str, precision: str) -> Dict[str, Any]:
        from .translator import Translator

        s, device = self.s, self.s.device
        folder, weights = self.translator(method)
        files = self.conversion_files()
        guard = self.guard_files()
        direction = "a2b"
        out_root = self.tmp / "out" / f"{method}_{precision}"
        mem = _PeakMemory(device)
        with mem:
            translator = Translator.load(folder, device=device, precision=precision)

            def run(paths: List[Path], out: Path) -> Tuple[int, float]:
                return self._convert_files(translator, paths, out, direction)

            # Warm-up on the guard images (their first outputs are kept for the quality guard);
            # a second pass when the first was short, so that the rate estimate is a warm one.
            t0 = time.perf_counter()
            done, secs = run(guard, out_root / "guard")
            warm_calls = 1
            while (warm_calls < 2 and secs < s.window_seconds) or time.perf_counter() - t0 < s.warmup:
                done, secs = run(guard, out_root / "warm")
                warm_calls += 1
            rate = done / max(secs, 1e-9)
            # One call per window converts the next `per_call` images of the folder (cycling), sized
            # to last about a window; a window repeats calls when the whole folder is faster than that.
            lo = min(len(files), max(1, s.batch_size))
            per_call = int(min(len(files), max(lo, round(rate * s.window_seconds))))
            n_windows = _windows_for(per_call / rate, s.windows, s.window_seconds)
            rates, counts, cursor = [], [], 0
            for k in range(n_windows):
                out = out_root / f"window_{k}"
                done_w, secs_w = 0, 0.0
                # Repeat calls only when one call is the whole folder (faster than a window).
                while done_w == 0 or (per_call == len(files) and secs_w < s.window_seconds):
                    paths = [files[(cursor + i) % len(files)] for i in range(per_call)]
                    cursor = (cursor + per_call) % len(files)
                    done, secs = run(paths, out)
                    done_w, secs_w = done_w + done, secs_w + secs
                rates.append(done_w / secs_w)
                counts.append(done_w)
                shutil.rmtree(out, ignore_errors=True)
            size_multiple, c_in = translator.size_multiple, translator.channels(direction)[0]
            entry = translator.doc["generators"][direction]
            del translator
            gc.collect()
        shutil.rmtree(out_root / "warm", ignore_errors=True)
        self.guard_outputs[(method, precision)] = out_root / "guard"
        per_image = self._conversion_flops(entry, files, size_multiple, c_in)
        res = {"metric": "conversion images/s", "unit": "img/s", "value": _median(rates), "windows": rates,
               "images_per_window": counts, "warmup_calls": warm_calls, "flops_per_item": per_image,
               "peak_memory_bytes": mem.peak, "peak_memory_kind": mem.kind, "weights": weights,
               "direction": direction, "generator": entry["arch"], "guard_images": len(guard),
               "input": (f"{len(files)} images from {s.data}" if s.data is not None
                         else f"{len(files)} synthetic {s.size}x{s.size} JPEG")}
        if n_windows < s.windows:
            res["note"] = f"one call of {per_call} image(s) outlasts the budget: {n_windows} window(s) timed"
        return res

    def _conversion_flops(self, entry: Dict[str, Any], files: List[Path], size_multiple: int,
                          c_in: int) -> Optional[float]:
        """Mean generator-forward FLOPs per image of ``files``, each at its padded size."""
        from .data.io import read_image

        shapes: Dict[Tuple[int, ...], int] = {}
        for path in files:
            if path not in self._shape_cache:
                self._shape_cache[path] = tuple(read_image(path).shape[:2])
            h, w = self._shape_cache[path]
            shape = (1, c_in, -(-h // size_multiple) * size_multiple, -(-w // size_multiple) * size_multiple)
            shapes[shape] = shapes.get(shape, 0) + 1
        total = 0
        for shape, k in shapes.items():
            key = (entry["arch"], json.dumps(entry["config"], sort_keys=True), shape)
            if key not in self._flops_cache:
                self._flops_cache[key] = _generator_forward_flops(entry["arch"], entry["config"], shape)
            if self._flops_cache[key] is None:
                return None
            total += self._flops_cache[key] * k
        return total / len(files) if files else None

    def psnr(self, method: str, precision: str) -> Dict[str, Any]:
        """PSNR (dB) between the fp32 and ``precision`` outputs of the guard images."""
        from .data.discover import list_images
        from .data.io import read_image

        if (method, "fp32") not in self.guard_outputs:  # fp32 was not benchmarked: make the reference
            from .translator import Translator

            folder, _ = self.translator(method)
            t = Translator.load(folder, device=self.s.device, precision="fp32")
            out = self.tmp / "out" / f"{method}_fp32" / "guard"
            self._convert_files(t, self.guard_files(), out, "a2b")
            self.guard_outputs[(method, "fp32")] = out
        ref_dir, test_dir = self.guard_outputs[(method, "fp32")], self.guard_outputs[(method, precision)]
        se, count_px, n_img = 0.0, 0, 0
        for ref in list_images(ref_dir):
            other = test_dir / ref.relative_to(ref_dir)
            a = read_image(ref).astype(np.float64)
            b = read_image(other).astype(np.float64)
            se += float(((a - b) ** 2).sum())
            count_px += a.size
            n_img += 1
        mse = se / max(count_px, 1)
        psnr = None if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
        return {"psnr_db": psnr, "identical": mse == 0, "images": n_img, "reference": "fp32"}


@contextlib.contextmanager
def _fork_rng(device: torch.device):
    """Leave the global torch RNG as it was (the benchmark seeds its own networks)."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


# ----------------------------------------------------------------------------- public API


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
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BenchError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} was asked for but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"device {device!r} is not supported by the benchmark; use cpu or cuda")
    return dev


def run_bench(
    *,
    device=None,
    precisions: Optional[Iterable[str]] = None,
    size: Optional[int] = None,
    batch_size: int = 1,
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
) -> Dict[str, Any]:
    """Measure training and conversion speed, FLOP/s against the matmul peak, memory and quality.

    Args:
        device: "cpu", "cuda", "cuda:N" or None/"auto" (CUDA when available).
        precisions: e.g. ["fp32", "bf16"] (comma lists accepted); default: fp32 plus the reduced
            precision the device runs natively (bf16/fp16 on CUDA, bf16 on CPUs with AVX512-BF16 or AMX).
        size: square image side for training and synthetic conversion inputs (256; 64 with quick).
        batch_size: training batch and conversion batch (images per network call).
        netG_pix2pix, netG_cyclegan: generators (unet_256 / resnet_9blocks; tiny nets with quick).
        what: measurements among ALL_WHAT (default all).
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

    Returns:
        A JSON-serialisable dict: ``machine``, ``settings``, ``command``, ``peak``, ``flops``,
        ``rows`` (one per measurement x precision), ``quality`` and ``seconds``.

    Raises:
        BenchError (a ValueError): invalid options.
    """
    t_start = time.perf_counter()
    log = log or (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    dev = _resolve_device(device)
    precs = _as_list(precisions, PRECISIONS, "precision") or default_precisions(dev)
    if "fp16" in precs and dev.type != "cuda":
        raise BenchError("fp16 needs a CUDA device; on CPU use --precision fp32,bf16")
    whats = _as_list(what, ALL_WHAT, "measurement") or list(ALL_WHAT)
    whats = [w for w in ALL_WHAT if w in whats]  # peak first, in a fixed order
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
    settings = _Settings(
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
    if settings.checkpoint is not None:
        from .checkpoint import read_translator_json

        read_translator_json(settings.checkpoint)  # fail early with the checkpoint's own message
    argv = list(sys.argv if argv is None else argv)
    result: Dict[str, Any] = {
        "command": shlex.join(argv), "argv": argv, "machine": _machine(dev), "settings": settings.to_json(),
        "peak": {}, "flops": {}, "rows": [], "quality": [],
    }
    if dev.type == "cpu" and "bf16" in precs and not cpu_has_native_bf16():
        result["warning"] = ("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated here and "
                             "is usually much slower than fp32")
        log(result["warning"])

    tmp = Path(tempfile.mkdtemp(prefix="translate-bench-"))
    bench = _Bench(settings, tmp, log)
    try:
        for w in whats:
            for prec in precs:
                t0 = time.perf_counter()
                log(f"{w} {prec} ...")
                if w == "peak":
                    p = bench.peak(prec)
                    result["peak"][prec] = p
                    row = {"metric": f"matmul {p['n']}x{p['n']}", "value": p["flops_per_s"], "unit": "FLOP/s",
                           "flops_per_item": None, "achieved_flops_per_s": p["flops_per_s"],
                           "peak_memory_bytes": None, "peak_memory_kind": None, "n": p["n"], "repeats": p["repeats"],
                           "windows": p["windows"], "statistic": "best"}
                elif w in TRAIN_WHAT:
                    row = bench.train(w.split("-", 1)[1], prec)
                else:
                    row = bench.convert(w.split("-", 1)[1], prec)
                row = {"measurement": w, "precision": prec, "statistic": "median", **row,
                       "seconds": time.perf_counter() - t0}
                if w != "peak" and row.get("flops_per_item") is not None:
                    row["achieved_flops_per_s"] = row["flops_per_item"] * row["value"]
                peak = result["peak"].get(prec, {}).get("flops_per_s")
                row["pct_of_peak"] = (100.0 * row["achieved_flops_per_s"] / peak
                                      if peak and row.get("achieved_flops_per_s") else None)
                result["rows"].append(row)
                log(f"{w} {prec}: {_fmt_with_unit(row['value'], row['unit'])} ({row['seconds']:.1f}s)")
            if w in CONVERT_WHAT:
                method = w.split("-", 1)[1]
                for prec in precs:
                    if prec == "fp32":
                        continue
                    q = {"measurement": w, "precision": prec, **bench.psnr(method, prec),
                         "weights": bench.translator(method)[1]}
                    result["quality"].append(q)
                    for row in result["rows"]:
                        if row["measurement"] == w and row["precision"] == prec:
                            row["psnr_vs_fp32_db"] = q["psnr_db"]
        result["flops"] = bench.flops
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = time.perf_counter() - t_start
    return result


# ----------------------------------------------------------------------------- output


def _fmt_value(v: Optional[float], unit: str = "") -> str:
    if v is None:
        return "-"
    if unit.endswith("FLOP/s"):
        return _fmt_flops(v)
    if v >= 100:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _fmt_with_unit(v: Optional[float], unit: str) -> str:
    if unit == "FLOP/s":
        return _fmt_flops(v) + "FLOP/s"
    return f"{_fmt_value(v, unit)} {unit}"


def _fmt_flops(v: Optional[float]) -> str:
    if v is None:
        return "-"
    for scale, name in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if v >= scale:
            return f"{v / scale:.3g} {name}"
    return f"{v:.3g} "


def _fmt_bytes(v: Optional[int]) -> str:
    if v is None:
        return "-"
    return f"{v / 2 ** 20:.0f} MiB"


def format_table(result: Dict[str, Any]) -> str:
    """The human-readable report of :func:`run_bench`'s result."""
    m = result["machine"]
    lines = [
        f"translate bench on {m['device_name']} [{m['device']}], torch {m['torch']}, "
        f"{m['torch_threads']} threads, cpu capability {m['cpu_capability']}",
        f"command: {result['command']}",
    ]
    if result.get("warning"):
        lines.append(f"warning: {result['warning']}")
    header = ("measurement", "prec", "metric", "value", "unit", "FLOP/s", "% peak", "peak mem", "PSNR/fp32")
    table = [header]
    for r in result["rows"]:
        unit = r["unit"]
        value = _fmt_value(r["value"], unit)
        if unit == "FLOP/s":
            value, unit = value.split(" ")[0], value.split(" ")[1] + "FLOP/s"
        psnr_text = "-"
        if r["measurement"] in CONVERT_WHAT:
            if r["precision"] == "fp32":
                psnr_text = "ref" if len(result["settings"]["precisions"]) > 1 else "-"
            elif "psnr_vs_fp32_db" in r:
                psnr = r["psnr_vs_fp32_db"]
                psnr_text = "identical" if psnr is None else f"{psnr:.1f} dB"
        pct = r.get("pct_of_peak")
        table.append((r["measurement"], r["precision"], r["metric"], value, unit,
                      _fmt_flops(r.get("achieved_flops_per_s")) + "FLOP/s" if r.get("achieved_flops_per_s") else "-",
                      "-" if pct is None else f"{pct:.1f}", _fmt_bytes(r.get("peak_memory_bytes")), psnr_text))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    right = {3, 5, 6, 7, 8}
    for k, row in enumerate(table):
        cells = [str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = ["value: median of the timed windows (matmul peak: best of the repeats); FLOP/s = counted FLOPs "
             "per item x value; % peak: of the matmul peak in the same precision"]
    if m.get("tf32_conv") and "fp32" in result["settings"]["precisions"]:
        notes.append("fp32 convolutions may run in TF32 (torch.backends.cudnn.allow_tf32) while the fp32 matmul "
                     "peak does not, so fp32 % of peak can exceed 100")
    for r in result["rows"]:
        if r.get("note"):
            notes.append(f"{r['measurement']} {r['precision']}: {r['note']}")
    weights = {r["weights"] for r in result["rows"] if r.get("weights")}
    for w in sorted(weights):
        if w.startswith("random-init"):
            notes.append(f"conversion and PSNR use translators with {w} weights (speed is the same as trained "
                         "weights; PSNR on trained weights may differ)")
    flops = result.get("flops", {})
    for method, f in flops.items():
        g = f.get("generator_forward_flops_per_image")
        notes.append(f"{method}: {f['netG']} forward {_fmt_flops(g)}FLOP/image at {f['train_size']}px, "
                     f"train step {_fmt_flops(f['train_step_flops'])}FLOP (batch {f['train_step_batch']}, "
                     "counted with FlopCounterMode)")
    kinds = {r.get("peak_memory_kind") for r in result["rows"] if r.get("peak_memory_kind")}
    if kinds & {"cpu_peak_rss_delta", "cpu_sampled_rss_delta", "cpu_maxrss_delta"}:
        notes.append("peak mem on CPU: growth of this process's peak RSS during the measurement "
                     "(data loader worker processes not included)")
    lines.append(f"total {result['seconds']:.0f}s")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- command line


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
                   help="fp32, bf16, fp16; repeatable or a comma list (default: fp32 plus the device's "
                        "native reduced precision; fp32 only on CPUs without AVX512-BF16/AMX)")
    p.add_argument("--size", type=int, default=None, help="image side for training and synthetic inputs "
                                                          "(default 256; 64 with --quick)")
    p.add_argument("--batch-size", type=int, default=1, help="training batch size and conversion batch size (default 1)")
    p.add_argument("--netG-pix2pix", default=None,
                   help="pix2pix generator (default unet_256; a tiny unet with --quick; unet: as deep "
                        "as --size allows)")
    p.add_argument("--netG-cyclegan", default=None,
                   help="CycleGAN generator (default resnet_9blocks; a tiny 2-block resnet with --quick)")
    p.add_argument("--what", action="append", default=None, metavar="M[,M...]",
                   help=f"measurements, repeatable or a comma list: {', '.join(ALL_WHAT)} (default all)")
    p.add_argument("--data", default=None,
                   help="folder of real images to convert and to check quality on (recursive, the first "
                        "--images files, translated whole, e.g. ../shared/data/facades/test); default: "
                        "synthetic JPEGs of --size")
    p.add_argument("--images", type=int, default=None,
                   help="images in the conversion folder (default 100; 6 with --quick); each window "
                        "converts as many of them as fit --window-seconds")
    p.add_argument("--checkpoint", default=None,
                   help="translator (run folder or translator/) to use for its method's conversion and the "
                        "quality guard instead of random-init weights")
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
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (size 64, small nets, short windows) for smoke tests")
    p.set_defaults(func=_cmd_bench)
    return p


def _cmd_bench(args, argv) -> int:
    result = run_bench(
        device=args.device, precisions=args.precision, size=args.size, batch_size=args.batch_size,
        netG_pix2pix=args.netG_pix2pix, netG_cyclegan=args.netG_cyclegan, what=args.what, data=args.data,
        images=args.images, warmup=args.warmup, windows=args.windows, window_seconds=args.window_seconds,
        checkpoint=args.checkpoint, quick=args.quick, num_workers=args.num_workers, seed=args.seed,
        argv=argv,
    )
    print(format_table(result))
    if args.json:
        from .fsutil import atomic_write_text

        out = Path(args.json)
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(_json_safe(result), indent=2) + "\n")
        print(f"JSON written to {out}", file=sys.stderr)
    return 0
