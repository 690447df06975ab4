"""Inference runtimes: the backends a translator's generators can run in, as a registry.

``torch`` (the default) runs the PyTorch generators; ``onnxruntime`` and ``openvino`` run each
generator's ONNX graph, exported in memory and checked against PyTorch first
(:func:`translate.runtimes.generator.use_backend`, what ``Translator.load(backend=...)`` calls);
:mod:`translate.runtimes.int8` makes int8 onnxruntime models. The command line (``convert
--backend``), the server and the benchmark take the names from :func:`list_backends`.

Importing this package does not import torch or any runtime.
"""

from __future__ import annotations

from .backends import BACKENDS, Backend, get_backend, list_backends, runtime_runner
from .onnx import TOLERANCE, ExportError

__all__ = ["BACKENDS", "Backend", "ExportError", "TOLERANCE", "get_backend", "list_backends", "runtime_runner"]
