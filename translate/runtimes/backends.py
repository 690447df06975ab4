"""The inference backends as a registry: name -> :class:`Backend`.

``torch`` runs the PyTorch generators themselves; the others run the generator's ONNX graph
(:mod:`translate.runtimes.onnx`) in another runtime. Each ONNX backend turns ONNX bytes into a
runner, a function (B, C, H, W) float32 CPU tensor -> output tensor. The runtimes are optional
extras: their packages are imported when a runner is made, never when this module is imported.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .onnx import INPUT_NAME, OUTPUT_NAME, ExportError, import_optional

Runner = Callable  # (B, C, H, W) float32 CPU tensor -> output tensor


@dataclass(frozen=True)
class Backend:
    """One inference backend.

    Attributes:
        name: the registry name (``--backend NAME``, ``Translator.load(backend=NAME)``).
        package: the Python package it needs (None: always there).
        extra: the optional extra of translate-images that installs it.
        make_runner: ONNX bytes, device type ("cpu", "cuda"), precision -> runner; None for torch,
            which runs the PyTorch generators without ONNX.
        precisions: what an ONNX backend can compute in; fp32 is the parity reference (torch runs
            every precision of :data:`translate.runtime.PRECISIONS` itself).
    """

    name: str
    package: Optional[str] = None
    extra: Optional[str] = None
    make_runner: Optional[Callable[[bytes, str, str], Runner]] = None
    precisions: Tuple[str, ...] = ("fp32",)

    @property
    def runs_onnx(self) -> bool:
        return self.make_runner is not None

    def available(self) -> bool:
        """Whether its package is installed here."""
        return self.package is None or importlib.util.find_spec(self.package) is not None

    @property
    def install_hint(self) -> str:
        return f"pip install 'translate-images[{self.extra}]'" if self.extra else ""


def onnxruntime_session(data: bytes, device_type: str = "cpu"):
    """An onnxruntime session: TensorRT / CUDA providers when running on a GPU and present, else CPU."""
    ort = import_optional(["onnxruntime"])["onnxruntime"]
    providers = ["CPUExecutionProvider"]
    if device_type == "cuda":
        providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                     if p in ort.get_available_providers()] + providers
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, sess_options=options, providers=providers)


def onnxruntime_runner(data: bytes, device_type: str = "cpu", precision: str = "fp32") -> Runner:
    """A runner of ONNX ``data`` in onnxruntime (fp32 only: its CPU provider has no faster bf16 path
    for these graphs, docs/performance.md)."""
    import torch

    session = onnxruntime_session(data, device_type)
    return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


def openvino_runner(data: bytes, device_type: str = "cpu", precision: str = "fp32") -> Runner:
    """A runner of ONNX ``data`` in OpenVINO on the CPU, in fp32 as PyTorch computes it, or with
    ``precision`` "bf16" under OpenVINO's bf16 inference hint (AMX / AVX-512 BF16 CPUs)."""
    import numpy as np
    import torch

    try:
        import openvino as ov
    except ImportError:
        raise ExportError(f"the openvino backend needs the optional extra: {BACKENDS['openvino'].install_hint}") from None
    core = ov.Core()
    model = core.read_model(model=np.frombuffer(data, dtype=np.uint8).tobytes(), weights=b"")
    # fp32 as in PyTorch unless bf16 is asked for: on CPUs with native bf16 (AVX512-BF16, AMX)
    # OpenVINO would otherwise run in bf16 by default, about 1e-2 away from the fp32 outputs.
    # OpenVINO's CPU plugin picks its own convolution algorithms (Winograd, different summation
    # orders); measured fp32 differences are below 2e-5 on the test nets, so the export tolerance holds.
    hint = {"fp32": "f32", "bf16": "bf16"}.get(precision)
    if hint is None:
        raise ExportError(f"the openvino backend runs fp32 or bf16, not {precision}")
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    output = compiled.output(0)
    return lambda x: torch.from_numpy(np.asarray(compiled(x.numpy())[output]))


BACKENDS: Dict[str, Backend] = {
    "torch": Backend("torch"),
    "onnxruntime": Backend("onnxruntime", package="onnxruntime", extra="export", make_runner=onnxruntime_runner),
    "openvino": Backend("openvino", package="openvino", extra="openvino", make_runner=openvino_runner,
                        precisions=("fp32", "bf16")),
}


def list_backends() -> List[str]:
    """The backend names, torch first."""
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend registered under ``name``.

    Raises:
        ExportError: an unknown name (the message lists the valid ones).
    """
    if name not in BACKENDS:
        raise ExportError(f"unknown backend {name!r}; valid: {', '.join(list_backends())}")
    return BACKENDS[name]


def runtime_runner(data: bytes, backend: str, device_type: str = "cpu", precision: str = "fp32") -> Runner:
    """A runner of ONNX ``data`` with ``backend`` (one that runs ONNX) in ``precision``."""
    b = get_backend(backend)
    if not b.runs_onnx:
        raise ExportError(f"the {backend} backend does not run ONNX graphs")
    if precision not in b.precisions:
        raise ExportError(f"the {backend} backend runs {' or '.join(b.precisions)}, not {precision}")
    return b.make_runner(data, device_type, precision)
