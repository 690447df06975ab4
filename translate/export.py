"""Export a translator's generator to ONNX or TorchScript: ``translate export``.

The exported graph computes what :class:`translate.Translator` computes on an already padded
batch: the generator from the checkpoint made ready by :func:`translate.nn.inference.for_inference`
(eval mode, no dropout, batch norm with per-image statistics unless the checkpoint says
"running"). Padding to the size multiple and cropping back are *not* in the graph; the caller does
them, as the metadata says.

Contract of an exported file::

    input  "input":  (B, input_nc, H, W) float32 in [-1, 1]   B, H, W dynamic
    output "output": (B, output_nc, H, W) float32 in [-1, 1]
    H and W multiples of size_multiple (256 for unet_256, 4 for the ResNets)

ONNX files carry this in ``metadata_props`` (and in the symbolic dims, named e.g. ``256*height``);
TorchScript files carry it in the extra file ``translate.json`` and check the input shape
themselves, raising a ValueError that names the expected shape. ONNX runtimes do not check the
multiple: a U-Net then fails at a Concat, a ResNet returns an output of a different size.

Exporter choice (ONNX). The torch.export-based exporter (``torch.onnx.export(dynamo=True)``) is
used: it is PyTorch's default and maintained path since 2.9, while the TorchScript-based one warns
that it will be removed. Height and width are declared as ``size_multiple * Dim`` so the graph is
valid for every legal size and the divisibility requirement is visible in the graph's dim names.
The example input is 2 x C x 2s x 2s (s >= size_multiple): torch.export specialises dimensions whose
example value is 0 or 1, so each dynamic dimension needs an example of at least 2 units. The
dynamo exporter cannot produce opsets below 18 for these nets (onnx has no down-converter for Pad
and it then silently keeps 18), so ``opset < 18`` uses the TorchScript-based exporter with
``dynamic_axes``; both paths go through the same parity check.

Parity check. Before anything is written the export is loaded (onnxruntime on CPU, or
``torch.jit.load``) and run next to the PyTorch generator on deterministic random inputs at two
shapes, 1 x C x s x 2s and 2 x C x 2s x s, that differ from the export examples in height or width
and together cover batch 1 and 2. A failed check raises
:class:`ExportError` and writes nothing (``--no-check`` writes without checking); a file at OUT is
therefore always an export that passed, or one whose check was skipped explicitly.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from .fsutil import atomic_write_bytes
from .runtimes.onnx import (INPUT_NAME, MIN_DYNAMO_OPSET, OUTPUT_NAME, PARITY_SIDE, TOLERANCE, ExportError,
                            first_line, generator_to_onnx, import_optional, metadata, parity_diff, quiet, to_onnx)

if TYPE_CHECKING:  # torch is imported where it is used: building the CLI parser must stay instant
    import torch
    from torch import nn

FORMATS = ("onnx", "torchscript")
DIRECTIONS = ("a2b", "b2a")  # = translate.checkpoint.DIRECTIONS, not imported here: it loads torch
# fp32 outputs in [-1, 1]; measured differences are 1e-6 (tiny nets) to 1.2e-5 (unet_256, ngf 64)
# for both formats. One 8-bit output level is 2/255 ~ 7.8e-3, so 1e-4 is ~1/80 of a level.
TOLERANCE = 1e-4
MIN_DYNAMO_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "output"
TORCHSCRIPT_META = "translate.json"
_EXTRA_HINT = "pip install 'translate-images[export]'"
PARITY_SIDE = 64  # parity images have sides >= this (ResNets need >= 8; 64 keeps it cheap)


def export_translator(
    checkpoint: Union[str, Path],
    fmt: str,
    out: Union[str, Path],
    direction: Optional[str] = None,
    opset: Optional[int] = None,
    check: bool = True,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
) -> Dict[str, Any]:
    """Export one generator of a checkpoint to a single ONNX or TorchScript file.

    Args:
        checkpoint: a run folder or its ``translator/`` folder.
        fmt: "onnx" or "torchscript".
        out: the file to write (atomically; parent folders are created).
        direction: "a2b" or "b2a"; may be omitted when the checkpoint has one generator.
        opset: ONNX opset (default: the exporter's default); below 18 the TorchScript-based
            ONNX exporter is used (see module docstring). ONNX only.
        check: compare the export with PyTorch at two input shapes before writing.
        overwrite: replace an existing ``out``.
        tolerance: largest max-abs difference from PyTorch the check accepts (default
            :data:`TOLERANCE`).

    Returns:
        report dict: format, path, bytes, direction, arch, opset (ONNX), size_multiple, input_nc,
        output_nc, checked, parity ([{"shape": [B, C, H, W], "max_abs_diff": float}]),
        tolerance, ok.

    Raises:
        DirectionError: ``direction`` is needed (two generators) or not in the checkpoint.
        ExportError: bad arguments, existing ``out``, missing optional
            packages, exporter failure, or a parity difference above ``tolerance`` (then
            nothing is written; the error's ``report`` has the measured differences).
        CheckpointError: the checkpoint cannot be read.
    """
    _check_arguments(fmt, opset, tolerance)
    out = Path(out)
    _check_out(out, overwrite)
    mods: Dict[str, Any] = {}
    if fmt == "onnx":
        legacy = opset is not None and opset < MIN_DYNAMO_OPSET
        mods = import_optional(["onnx"] + ([] if legacy else ["onnxscript"])
                                + (["onnxruntime"] if check else []))
    from .models import generator_size_multiple  # torch: imported when an export is made
    from .translator import Translator

    # fp32 on the CPU, the checkpoint's batch-norm mode: what the exported graph computes.
    t = Translator.load(checkpoint, device="cpu", precision="fp32")
    direction = t.pick_direction(direction)
    net = t.generator(direction)
    multiple = generator_size_multiple(net)
    input_nc, output_nc = int(net.config["input_nc"]), int(net.config["output_nc"])
    meta = metadata(t.doc, direction, net, multiple)
    side = multiple * math.ceil(PARITY_SIDE / multiple)  # s: a legal side, >= 64
    if fmt == "onnx":
        data, opset_used = to_onnx(net, mods["onnx"], input_nc, side, multiple, opset, meta)
    else:
        data, opset_used = _to_torchscript(net, input_nc, side, multiple, meta), None

    report: Dict[str, Any] = {
        "format": fmt, "path": str(out), "bytes": len(data), "direction": direction, "arch": meta["arch"],
        "opset": opset_used, "size_multiple": multiple, "input_nc": input_nc, "output_nc": output_nc,
        "checked": bool(check), "parity": [], "tolerance": float(tolerance), "ok": True,
        **({"label_usage": meta["label_usage"]} if meta.get("label_usage") else {})}
    if check:
        report["parity"] = _parity_check(fmt, data, net, mods, side)
        # Written so that a NaN difference fails too.
        bad = [p for p in report["parity"] if not p["max_abs_diff"] <= tolerance]
        report["ok"] = not bad
        if bad:
            shape = "x".join(map(str, bad[0]["shape"]))
            raise ExportError(
                f"parity check failed: the {fmt} export differs from PyTorch by {bad[0]['max_abs_diff']:.3g} "
                f"at {shape} (tolerance {tolerance:g}); nothing was written to {out} "
                "(pass --no-check to write it anyway)", report)

    _check_out(out, overwrite)  # again: the export may have taken a while
    atomic_write_bytes(out, data)
    return report


def _check_arguments(fmt: str, opset: Optional[int], tolerance: float) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if opset is not None:
        if fmt != "onnx":
            raise ExportError(f"--opset applies to ONNX export only, not to {fmt}")
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
            raise ExportError(f"opset must be an integer >= 7; got {opset!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ExportError(f"tolerance must be a number >= 0; got {tolerance!r}")


def _parity_check(fmt: str, data: bytes, net: nn.Module, mods: Dict[str, Any], side: int) -> List[Dict[str, Any]]:
    """The export run next to PyTorch: [{"shape", "max_abs_diff"}] at two shapes.

    Both shapes differ from the export examples (1 x C x s x s traced, 2 x C x 2s x 2s for
    torch.export) in height and width, and together they cover batch 1 and 2.
    """
    input_nc = int(net.config["input_nc"])
    shapes = ((1, input_nc, side, 2 * side), (2, input_nc, 2 * side, side))
    try:
        runner = _onnx_runner(data, mods["onnxruntime"]) if fmt == "onnx" else load_torchscript(data)[0]
        return [{"shape": list(s), "max_abs_diff": parity_diff(net, runner, s)} for s in shapes]
    except ExportError:
        raise
    except Exception as e:
        runtime = "onnxruntime" if fmt == "onnx" else "torch.jit"
        raise ExportError(f"the {fmt} export could not be run with {runtime} for the parity check: "
                          f"{first_line(e)}") from e


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the path of the file to write")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it")


def _to_torchscript(net: nn.Module, input_nc: int, side: int, multiple: int, meta: Dict[str, Any]) -> bytes:
    import torch
    from torch import nn

    class CheckedGenerator(nn.Module):
        """What a TorchScript export holds: the traced generator behind a scripted shape check.

        Tracing does not record Python checks, so the generator's own size check would be lost;
        this wrapper restores it with a message that names the expected shape. (Defined here so
        that importing this module does not import torch.)
        """

        def __init__(self, traced: nn.Module, input_nc: int, size_multiple: int) -> None:
            super().__init__()
            self.generator = traced
            self.input_nc = input_nc
            self.size_multiple = size_multiple

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1]
            if (x.dim() != 4 or x.size(1) != self.input_nc or x.size(2) % self.size_multiple != 0
                    or x.size(3) % self.size_multiple != 0):
                raise ValueError("expected a float32 (B, {}, H, W) batch with H and W multiples of {}; got {}"
                                 .format(self.input_nc, self.size_multiple, x.shape))
            return self.generator(x)  # (B, output_nc, H, W) in [-1, 1]

    try:
        with quiet(), torch.no_grad():
            traced = torch.jit.trace(net, torch.zeros(1, input_nc, side, side), check_trace=False)
            scripted = torch.jit.script(CheckedGenerator(traced, input_nc, multiple))
            buf = io.BytesIO()
            torch.jit.save(scripted, buf, _extra_files={TORCHSCRIPT_META: json.dumps(meta, indent=2)})
    except Exception as e:
        raise ExportError(f"TorchScript export failed for {meta['arch']}: {first_line(e)}") from e
    return buf.getvalue()


def load_torchscript(path_or_bytes: Union[str, Path, bytes]) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a TorchScript export and its metadata (``translate.json``) on the CPU."""
    import torch

    files = {TORCHSCRIPT_META: ""}
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with quiet():
        module = torch.jit.load(src, map_location="cpu", _extra_files=files)
    return module.eval(), json.loads(files[TORCHSCRIPT_META] or "{}")


def _onnx_runner(data: bytes, ort: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


# ---------------------------------------------------------------- command line


def add_export_parser(subparsers) -> None:
    """Add ``translate export`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "export", help="export a generator to ONNX or TorchScript",
        description="Export one generator of a checkpoint to a single ONNX or TorchScript file. "
                    "The file maps a float32 (B, C, H, W) batch in [-1, 1] to the translated batch; "
                    "B, H and W are dynamic, H and W must be multiples of the generator's size "
                    "multiple (recorded in the file's metadata). The export is compared with PyTorch "
                    "before it is written.")
    p.add_argument("checkpoint", help="a run folder or its translator/ folder")
    p.add_argument("out", metavar="OUT", help="file to write (e.g. model.onnx or model.pt)")
    p.add_argument("--format", required=True, choices=FORMATS, dest="format", help="export format")
    p.add_argument("--direction", choices=DIRECTIONS,
                   help="which generator to export (required when the checkpoint has both, e.g. CycleGAN)")
    p.add_argument("--opset", type=int,
                   help=f"ONNX opset (default: the exporter's; below {MIN_DYNAMO_OPSET} the legacy "
                        "TorchScript-based ONNX exporter is used)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="write without comparing the export with PyTorch")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="largest max-abs difference from PyTorch (outputs in [-1, 1]) the check accepts")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quantize", choices=["int8"],
                   help="write an int8 ONNX model (onnxruntime static quantization, QDQ) calibrated on "
                        "--calibration; refused where it is not faster than fp32 onnxruntime (see --force)")
    p.add_argument("--calibration", metavar="DIR", help="images of the input domain for --quantize")
    p.add_argument("--force", action="store_true", help="with --quantize: write even when int8 is not faster")
    p.set_defaults(func=_cmd_export)


def format_report(report: Dict[str, Any]) -> str:
    """The human-readable summary that ``translate export`` prints."""
    fmt = f"ONNX opset {report['opset']}" if report["format"] == "onnx" else "TorchScript"
    lines = [
        f"wrote {report['path']} ({fmt}, {report['bytes'] / 1e6:.1f} MB): {report['arch']} {report['direction']}",
        f"input:  (B, {report['input_nc']}, H, W) float32 in [-1, 1], H and W multiples of "
        f"{report['size_multiple']}; output (B, {report['output_nc']}, H, W)",
    ]
    if report.get("label_usage"):
        lines.append(f"labels: {report['label_usage']}")
    if not report["checked"]:
        lines.append("parity: not checked (--no-check)")
    else:
        lines.append(f"parity with PyTorch (tolerance {report['tolerance']:g}):")
        for p in report["parity"]:
            verdict = "ok" if p["max_abs_diff"] <= report["tolerance"] else "FAILED"
            lines.append(f"  {'x'.join(map(str, p['shape'])):>16}  max |diff| {p['max_abs_diff']:.2e}  {verdict}")
    return "\n".join(lines)


def _cmd_export(args, argv) -> int:
    if args.quantize:
        if args.format != "onnx" or not args.calibration:
            raise ExportError("--quantize int8 needs --format onnx and --calibration DIR (input-domain images)")
        r = quantize_int8(args.checkpoint, args.out, args.calibration, direction=args.direction,
                          overwrite=args.overwrite, force=args.force)
        print(json.dumps(r, indent=2) if args.json else
              f"wrote {r['path']} (int8 QDQ, {r['bytes'] / 1e6:.1f} MB, {r['direction']}): {r['ms_int8']} ms vs "
              f"{r['ms_fp32']} ms fp32 onnxruntime per {r['side']}x{r['side']} image ({r['speedup']}x); PSNR against "
              f"fp32 PyTorch {r['psnr_db']} dB (min {r['psnr_min_db']}) on {r['images']} calibration images")
        return 0
    report = export_translator(args.checkpoint, args.format, args.out, direction=args.direction,
                               opset=args.opset, check=args.check, overwrite=args.overwrite,
                               tolerance=args.tolerance)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0  # a failed check raises ExportError (exit 2 in the CLI)


# ---------------------------------------------------------------- int8 (onnxruntime static quantization)


def quantize_int8(checkpoint: Union[str, Path], out: Union[str, Path], calibration: Union[str, Path],
                  direction: Optional[str] = None, max_images: int = 32, overwrite: bool = False,
                  force: bool = False, repeats: int = 5, fp32_onnx: Optional[bytes] = None) -> Dict[str, Any]:
    """Post-training static int8 quantization (onnxruntime, QDQ, per-channel weights) of one generator.

    The fp32 ONNX graph is calibrated on up to ``max_images`` images of ``calibration`` (translated
    at the training crop size, as the translator prepares them), then the int8 and the fp32 graphs
    are timed side by side with onnxruntime on the CPU, and the int8 outputs are compared with the
    fp32 PyTorch outputs (PSNR, dB) on the same images.

    Args:
        force: write the int8 file even when it is not faster than fp32 onnxruntime here.
        fp32_onnx: the generator's fp32 ONNX graph when it is already exported (saves the export).

    Returns:
        report: path, bytes, images, side, psnr_db, ms_fp32, ms_int8, speedup, written.

    Raises:
        ExportError: no calibration images, missing packages, existing ``out``, or int8 not faster
            than fp32 on this machine (nothing written; the message has the measured times).
    """
    from .data.discover import list_images
    from .data.io import read_image
    from .runtimes.int8 import compare_int8, quantize_static_int8
    from .translator import Translator

    out = Path(out)
    _check_out(out, overwrite)
    import_optional(["onnx", "onnxscript", "onnxruntime"])
    folder = Path(calibration)
    if not folder.is_dir():
        raise ExportError(f"--calibration {folder}: not a folder of images")
    files = list_images(folder)[:max_images]
    if not files:
        raise ExportError(f"--calibration {folder}: no images found in it")
    t = Translator.load(checkpoint, device="cpu", precision="fp32")
    direction = t.pick_direction(direction)
    net = t.generator(direction)
    side = max(t.size_multiple, int(t.preprocessing.get("crop_size") or 256) // t.size_multiple * t.size_multiple)
    inputs = [t.prepare(read_image(f), direction, resize=side)[0][None] for f in files]  # (1, C, s, s) each
    fp32 = fp32_onnx if fp32_onnx is not None else generator_to_onnx(net, t.doc, direction)
    int8 = quantize_static_int8(fp32, inputs)
    measured = compare_int8(net, fp32, int8, inputs, repeats)
    ms8, ms32 = measured["ms_int8"], measured["ms_fp32"]
    report = {"path": str(out), "bytes": len(int8), "direction": direction, "images": len(inputs), "side": side,
              **measured, "written": False}
    if ms8 >= ms32 and not force:
        raise ExportError(
            f"int8 is not faster on this machine: {ms8:.1f} ms vs {ms32:.1f} ms per {side}x{side} image with fp32 "
            f"onnxruntime (PSNR {report['psnr_db']} dB against fp32); nothing was written to {out}. Pass --force to "
            "write it anyway", report)
    _check_out(out, overwrite)
    atomic_write_bytes(out, int8)
    report["written"] = True
    return report
