"""The benchmark's measurements: training steps with data loading, folder conversion, the
quality guard of reduced precisions. Training goes through ``translate.training.pipeline``, the
same dataset, loader and step as ``translate train``."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import shutil
import statistics
import time
from itertools import count
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from torch.utils.flop_counter import FlopCounterMode

from ..checkpoint import read_translator_json, save_translator
from ..config import RunConfig, default_config
from ..conversion.plan import DEFAULT_BATCH_SIZE
from ..data.discover import list_images
from ..data.io import read_image, write_image
from ..distributed import DistInfo
from ..errors import ArgumentError
from ..methods import BenchSpec, get_method, list_methods
from ..methods.common import generator_kwargs
from ..models import build_generator
from ..nn import init_weights
from ..runtime import PRECISION_CHOICES
from ..training.diagnostics import HealthReporter
from ..training.health import NonFiniteTracker, StepGuard
from ..training.pipeline import (EpochSampler, add_losses, build_trainables, build_training_dataset, check_compile,
                                 compile_train_nets, make_loader, preprocessing_record, resolve_num_workers)
from ..translator import Translator
from .machine import PeakMemory, matmul_peak, sync
from .synthetic import make_synthetic_datasets, synthetic_image

# The rows come from the method registry: ``train-NAME`` for every method that declares how the
# benchmark measures it (translate.methods.BenchSpec), ``convert-NAME`` for those with conversion
# directions. They are computed when asked, so a method registered later has its rows too.


def benched_methods() -> List[str]:
    """The methods the benchmark can train (those that declare a BenchSpec)."""
    return [name for name in list_methods() if get_method(name).bench is not None]


def bench_spec(method: str) -> BenchSpec:
    return get_method(method).bench


def train_what() -> Tuple[str, ...]:
    """The training rows of the default run."""
    return tuple(f"train-{m}" for m in benched_methods() if bench_spec(m).default)


def label_what() -> Tuple[str, ...]:
    """Opt-in training rows (``--what``), e.g. pix2pixHD on synthetic class-ID label maps of
    --label-size (W x H, default --size square) with --label-nc classes."""
    return tuple(f"train-{m}" for m in benched_methods() if not bench_spec(m).default)


def convert_methods() -> List[str]:
    """The methods with a conversion row (a random-init translator of their directions)."""
    return [m for m in benched_methods() if bench_spec(m).convert]


def convert_what() -> Tuple[str, ...]:
    return tuple(f"convert-{m}" for m in convert_methods())


def all_what() -> Tuple[str, ...]:
    """The measurements of the default run."""
    return train_what() + convert_what() + ("peak",)

PRECISIONS = PRECISION_CHOICES  # "auto" rows: what the default picks for each net, measured like the others


class BenchError(ArgumentError):
    """The benchmark cannot run as asked (bad option combination); the message says why."""


def first_direction(translator) -> str:
    """a2b when the translator has it, else its only direction (a BtoA pix2pix run has b2a)."""
    return "a2b" if "a2b" in translator.directions else translator.pick_direction()


@dataclasses.dataclass
class Settings:
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
    label_size: Optional[Tuple[int, int]] = None  # (width, height) of train-pix2pixhd; None: size x size
    label_nc: int = 35
    ngf: Optional[int] = None  # generator width of the synthetic translators and training nets
    convert_batch_size: int = DEFAULT_BATCH_SIZE  # images per network call of the conversion rows

    def to_json(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["device"] = str(self.device)
        d["data"] = None if self.data is None else str(self.data)
        d["checkpoint"] = None if self.checkpoint is None else str(self.checkpoint)
        return d


def windows_for(step_seconds: float, windows: int, window_seconds: float) -> int:
    """How many windows fit the budget ``windows * window_seconds`` when one call takes
    ``step_seconds`` (at least one window)."""
    if step_seconds <= 1.5 * window_seconds:  # a little over is fine: the window ends after that step
        return windows
    return max(1, min(windows, int(windows * window_seconds // max(step_seconds, 1e-9))))


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _known(method: str, values: Dict[str, Any]) -> Dict[str, Any]:
    """``values`` without the keys the method's model section does not have (e.g. no ndf without a
    discriminator)."""
    known = {f.name for f in dataclasses.fields(get_method(method).config_class)}
    return {k: v for k, v in values.items() if k in known}


def run_config(method: str, s: Settings, precision: str, data_root: Path):
    """The run configuration of ``train-METHOD``: ``--netG-pix2pix`` for methods trained on paired
    data, ``--netG-cyclegan`` for unpaired ones, small widths and the method's own overrides with
    ``--quick``; class-ID maps at their full size (no resize, no crop) for label benchmarks."""
    cls = get_method(method)
    model: Dict[str, Any] = {}
    labels = cls.bench.data == "labels"
    if not labels:
        model["netG"] = s.netG_pix2pix if cls.data == "paired" else s.netG_cyclegan
        if model["netG"] == "unet":  # as deep as the size allows
            model["num_downs"] = max(1, int(math.log2(s.size)))
        if model["netG"] == "resnet" and s.quick:
            model["n_blocks"] = 2
    if s.quick:
        model.update({"ngf": 8, "ndf": 8, "n_layers_D": 2, **cls.bench.quick})
    if s.ngf:
        model["ngf"] = s.ngf
    d = default_config(method).to_dict()
    d["name"] = "bench"
    if labels:
        w, h = label_size(s)
        d["data"].update(root=str(data_root), preprocess="none", load_size=max(w, h), crop_size=min(w, h),
                         num_workers=s.num_workers, label_nc=s.label_nc)
    else:
        d["data"].update(root=str(data_root), load_size=max(s.size, round(s.size * 286 / 256)), crop_size=s.size,
                         num_workers=s.num_workers)
    d["model"].update(_known(method, model))
    d["loop"].update(batch_size=s.batch_size, device=str(s.device), precision=precision, seed=s.seed)
    return RunConfig.from_dict(d)


def label_size(s: Settings) -> Tuple[int, int]:
    return s.label_size or (s.size, s.size)


def make_label_dataset(root: Path, width: int, height: int, n: int, label_nc: int, seed: int) -> Path:
    """A paired a_b folder of synthetic class-ID maps (``train/A/k.png``, 8-bit gray, blocks of IDs
    0..label_nc-1) and photos (``train/B/k.jpg``) of ``width`` x ``height``."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        ids = np.zeros((height, width), np.uint8)
        for _ in range(40):
            y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
            ids[y:y + height // 4, x:x + width // 6] = int(rng.integers(0, label_nc))
        write_image(root / "train" / "A" / f"{k:04d}.png", ids[:, :, None])
        write_image(root / "train" / "B" / f"{k:04d}.jpg", synthetic_image(rng, height, width), quality=95)
    return root


def flop_count(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def generator_forward_flops(arch: str, config: Dict[str, Any], shape: Tuple[int, ...]) -> Optional[int]:
    """FLOPs of one generator forward for an input of ``shape``, counted on the meta device
    (no compute); None when the network cannot run on meta tensors."""
    try:
        with torch.device("meta"):
            net = build_generator(arch, **config)
            x = torch.empty(shape)
        net.eval()

        def fwd():
            with torch.no_grad():
                net(x)

        return flop_count(fwd)
    except Exception:  # pragma: no cover - depends on operator coverage of the meta device
        return None


class Bench:
    def __init__(self, s: Settings, tmp: Path, log: Callable[[str], None]):
        self.s = s
        self.tmp = tmp
        self.log = log
        self.paths: Dict[str, Path] = {}
        self.translators: Dict[str, Tuple[Path, str]] = {}  # method -> (folder, weights label)
        self.convert_files: List[Path] = []
        self.guard_outputs: Dict[str, Path] = {}  # "<method>_<precision>" or a variant's key -> output folder
        self.flops: Dict[str, Dict[str, Any]] = {}
        self._shape_cache: Dict[Path, Tuple[int, int]] = {}
        self._flops_cache: Dict[tuple, Optional[int]] = {}

    # -- inputs
    def datasets(self) -> Dict[str, Path]:
        if not self.paths:
            s = self.s
            need_convert = any(w.startswith("convert-") for w in s.what) and s.data is None
            t0 = time.perf_counter()
            self.paths = make_synthetic_datasets(self.tmp / "data", s.size, s.train_images,
                                                 s.images if need_convert else 0, s.seed)
            self.log(f"synthetic data written in {time.perf_counter() - t0:.1f}s")
        return self.paths

    def label_dataset(self) -> Path:
        if "labels" not in self.paths:
            s = self.s
            t0 = time.perf_counter()
            w, h = label_size(s)
            self.paths["labels"] = make_label_dataset(self.tmp / "labels", w, h, max(2, min(s.train_images, 4)),
                                                      s.label_nc, s.seed)
            self.log(f"synthetic {w}x{h} class-ID data written in {time.perf_counter() - t0:.1f}s")
        return self.paths["labels"]

    def conversion_files(self) -> List[Path]:
        if not self.convert_files:
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
            doc = read_translator_json(s.checkpoint)
            if doc["method"] == method:
                self.translators[method] = (Path(doc["_folder"]), f"checkpoint {s.checkpoint}")
                return self.translators[method]
        cfg = run_config(method, s, "fp32", self.tmp)
        m = cfg.model
        with fork_rng(s.device):
            torch.manual_seed(s.seed)
            gens = {}
            directions = bench_spec(method).convert
            for direction in directions:
                net = build_generator(m.netG, **generator_kwargs(m, cfg.data.input_nc, cfg.data.output_nc))
                # Xavier (gain 1) rather than the training init N(0, 0.02): the outputs then span
                # much of the value range (std ~0.4-0.6), so the quality guard sees real contrast.
                init_weights(net, "xavier", 1.0)
                gens[direction] = net
        folder = save_translator(self.tmp / f"translator_{method}", method, gens,
                                 preprocessing_record(cfg, gens[directions[0]].size_multiple),
                                 {"run": "bench", "weights": "random-init"})
        self.translators[method] = (folder, "random-init (xavier, gain 1)")
        return self.translators[method]

    def direction(self, folder: Path) -> str:
        """The direction a translator folder is measured in: a2b when it has it, else its only one."""
        gens = read_translator_json(folder)["generators"]
        return "a2b" if "a2b" in gens else next(iter(gens))

    # -- matmul peak
    def peak(self, precision: str) -> Dict[str, Any]:
        s = self.s
        return matmul_peak(s.device, precision, s.matmul_size, s.matmul_seconds, s.quick)

    # -- training
    def train_config(self, method: str, precision: str):
        """The run configuration of ``train-METHOD`` on its synthetic data."""
        spec = bench_spec(method)
        if spec.data == "labels":
            return run_config(method, self.s, precision, self.label_dataset())
        return run_config(method, self.s, precision, self.datasets()[get_method(method).data])

    def train(self, method: str, precision: str, compile: bool = False, grad_checkpoint: bool = False,
              guard: bool = False) -> Dict[str, Any]:
        """Training speed of ``method``; with ``compile`` the nets go through ``torch.compile`` after
        the FLOP-counting first step (eager), and the first compiled step is timed apart. With
        ``grad_checkpoint`` the generator blocks are recomputed (``--grad-checkpoint``); with
        ``guard`` each step goes through the loop's non-finite guard (:func:`guarded_step`).

        A row counts what the method's :class:`BenchSpec` says one step counts: images (img/s,
        FLOPs per image) or iterations (it/s, FLOPs per step)."""
        s, spec = self.s, bench_spec(method)
        cfg = self.train_config(method, precision)
        cfg.loop.grad_checkpoint = grad_checkpoint
        extra: Dict[str, Any] = {}
        mem = PeakMemory(s.device)
        with fork_rng(s.device), mem:
            res, gen, num_workers, choice = self._train_steps(cfg, spec.counts == "images", compile,
                                                          guard=extra if guard else None)
            w, h = label_size(s) if spec.data == "labels" else (s.size, s.size)
            gen_flops = generator_forward_flops(gen.arch, gen.config, (1, gen.config["input_nc"], h, w))
        step_flops = res.pop("step_flops")
        net_g = getattr(cfg.model, "netG", gen.arch)
        self.flops.setdefault(method, {}).update({
            "netG": net_g, "generator": gen.arch, "generator_forward_flops_per_image": gen_flops,
            "train_step_flops": step_flops, "train_step_batch": s.batch_size,
            "train_size": list(label_size(s)) if spec.data == "labels" else s.size})
        if spec.counts == "images":
            res.update(metric="training images/s", unit="img/s", flops_per_item=step_flops / s.batch_size)
        else:
            res.update(metric="training iterations/s", unit="it/s", flops_per_item=step_flops,
                       images_per_iteration=s.batch_size)
        res.update(peak_memory_bytes=mem.peak, peak_memory_kind=mem.kind, num_workers=num_workers,
                   netG=net_g, generator=gen.arch, compile=compile, grad_checkpoint=grad_checkpoint,
                   computed_in=choice.precision, precision_reason=choice.reason, **extra)
        if spec.data == "labels":
            res.update(label_size=list(label_size(s)), label_nc=s.label_nc)
        return res

    def _train_steps(self, cfg, count_images: bool, compile: bool, guard: Optional[Dict[str, Any]] = None):
        """Time training steps of ``cfg`` through the training data path, as the loop runs them;
        with ``guard`` (a dict that receives its extra figures) through the loop's health checks.

        Returns:
            (timing of :meth:`_time_steps`, the first generator, loader worker count, the
            :class:`translate.runtime.PrecisionChoice` the nets were built with).
        """
        loop, d, device = cfg.loop, cfg.data, self.s.device
        parts = build_trainables(cfg, device)
        m = parts.method
        dataset = build_training_dataset(cfg, m.size_multiple)
        num_workers = resolve_num_workers(d.num_workers)
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
            add_losses(sums, parts.step(batch))  # what the loop does with the losses between logs
            return batch["a"].shape[0]

        if guard is not None:
            step = guarded_step(parts, batches, sums, cfg, guard)
        prepare = None
        if compile:
            check_compile(device, distributed=False)
            prepare = lambda: compile_train_nets(m)  # noqa: E731
        try:
            res = self._time_steps(step, per_step_items=count_images, prepare=prepare)
        finally:
            batches.close()
            del batches, loader
            gc.collect()
        return res, m.nets[next(iter(m.generators.values()))], num_workers, parts.precision

    def _time_steps(self, step: Callable[[], int], per_step_items: bool,
                    prepare: Optional[Callable[[], None]] = None) -> Dict[str, Any]:
        """Warm up (the first step under the FLOP counter), then time windows of steps.

        ``prepare`` (e.g. compiling the nets) runs after the counted step; the step after it is
        timed on its own (``first_step_seconds``) and the warm-up starts again."""
        s, device = self.s, self.s.device
        min_warm = 3 if device.type == "cuda" else 1
        t_start = time.perf_counter()
        step_flops = flop_count(step)
        sync(device)
        last = time.perf_counter() - t_start
        warm_steps = 1
        first = None
        if prepare is not None:
            prepare()
            t0 = time.perf_counter()
            step()
            sync(device)
            first = time.perf_counter() - t0
            t_start, warm_steps = time.perf_counter(), 0
            min_warm = max(min_warm, 1)
        while warm_steps < min_warm or time.perf_counter() - t_start < s.warmup:
            t0 = time.perf_counter()
            step()
            sync(device)
            last = time.perf_counter() - t0
            warm_steps += 1
        n_windows = windows_for(last, s.windows, s.window_seconds)
        rates, steps_per_window = [], []
        for _ in range(n_windows):
            sync(device)
            t0 = time.perf_counter()
            items = steps = 0
            while True:
                n = step()
                items += n if per_step_items else 1
                steps += 1
                if time.perf_counter() - t0 >= s.window_seconds:
                    break
            sync(device)
            rates.append(items / (time.perf_counter() - t0))
            steps_per_window.append(steps)
        out = {"value": median(rates), "windows": rates, "steps_per_window": steps_per_window,
               "warmup_steps": warm_steps, "step_flops": step_flops}
        if first is not None:
            out["first_step_seconds"] = first
        if n_windows < s.windows:
            out["note"] = (f"one step takes {last:.1f}s, longer than the window budget: {n_windows} window(s) "
                           f"timed; raise --window-seconds for a median over {s.windows}")
        return out

    # -- conversion
    def guard_files(self) -> List[Path]:
        """The images whose outputs the quality guard compares (also the conversion warm-up)."""
        files = self.conversion_files()
        return files[: min(len(files), max(4, 2 * self.s.convert_batch_size))]

    def _convert_files(self, translator, paths: List[Path], out: Path, direction: str) -> Tuple[int, float]:
        t0 = time.perf_counter()
        summary = translator.translate_folder("-", out, paths=paths, direction=direction,
                                              batch_size=self.s.convert_batch_size, ext="png", overwrite=True,
                                              progress=False)
        seconds = time.perf_counter() - t0
        if summary.failures:
            raise BenchError(f"conversion failed for {len(summary.failures)} image(s), e.g. "
                             f"{summary.failures[0][0]}: {summary.failures[0][1]}")
        return summary.converted, seconds

    def convert(self, method: str, precision: str, *, key: Optional[str] = None, folder: Optional[Path] = None,
                weights: Optional[str] = None, direction: Optional[str] = None, **load_kw) -> Dict[str, Any]:
        """Conversion speed of ``method``'s translator (or of ``folder``) in ``precision``.

        Args:
            key: where the guard outputs are kept (``guard_outputs[key]``); default "<method>_<precision>".
            load_kw: more :meth:`Translator.load` arguments (backend, onnx, compile, memory_format).
        """
        s, device = self.s, self.s.device
        if folder is None:
            folder, weights = self.translator(method)
        files = self.conversion_files()
        guard = self.guard_files()
        key = key or f"{method}_{precision}"
        out_root = self.tmp / "out" / key
        mem = PeakMemory(device)
        with mem:
            t_load = time.perf_counter()
            translator = Translator.load(folder, device=device, precision=precision, **load_kw)
            load_seconds = time.perf_counter() - t_load
            choice = translator.precision_choice
            direction = direction or first_direction(translator)

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
            lo = min(len(files), max(1, s.convert_batch_size))
            per_call = int(min(len(files), max(lo, round(rate * s.window_seconds))))
            n_windows = windows_for(per_call / rate, s.windows, s.window_seconds)
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
        self.guard_outputs[key] = out_root / "guard"
        per_image = self._conversion_flops(entry, files, size_multiple, c_in)
        res = {"metric": "conversion images/s", "unit": "img/s", "value": median(rates), "windows": rates,
               "images_per_window": counts, "warmup_calls": warm_calls, "flops_per_item": per_image,
               "peak_memory_bytes": mem.peak, "peak_memory_kind": mem.kind, "weights": weights,
               "direction": direction, "generator": entry["arch"], "guard_images": len(guard),
               "load_seconds": load_seconds, "params": entry.get("params"),
               "computed_in": choice.precision, "precision_reason": choice.reason,
               "input": (f"{len(files)} images from {s.data}" if s.data is not None
                         else f"{len(files)} synthetic {s.size}x{s.size} JPEG")}
        if n_windows < s.windows:
            res["note"] = f"one call of {per_call} image(s) outlasts the budget: {n_windows} window(s) timed"
        return res

    def _conversion_flops(self, entry: Dict[str, Any], files: List[Path], size_multiple: int,
                          c_in: int) -> Optional[float]:
        """Mean generator-forward FLOPs per image of ``files``, each at its padded size."""
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
                self._flops_cache[key] = generator_forward_flops(entry["arch"], entry["config"], shape)
            if self._flops_cache[key] is None:
                return None
            total += self._flops_cache[key] * k
        return total / len(files) if files else None

    def reference(self, method: str) -> Path:
        """The fp32 torch guard outputs of ``method``'s translator (made now when fp32 was not measured)."""
        if f"{method}_fp32" not in self.guard_outputs:
            folder, _ = self.translator(method)
            t = Translator.load(folder, device=self.s.device, precision="fp32")
            out = self.tmp / "out" / f"{method}_fp32" / "guard"
            self._convert_files(t, self.guard_files(), out, first_direction(t))
            self.guard_outputs[f"{method}_fp32"] = out
        return self.guard_outputs[f"{method}_fp32"]

    def psnr(self, method: str, precision: str) -> Dict[str, Any]:
        """PSNR (dB) between the fp32 and ``precision`` outputs of the guard images."""
        res = psnr_folders(self.reference(method), self.guard_outputs[f"{method}_{precision}"])
        return {**res, "reference": "fp32"}


def psnr_folders(ref_dir: Path, test_dir: Path) -> Dict[str, Any]:
    """PSNR (dB, 8-bit) of the images of ``test_dir`` against those of ``ref_dir`` (same relative
    paths); ``psnr_db`` is None when they are identical."""
    se, count_px, n_img = 0.0, 0, 0
    for ref in list_images(ref_dir):
        a = read_image(ref).astype(np.float64)
        b = read_image(test_dir / ref.relative_to(ref_dir)).astype(np.float64)
        se += float(((a - b) ** 2).sum())
        count_px += a.size
        n_img += 1
    mse = se / max(count_px, 1)
    psnr = None if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    return {"psnr_db": psnr, "identical": mse == 0, "images": n_img}


class _Discard:
    """A log that keeps nothing (the bench's health checks are timed, not reported)."""

    def write(self, record: Dict[str, Any]) -> None:
        pass


def guarded_step(parts, batches, sums: Dict[str, torch.Tensor], cfg, extra: Dict[str, Any]) -> Callable[[], int]:
    """A training step as the loop runs it with its health checks: through the non-finite guard
    (one host synchronisation per optimizer update, buffers saved before the step) and the
    sample-batch diagnostics every ``loop.health_every`` steps and at the first step; ``extra``
    receives the measured seconds of one diagnostics check (``health_check_seconds``)."""
    m = parts.method
    guard = parts.scalers = StepGuard(parts.scalers, m.nets.values(), DistInfo(), parts.device)
    tracker = NonFiniteTracker(cfg.loop.nonfinite_patience)
    health = HealthReporter(m, cfg, _Discard(), lambda line: None)  # the loop's checks, reported nowhere
    fixed = {k: v[: cfg.loop.sample_count].to(parts.device) for k, v in next(batches).items() if k in ("a", "b")}
    count = [0]

    def step() -> int:
        batch = next(batches)
        guard.begin()
        losses = parts.step(batch)
        if not tracker.record(count[0], guard.end()):
            add_losses(sums, losses)
        count[0] += 1
        if count[0] == 1 or (cfg.loop.health_every and count[0] % cfg.loop.health_every == 0):
            t0 = time.perf_counter()  # also at the first (warm-up) step, so that a check is always timed
            health.check(count[0], fixed, parts.amp, cfg.loop.lr)
            extra["health_check_seconds"] = time.perf_counter() - t0
        return batch["a"].shape[0]

    return step


@contextlib.contextmanager
def fork_rng(device: torch.device):
    """Leave the global torch RNG as it was (the benchmark seeds its own networks)."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
