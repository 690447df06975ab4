"""int8 models for onnxruntime: post-training static quantization (QDQ, per-channel weights) of a
generator's fp32 ONNX graph, timed against that graph and compared with PyTorch.

``translate export --quantize int8`` (:func:`translate.export.quantize_int8`) loads the
translator, prepares the calibration images and writes the file; this module does the
quantization and the measurements. The result runs with ``--backend onnxruntime --onnx FILE``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
from torch import nn

from .backends import runtime_runner
from .onnx import INPUT_NAME, import_optional, quiet


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), the same as on 8-bit pixels."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def median_seconds(run: Callable, x, repeats: int) -> float:
    """Median seconds of ``run(x)`` over ``repeats`` calls after one warm-up call."""
    run(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def quantize_static_int8(fp32: bytes, inputs: List[torch.Tensor]) -> bytes:
    """The int8 QDQ graph of ONNX ``fp32``, calibrated on ``inputs`` ((1, C, s, s) each), marked
    ``quantized=int8`` in its metadata."""
    mods = import_optional(["onnx", "onnxscript", "onnxruntime"])
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(inputs)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {INPUT_NAME: x.numpy()}

    tmp = Path(tempfile.mkdtemp(prefix="translate-int8-"))
    try:
        (tmp / "fp32.onnx").write_bytes(fp32)
        with quiet():
            quantize_static(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = mods["onnx"].load(str(tmp / "int8.onnx"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prop = model.metadata_props.add()
    prop.key, prop.value = "quantized", "int8"
    return model.SerializeToString()


def compare_int8(net: nn.Module, fp32: bytes, int8: bytes, inputs: List[torch.Tensor], repeats: int) -> Dict[str, Any]:
    """PSNR of the int8 graph against PyTorch ``net`` on ``inputs``, and both graphs' onnxruntime
    times on the first input, measured side by side: psnr_db, psnr_min_db, ms_fp32, ms_int8, speedup."""
    run8 = runtime_runner(int8, "onnxruntime")
    run32 = runtime_runner(fp32, "onnxruntime")
    with torch.inference_mode():
        values = [psnr(run8(x), net(x)) for x in inputs]
    ms32 = 1000 * median_seconds(run32, inputs[0], repeats)
    ms8 = 1000 * median_seconds(run8, inputs[0], repeats)
    return {"psnr_db": round(sum(values) / len(values), 2), "psnr_min_db": round(min(values), 2),
            "ms_fp32": round(ms32, 2), "ms_int8": round(ms8, 2), "speedup": round(ms32 / ms8, 3)}
