"""Training methods: each owns its networks and its train step, behind one interface, and
describes itself to the rest of the package (see :mod:`translate.methods.registry`).

Adding a method is one file in this package, registered with ``@register_method`` on its class,
and its import below (a method defined elsewhere registers itself when its module is imported).
"""

from __future__ import annotations

from . import cut, cyclegan, distill, pix2pix, pix2pixhd  # noqa: F401  (built-in methods register themselves)
from .registry import (DATA_KINDS, METHODS, STEP_COUNTS, BenchSpec, Method, MethodInfo, build_method, get_method,
                       list_methods, register_method)

__all__ = ["DATA_KINDS", "METHODS", "STEP_COUNTS", "BenchSpec", "Method", "MethodInfo", "build_method",
           "get_method", "list_methods", "register_method"]
