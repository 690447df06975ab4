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

import contextlib
import importlib
import io
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from .errors import UserError
from .fsutil import atomic_write_bytes

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
_PARITY_SIDE = 64  # parity images have sides >= this (ResNets need >= 8; 64 keeps it cheap)


class ExportError(UserError):
    """An export could not be made or did not reproduce the PyTorch generator.

    Attributes:
        report: the export report when the parity check failed, else None.
    """

    def __init__(self, message: str, report: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.report = report


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
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if opset is not None:
        if fmt != "onnx":
            raise ExportError(f"--opset applies to ONNX export only, not to {fmt}")
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
            raise ExportError(f"opset must be an integer >= 7; got {opset!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ExportError(f"tolerance must be a number >= 0; got {tolerance!r}")
    out = Path(out)
    _check_out(out, overwrite)
    mods: Dict[str, Any] = {}
    if fmt == "onnx":
        legacy = opset is not None and opset < MIN_DYNAMO_OPSET
        mods = _import_optional(["onnx"] + ([] if legacy else ["onnxscript"])
                                + (["onnxruntime"] if check else []))

    from .models import generator_size_multiple
    from .translator import Translator

    # fp32 on the CPU, the checkpoint's batch-norm mode: what the exported graph computes.
    t = Translator.load(checkpoint, device="cpu", precision="fp32")
    direction = t.pick_direction(direction)
    net = t.generator(direction)
    doc = t.doc
    multiple = generator_size_multiple(net)
    input_nc, output_nc = int(net.config["input_nc"]), int(net.config["output_nc"])
    meta = _metadata(doc, direction, net, multiple)
    side = multiple * math.ceil(_PARITY_SIDE / multiple)  # s: a legal side, >= 64

    if fmt == "onnx":
        data, opset_used = _to_onnx(net, mods["onnx"], input_nc, side, multiple, opset, meta)
    else:
        data, opset_used = _to_torchscript(net, input_nc, side, multiple, meta), None

    report: Dict[str, Any] = {
        "format": fmt, "path": str(out), "bytes": len(data), "direction": direction,
        "arch": meta["arch"], "opset": opset_used, "size_multiple": multiple,
        "input_nc": input_nc, "output_nc": output_nc, "checked": bool(check), "parity": [],
        "tolerance": float(tolerance), "ok": True,
    }
    if meta.get("label_usage"):
        report["label_usage"] = meta["label_usage"]
    if check:
        # Both shapes differ from the export examples (1 x C x s x s traced, 2 x C x 2s x 2s for
        # torch.export) in height and width, and together they cover batch 1 and 2.
        shapes = ((1, input_nc, side, 2 * side), (2, input_nc, 2 * side, side))
        try:
            runner = _onnx_runner(data, mods["onnxruntime"]) if fmt == "onnx" else load_torchscript(data)[0]
            report["parity"] = [{"shape": list(s), "max_abs_diff": _parity(net, runner, s)} for s in shapes]
        except ExportError:
            raise
        except Exception as e:
            runtime = "onnxruntime" if fmt == "onnx" else "torch.jit"
            raise ExportError(f"the {fmt} export could not be run with {runtime} for the parity check: "
                              f"{_first_line(e)}") from e
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


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the path of the file to write")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it")


def _import_optional(names: List[str]) -> Dict[str, Any]:
    mods, missing = {}, []
    for name in names:
        try:
            mods[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"ONNX export needs the optional extra: {_EXTRA_HINT} "
                          f"(missing: {', '.join(missing)})")
    return mods


def _metadata(doc: Dict[str, Any], direction: str, net: nn.Module, multiple: int) -> Dict[str, Any]:
    import torch

    from .version import __version__

    pre = doc["preprocessing"]
    entry = doc["generators"][direction]
    return {
        "producer": "translate", "translate_version": __version__, "torch_version": torch.__version__,
        "method": doc["method"], "direction": direction, "arch": entry["arch"],
        "generator_config": dict(net.config),
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32",
        "input_nc": int(net.config["input_nc"]), "output_nc": int(net.config["output_nc"]),
        "value_range": [-1.0, 1.0], "size_multiple": multiple,
        "pad_mode": pre.get("pad_mode", "reflect"), "batchnorm": pre.get("batchnorm", "per_image"),
        "usage": (f"H and W must be multiples of {multiple}: pad the image ({pre.get('pad_mode', 'reflect')}) "
                  "to the next multiple, run, crop the output back; 8-bit pixels p map to p / 127.5 - 1"),
        **_label_metadata(pre),
    }


def _label_metadata(pre: Dict[str, Any]) -> Dict[str, Any]:
    """For translators of class-ID label maps: the one-hot step the caller must do before the model."""
    labels = pre.get("labels")
    if not labels:
        return {}
    n, inst = labels["label_nc"], labels["instance_channel"]
    return {"label_encoding": dict(labels),
            "label_usage": (f"the input is one-hot, not an image: channel k (0..{n - 1}) is 1.0 where the class ID "
                            f"is k, else 0.0" + (f"; channel {n} is 1.0 on instance boundaries (pixels whose "
                                                 "instance ID differs from a 4-neighbour's)" if inst else "")
                            + "; pad (reflect) the one-hot tensor to the size multiple, resize IDs only with "
                              "nearest neighbour")}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation notices of torch.jit / the legacy exporter and TracerWarnings.

    The tracer warns about the sanity check inside ``F.instance_norm`` (more than one spatial
    element); it becomes a constant in the trace, which is harmless, and the parity check covers
    every other way a trace could fail to generalise.
    """
    import torch

    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        # The legacy ONNX exporter notes that instance_norm is exported with train=True, which is
        # exactly per-image statistics, and that it cannot constant-fold strided slices.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx\.")
        yield


def _first_line(e: BaseException) -> str:
    """Exporter errors run to pages; the CLI shows one line (the full one is the __cause__)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _to_onnx(net: nn.Module, onnx: Any, input_nc: int, side: int, multiple: int,
             opset: Optional[int], meta: Dict[str, Any]) -> Tuple[bytes, int]:
    import torch

    try:
        with _quiet():
            if opset is None or opset >= MIN_DYNAMO_OPSET:
                from torch.export import Dim

                # Example >= 2 units in every dynamic dim, else torch.export specialises it to 1.
                example = torch.zeros(2, input_nc, 2 * side, 2 * side)
                dims = {0: Dim("batch"), 2: multiple * Dim("height"), 3: multiple * Dim("width")}
                program = torch.onnx.export(
                    net, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], dynamic_shapes=(dims,), verbose=False)
                model = program.model_proto
            else:
                axes = {0: "batch", 2: f"{multiple}*height", 3: f"{multiple}*width"}
                buf = io.BytesIO()
                torch.onnx.export(
                    net, (torch.zeros(1, input_nc, side, side),), buf, dynamo=False, opset_version=opset,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
                model = onnx.load_from_string(buf.getvalue())
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for {meta['arch']} "
                          f"(opset {opset or 'default'}): {_first_line(e)}") from e
    used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and used != opset:
        raise ExportError(f"the ONNX exporter produced opset {used} instead of the requested {opset}; "
                          f"try --opset {used} or leave --opset out")
    model.doc_string = (f"translate {meta['method']} {meta['direction']} generator ({meta['arch']}): "
                        f"{meta['usage']}")
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value if isinstance(value, str) else json.dumps(value)
    try:
        return model.SerializeToString(), used
    except ValueError as e:  # protobuf refuses messages over 2 GiB
        raise ExportError(f"the ONNX model is too large to write as one file ({e})") from e


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
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(net, torch.zeros(1, input_nc, side, side), check_trace=False)
            scripted = torch.jit.script(CheckedGenerator(traced, input_nc, multiple))
            buf = io.BytesIO()
            torch.jit.save(scripted, buf, _extra_files={TORCHSCRIPT_META: json.dumps(meta, indent=2)})
    except Exception as e:
        raise ExportError(f"TorchScript export failed for {meta['arch']}: {_first_line(e)}") from e
    return buf.getvalue()


