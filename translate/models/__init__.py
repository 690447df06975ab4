"""Generators and discriminators, built by name from plain-dict registries.

Every model stores its constructor arguments in ``net.config`` (JSON-serialisable) and
names its class in ``net.arch``, so ``build_generator(net.arch, **net.config)`` rebuilds
the same architecture; that pair is what a checkpoint records.

The registries map a name to ``(class, fixed arguments)``. Named variants such as
"unet_256" fix a structural argument; the generic names ("unet", "resnet", "n_layers",
"patchgan") take it from the keyword arguments.

``build_*`` only constructs: weights keep PyTorch's default init, so rebuilding a net to
load a checkpoint into it is cheap. Call :func:`translate.nn.init_weights` to train.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .multiscale import MultiscaleDiscriminator
from .patchgan import NLayerDiscriminator, PixelDiscriminator
from .pix2pixhd import GlobalGenerator, Pix2PixHDGenerator
from .mobile_resnet import MobileResnetGenerator
from .resnet import ResnetBlock, ResnetGenerator
from .slim_unet import SlimUnetGenerator
from .unet import UnetGenerator

__all__ = [
    "GlobalGenerator",
    "MultiscaleDiscriminator",
    "Pix2PixHDGenerator",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "MobileResnetGenerator",
    "ResnetGenerator",
    "SlimUnetGenerator",
    "UnetGenerator",
    "build_discriminator",
    "build_generator",
    "generator_size_multiple",
    "list_discriminators",
    "list_generators",
]

_GENERATORS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "unet_128": (UnetGenerator, {"num_downs": 7}),
    "unet_256": (UnetGenerator, {"num_downs": 8}),
    "unet": (UnetGenerator, {}),
    "resnet_6blocks": (ResnetGenerator, {"n_blocks": 6}),
    "resnet_9blocks": (ResnetGenerator, {"n_blocks": 9}),
    "resnet": (ResnetGenerator, {}),
    "pix2pixhd": (Pix2PixHDGenerator, {}),
    # efficient students (translate distill)
    "slim_unet": (SlimUnetGenerator, {}),
    "mobile_resnet_9blocks": (MobileResnetGenerator, {"n_blocks": 9}),
    "mobile_resnet": (MobileResnetGenerator, {}),
}

_DISCRIMINATORS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "basic": (NLayerDiscriminator, {"n_layers": 3}),
    "n_layers": (NLayerDiscriminator, {}),
    "patchgan": (NLayerDiscriminator, {}),
    "pixel": (PixelDiscriminator, {}),
    "multiscale": (MultiscaleDiscriminator, {}),
}


def list_generators() -> list[str]:
    """Names accepted by :func:`build_generator`."""
    return list(_GENERATORS)


def list_discriminators() -> list[str]:
    """Names accepted by :func:`build_discriminator`."""
    return list(_DISCRIMINATORS)


def _build(kind: str, registry: dict, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Look ``name`` up in ``registry``, check ``kwargs`` against it, construct the net."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(registry)}")
    cls, fixed = registry[name]

    valid = list(inspect.signature(cls).parameters)
    extra = [key for key in kwargs if key not in valid]
    if extra:
        raise ValueError(
            f"{kind} {name!r} got unexpected argument(s) {', '.join(extra)}; "
            f"valid: {', '.join(valid)}"
        )
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(
                f"{kind} {name!r} fixes {key}={value!r} but got {key}={kwargs[key]!r}; "
                f"use {kind} {cls.arch!r} to choose {key} freely"
            )
    return cls(**{**kwargs, **fixed})


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Construct a generator by registry name (weights are not initialised).

    Args:
        name: one of :func:`list_generators`: "unet_128", "unet_256", "unet",
            "resnet_6blocks", "resnet_9blocks", "resnet".
        **kwargs: constructor arguments of the class behind ``name`` (e.g. ``ngf``,
            ``norm``, ``input_nc``). A named variant accepts its fixed argument only
            with the same value.

    Returns:
        The module; it maps (B, input_nc, H, W) in [-1, 1] to (B, output_nc, H, W) in
        [-1, 1] for H, W multiples of :func:`generator_size_multiple`.

    Raises:
        ValueError: unknown name, unexpected or conflicting arguments, invalid values.
    """
    return _build("generator", _GENERATORS, name, kwargs)


def build_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Construct a discriminator by registry name (weights are not initialised).

    Args:
        name: one of :func:`list_discriminators`: "basic" (70x70 PatchGAN),
            "n_layers" / "patchgan" (PatchGAN with ``n_layers`` from kwargs, default 3),
            "pixel" (1x1 PatchGAN).
        **kwargs: constructor arguments; ``input_nc`` is required.

    Returns:
        The module; it maps (B, input_nc, H, W) to (B, 1, h, w) logits.

    Raises:
        ValueError: unknown name, unexpected or conflicting arguments, invalid values.
    """
    return _build("discriminator", _DISCRIMINATORS, name, kwargs)


def generator_size_multiple(net: nn.Module) -> int:
    """The number that a generator's input height and width must be multiples of.

    Looks through ``torch.compile`` (``_orig_mod``) and DDP/DataParallel (``module``)
    wrappers.

    Raises:
        TypeError: if ``net`` is not one of this package's generators.
    """
    inner = net
    while not hasattr(inner, "size_multiple"):
        if hasattr(inner, "_orig_mod"):
            inner = inner._orig_mod
        elif isinstance(getattr(inner, "module", None), nn.Module):
            inner = inner.module
        else:
            raise TypeError(
                f"{type(net).__name__} has no size_multiple; expected a generator from "
                f"translate.models ({', '.join(list_generators())})"
            )
    return int(inner.size_multiple)
