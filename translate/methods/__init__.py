"""Training methods: each owns its networks and its train step."""

from .cyclegan import CycleGAN
from .pix2pix import Pix2Pix

METHODS = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN}


def build_method(name: str, *args, **kwargs):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name](*args, **kwargs)


def list_methods():
    return sorted(METHODS)
