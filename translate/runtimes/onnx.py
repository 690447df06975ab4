"""The ONNX graph of a generator, shared by ``translate export`` and the ONNX runtimes.

The graph computes what :class:`translate.Translator` computes on an already padded batch (see
:mod:`translate.export` for the contract of an exported file and the exporter choice), with the
metadata that describes it. :func:`check_runner` holds any runner of such a graph to the PyTorch
generator at two parity shapes. Importing this module does not import torch (``translate
--help`` builds the export parser from it); the optional packages are imported where used.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

# fp32 outputs in [-1, 1]; measured differences are 1e-6 (tiny nets) to 1.2e-5 (unet_256, ngf 64)
# for both formats. One 8-bit output level is 2/255 ~ 7.8e-3, so 1e-4 is ~1/80 of a level.
TOLERANCE = 1e-4
MIN_DYNAMO_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "output"
EXTRA_HINT = "pip install 'translate-images[export]'"
PARITY_SIDE = 64  # parity images have sides >= this (ResNets need >= 8; 64 keeps it cheap)


class ExportError(UserError):
    """An export could not be made or did not reproduce the PyTorch generator.

    Attributes:
        report: the export report when the parity check failed, else None.
    """

    def __init__(self, message: str, report: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.report = report


def import_optional(names: List[str]) -> Dict[str, Any]:
    """Import the optional packages ``names``; ExportError with the install hint names the missing ones."""
    mods, missing = {}, []
    for name in names:
        try:
            mods[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"ONNX export needs the optional extra: {EXTRA_HINT} "
                          f"(missing: {', '.join(missing)})")
    return mods


def metadata(doc: Dict[str, Any], direction: str, net: nn.Module, multiple: int) -> Dict[str, Any]:
    import torch

    from ..version import __version__

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
        **label_metadata(pre),
    }


def label_metadata(pre: Dict[str, Any]) -> Dict[str, Any]:
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
def quiet() -> Iterator[None]:
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


def first_line(e: BaseException) -> str:
    """Exporter errors run to pages; the CLI shows one line (the full one is the __cause__)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def to_onnx(net: nn.Module, onnx: Any, input_nc: int, side: int, multiple: int,
             opset: Optional[int], meta: Dict[str, Any]) -> Tuple[bytes, int]:
    import torch

    try:
        with quiet():
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
                          f"(opset {opset or 'default'}): {first_line(e)}") from e
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


def parity_diff(net: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], shape: Tuple[int, ...]) -> float:
    """The largest absolute difference between ``run`` and ``net`` on a deterministic random input of ``shape``."""
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


def generator_to_onnx(net: nn.Module, doc: Dict[str, Any], direction: str, opset: Optional[int] = None) -> bytes:
    """The ONNX bytes of an inference-ready generator (the same graph ``translate export`` writes).

    Args:
        net: the generator as :class:`translate.Translator` runs it (eval mode, fp32, CPU).
        doc: the translator description (``Translator.doc``).
        direction: the generator's direction (recorded in the metadata).
    """
    from ..models import generator_size_multiple

    mods = import_optional(["onnx", "onnxscript"])
    multiple = generator_size_multiple(net)
    side = multiple * math.ceil(PARITY_SIDE / multiple)
    data, _ = to_onnx(net, mods["onnx"], int(net.config["input_nc"]), side, multiple, opset,
                       metadata(doc, direction, net, multiple))
    return data


def check_runner(net: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], name: str,
                 tolerance: float = TOLERANCE) -> List[Dict[str, Any]]:
    """Compare ``run`` with the PyTorch generator ``net`` at the export parity shapes.

    Returns:
        [{"shape": [B, C, H, W], "max_abs_diff": float}] for the two shapes.

    Raises:
        ExportError: a difference above ``tolerance`` (or NaN), naming ``name``.
    """
    from ..models import generator_size_multiple

    multiple = generator_size_multiple(net)
    side = multiple * math.ceil(PARITY_SIDE / multiple)
    c = int(net.config["input_nc"])
    parity = [{"shape": list(s), "max_abs_diff": parity_diff(net, run, s)}
              for s in ((1, c, side, 2 * side), (2, c, 2 * side, side))]
    bad = [p for p in parity if not p["max_abs_diff"] <= tolerance]
    if bad:
        raise ExportError(f"parity check failed: {name} differs from PyTorch by {bad[0]['max_abs_diff']:.3g} at "
                          f"{'x'.join(map(str, bad[0]['shape']))} (tolerance {tolerance:g})")
    return parity


def onnx_meta(data: bytes) -> Dict[str, Any]:
    """The ``metadata_props`` of ONNX ``data`` as a dict of strings."""
    onnx = import_optional(["onnx"])["onnx"]
    model = onnx.load_from_string(data)
    return {p.key: p.value for p in model.metadata_props}
