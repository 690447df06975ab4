"""Translators whose generators run in another runtime: :func:`use_backend`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import nn

from .backends import BACKENDS, get_backend
from .onnx import TOLERANCE, ExportError, check_runner, first_line, generator_to_onnx, onnx_meta


class RuntimeGenerator(nn.Module):
    """A generator run by onnxruntime or OpenVINO, with the PyTorch generator's ``arch``,
    ``config`` and ``size_multiple``, so :class:`translate.Translator` pads, tiles and crops
    exactly as with PyTorch."""

    def __init__(self, net: nn.Module, run: Callable, backend: str, parity: List[Dict[str, Any]]):
        super().__init__()
        self.arch, self.config, self.size_multiple = net.arch, dict(net.config), net.size_multiple
        self.backend, self.parity, self.run = backend, parity, run

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) float32 in [-1, 1], sides multiples
        return self.run(x.detach().float().cpu().contiguous()).to(x.device)


def use_backend(translator, backend: str, onnx: Optional[Union[str, Path]] = None,
                tolerance: float = TOLERANCE):
    """Run ``translator``'s generators with ``backend`` (in place); returns the translator.

    Each generator is exported to ONNX in memory (or ``onnx`` is read: one file, for a
    translator with one direction, e.g. an int8 model from ``translate export --quantize int8``)
    and checked against PyTorch at the export parity shapes: fp32 graphs must agree within
    ``tolerance``; a quantized file is not held to it (its PSNR is reported by ``translate export``
    and ``translate bench``), but its differences are recorded in ``translator.backend_parity``.

    Raises:
        ExportError: unknown backend, missing optional package, a precision the backend lacks, or a
            parity difference above ``tolerance``.
    """
    runtime = get_backend(backend)
    translator.backend, translator.backend_parity = backend, {}
    if not runtime.runs_onnx:
        if onnx is not None:
            runners = " or ".join(n for n, b in BACKENDS.items() if b.runs_onnx)
            raise ExportError(f"an ONNX file runs with --backend {runners}, not {backend}")
        return translator
    if translator.precision not in runtime.precisions:
        raise ExportError(f"the {backend} backend runs the {' or '.join(runtime.precisions)} graph; precision "
                          f"{translator.precision} is for torch")
    reduced = translator.precision != "fp32"  # e.g. OpenVINO's bf16 hint: parity recorded, not held to fp32's tolerance
    if onnx is not None and len(translator.generators) != 1:
        raise ExportError("an ONNX file holds one generator; this translator has "
                          f"{' and '.join(translator.generators)}")
    for direction, net in list(translator.generators.items()):
        data = read_onnx(onnx) if onnx is not None else generator_to_onnx(net, translator.doc, direction)
        try:
            run = runtime.make_runner(data, translator.device.type, translator.precision)
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"{backend} cannot run the {direction} generator: {first_line(e)}") from e
        quantized = onnx is not None and onnx_meta(data).get("quantized")
        parity = check_runner(net, run, f"the {backend} backend", float("inf") if quantized or reduced else tolerance)
        translator.backend_parity[direction] = parity
        translator.generators[direction] = RuntimeGenerator(net, run, backend, parity)
    return translator


def read_onnx(path: Union[str, Path]) -> bytes:
    """The bytes of an ONNX file; ExportError when there is none."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    return path.read_bytes()