def load_torchscript(path_or_bytes: Union[str, Path, bytes]) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a TorchScript export and its metadata (``translate.json``) on the CPU."""
    import torch

    files = {TORCHSCRIPT_META: ""}
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with _quiet():
        module = torch.jit.load(src, map_location="cpu", _extra_files=files)
    return module.eval(), json.loads(files[TORCHSCRIPT_META] or "{}")


def _onnx_runner(data: bytes, ort: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


def _parity(net: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], shape: Tuple[int, ...]) -> float:
    import torch

    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=gen) * 2 - 1  # (B, C, H, W) in [-1, 1]
    with torch.inference_mode():
        expected = net(x)
        got = run(x)
    if tuple(got.shape) != tuple(expected.shape):
        raise ExportError(f"the export returned shape {list(got.shape)} for input {list(shape)}; "
                          f"PyTorch returns {list(expected.shape)}")
    return float((got.float() - expected).abs().max())


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


# ---------------------------------------------------------------- runtimes (translate.backends)


def generator_to_onnx(net: nn.Module, doc: Dict[str, Any], direction: str, opset: Optional[int] = None) -> bytes:
    """The ONNX bytes of an inference-ready generator (the same graph ``translate export`` writes).

    Args:
        net: the generator as :class:`translate.Translator` runs it (eval mode, fp32, CPU).
        doc: the translator description (``Translator.doc``).
        direction: the generator's direction (recorded in the metadata).
    """
    from .models import generator_size_multiple

    mods = _import_optional(["onnx", "onnxscript"])
    multiple = generator_size_multiple(net)
    side = multiple * math.ceil(_PARITY_SIDE / multiple)
    data, _ = _to_onnx(net, mods["onnx"], int(net.config["input_nc"]), side, multiple, opset,
                       _metadata(doc, direction, net, multiple))
    return data


def check_runner(net: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], name: str,
                 tolerance: float = TOLERANCE) -> List[Dict[str, Any]]:
    """Compare ``run`` with the PyTorch generator ``net`` at the export parity shapes.

    Returns:
        [{"shape": [B, C, H, W], "max_abs_diff": float}] for the two shapes.

    Raises:
        ExportError: a difference above ``tolerance`` (or NaN), naming ``name``.
    """
    from .models import generator_size_multiple

    multiple = generator_size_multiple(net)
    side = multiple * math.ceil(_PARITY_SIDE / multiple)
    c = int(net.config["input_nc"])
    parity = [{"shape": list(s), "max_abs_diff": _parity(net, run, s)}
              for s in ((1, c, side, 2 * side), (2, c, 2 * side, side))]
    bad = [p for p in parity if not p["max_abs_diff"] <= tolerance]
    if bad:
        raise ExportError(f"parity check failed: {name} differs from PyTorch by {bad[0]['max_abs_diff']:.3g} at "
                          f"{'x'.join(map(str, bad[0]['shape']))} (tolerance {tolerance:g})")
    return parity


BACKENDS = ("torch", "onnxruntime", "openvino")
_OPENVINO_HINT = "pip install 'translate-images[openvino]'"
# OpenVINO's CPU plugin picks its own convolution algorithms (Winograd, different summation
# orders); measured differences are below 2e-5 on the test nets, so the export tolerance holds.


def _ort_session(data: bytes, device_type: str = "cpu"):
    """An onnxruntime session: TensorRT / CUDA providers when running on a GPU and present, else CPU."""
    ort = _import_optional(["onnxruntime"])["onnxruntime"]
    providers = ["CPUExecutionProvider"]
    if device_type == "cuda":
        providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                     if p in ort.get_available_providers()] + providers
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, sess_options=options, providers=providers)


def runtime_runner(data: bytes, backend: str, device_type: str = "cpu",
                   precision: str = "fp32") -> Callable[[torch.Tensor], torch.Tensor]:
    """A function (B, C, H, W) float32 CPU tensor -> output tensor, running ONNX ``data`` with ``backend``.

    ``precision`` "bf16" sets OpenVINO's bf16 inference hint (AMX / AVX-512 BF16 CPUs); fp32 is the
    parity reference and the only precision of onnxruntime.
    """
    import numpy as np
    import torch

    if backend == "onnxruntime":
        session = _ort_session(data, device_type)
        return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
    if backend == "openvino":
        try:
            import openvino as ov
        except ImportError:
            raise ExportError(f"the openvino backend needs the optional extra: {_OPENVINO_HINT}") from None
        core = ov.Core()
        model = core.read_model(model=np.frombuffer(data, dtype=np.uint8).tobytes(), weights=b"")
        # fp32 as in PyTorch unless bf16 is asked for: on CPUs with native bf16 (AVX512-BF16, AMX)
        # OpenVINO would otherwise run in bf16 by default, about 1e-2 away from the fp32 outputs.
        hint = {"fp32": "f32", "bf16": "bf16"}.get(precision)
        if hint is None:
            raise ExportError(f"the openvino backend runs fp32 or bf16, not {precision}")
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        output = compiled.output(0)
        return lambda x: torch.from_numpy(np.asarray(compiled(x.numpy())[output]))
    raise ExportError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")


def _runtime_generator_class():
    from torch import nn

    class RuntimeGenerator(nn.Module):
        """A generator run by onnxruntime or OpenVINO, with the PyTorch generator's ``arch``,
        ``config`` and ``size_multiple``, so :class:`translate.Translator` pads, tiles and crops
        exactly as with PyTorch."""

        def __init__(self, net: nn.Module, run: Callable, backend: str, parity: List[Dict[str, Any]]):
            super().__init__()
            self.arch, self.config, self.size_multiple = net.arch, dict(net.config), net.size_multiple
            self.backend, self.parity, self.run = backend, parity, run

        def forward(self, x):  # (B, C, H, W) float32 in [-1, 1], H and W multiples of size_multiple
            return self.run(x.detach().float().cpu().contiguous()).to(x.device)

    return RuntimeGenerator


def use_backend(translator, backend: str, onnx: Optional[Union[str, Path]] = None,
                tolerance: float = TOLERANCE):
    """Run ``translator``'s generators with ``backend`` (in place); returns the translator.

    Each generator is exported to ONNX in memory (or ``onnx`` is read: one file, for a
    translator with one direction, e.g. an int8 model from ``translate export --quantize int8``)
    and checked against PyTorch at the export parity shapes: fp32 graphs must agree within
    ``tolerance``; a quantized file is not held to it (its PSNR is reported by ``translate export``
    and ``translate bench``), but its differences are recorded in ``translator.backend_parity``.

    Raises:
        ExportError: unknown backend, missing optional package, precision other than fp32, or a
            parity difference above ``tolerance``.
    """
    if backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    translator.backend, translator.backend_parity = backend, {}
    if backend == "torch":
        if onnx is not None:
            raise ExportError("an ONNX file runs with --backend onnxruntime or openvino, not torch")
        return translator
    reduced = translator.precision != "fp32"  # OpenVINO's bf16 hint: parity recorded, not held to the fp32 tolerance
    if reduced and not (backend == "openvino" and translator.precision == "bf16"):
        raise ExportError(f"the {backend} backend runs the fp32 graph (OpenVINO also bf16); precision "
                          f"{translator.precision} is for torch")
    if onnx is not None and len(translator.generators) != 1:
        raise ExportError("an ONNX file holds one generator; this translator has "
                          f"{' and '.join(translator.generators)}")
    cls = _runtime_generator_class()
    for direction, net in list(translator.generators.items()):
        if onnx is not None:
            path = Path(onnx)
            if not path.is_file():
                raise ExportError(f"{path}: no such ONNX file")
            data = path.read_bytes()
        else:
            data = generator_to_onnx(net, translator.doc, direction)
        try:
            run = runtime_runner(data, backend, translator.device.type, translator.precision)
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"{backend} cannot run the {direction} generator: {_first_line(e)}") from e
        quantized = onnx is not None and _onnx_meta(data).get("quantized")
        parity = check_runner(net, run, f"the {backend} backend", float("inf") if quantized or reduced else tolerance)
        translator.backend_parity[direction] = parity
        translator.generators[direction] = cls(net, run, backend, parity)
    return translator


def _onnx_meta(data: bytes) -> Dict[str, Any]:
    onnx = _import_optional(["onnx"])["onnx"]
    model = onnx.load_from_string(data)
    return {p.key: p.value for p in model.metadata_props}


# ---------------------------------------------------------------- int8 (onnxruntime static quantization)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), the same as on 8-bit pixels."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def _median_seconds(run: Callable, x, repeats: int) -> float:
    import time

    run(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


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
    import shutil
    import tempfile

    import torch

    from .data.discover import list_images
    from .data.io import read_image
    from .translator import Translator

    out = Path(out)
    _check_out(out, overwrite)
    mods = _import_optional(["onnx", "onnxscript", "onnxruntime"])
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

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

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(inputs)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {INPUT_NAME: x.numpy()}

    tmp = Path(tempfile.mkdtemp(prefix="translate-int8-"))
    try:
        (tmp / "fp32.onnx").write_bytes(fp32)
        with _quiet():
            quantize_static(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = mods["onnx"].load(str(tmp / "int8.onnx"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prop = model.metadata_props.add()
    prop.key, prop.value = "quantized", "int8"
    int8 = model.SerializeToString()

    run8 = runtime_runner(int8, "onnxruntime")
    run32 = runtime_runner(fp32, "onnxruntime")
    with torch.inference_mode():
        psnr = [_psnr(run8(x), net(x)) for x in inputs]
    ms32 = 1000 * _median_seconds(run32, inputs[0], repeats)
    ms8 = 1000 * _median_seconds(run8, inputs[0], repeats)
    report = {"path": str(out), "bytes": len(int8), "direction": direction, "images": len(inputs), "side": side,
              "psnr_db": round(sum(psnr) / len(psnr), 2), "psnr_min_db": round(min(psnr), 2),
              "ms_fp32": round(ms32, 2), "ms_int8": round(ms8, 2), "speedup": round(ms32 / ms8, 3), "written": False}
    if ms8 >= ms32 and not force:
        raise ExportError(
            f"int8 is not faster on this machine: {ms8:.1f} ms vs {ms32:.1f} ms per {side}x{side} image with fp32 "
            f"onnxruntime (PSNR {report['psnr_db']} dB against fp32); nothing was written to {out}. Pass --force to "
            "write it anyway", report)
    _check_out(out, overwrite)
    atomic_write_bytes(out, int8)
    report["written"] = True
    return report
