"""Small building blocks shared by every architecture: norm factory, weight init, arg checks.

Norms are chosen by a string so that a model's constructor arguments stay plain,
JSON-serialisable values (they are the config saved next to the weights).
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]


def _no_norm(num_features: int) -> nn.Module:
    """Stand-in for a norm layer that does nothing (keeps the layer lists uniform)."""
    return nn.Identity()


# Batch norm keeps running statistics and a learned affine transform (pix2pix).
# Instance norm has neither: CycleGAN normalises each image on its own, at train
# and test time alike, so there is nothing to track.
_NORMS: dict[str, NormFactory] = {
    "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "none": _no_norm,
}


def list_norms() -> list[str]:
    """Names accepted by :func:`get_norm_layer`."""
    return list(_NORMS)


def get_norm_layer(norm: str) -> NormFactory:
    """Return a factory that builds a 2-D norm layer for a given channel count.

    Args:
        norm: "batch" (BatchNorm2d, affine, running stats), "instance"
            (InstanceNorm2d, no affine, no running stats) or "none" (identity).

    Returns:
        A callable ``factory(num_features) -> nn.Module``.

    Raises:
        ValueError: if ``norm`` is not one of :func:`list_norms`.
    """
    if norm not in _NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(_NORMS)}")
    return _NORMS[norm]


def _init_normal(weight: torch.Tensor, gain: float) -> None:
    nn.init.normal_(weight, mean=0.0, std=gain)


def _init_xavier(weight: torch.Tensor, gain: float) -> None:
    nn.init.xavier_normal_(weight, gain=gain)


def _init_kaiming(weight: torch.Tensor, gain: float) -> None:
    # gain is not used: the scale comes from the fan-in and the ReLU gain sqrt(2).
    nn.init.kaiming_normal_(weight, a=0, mode="fan_in")


def _init_orthogonal(weight: torch.Tensor, gain: float) -> None:
    nn.init.orthogonal_(weight, gain=gain)


_INITS: dict[str, Callable[[torch.Tensor, float], None]] = {
    "normal": _init_normal,
    "xavier": _init_xavier,
    "kaiming": _init_kaiming,
    "orthogonal": _init_orthogonal,
}

# Layers whose weight is a filter bank / matrix and gets the chosen init.
_WEIGHT_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def list_inits() -> list[str]:
    """Names accepted by :func:`init_weights`."""
    return list(_INITS)


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise a network in place, the way the pix2pix/CycleGAN papers do.

    Conv / ConvTranspose / Linear weights get ``init_type``; their biases become 0.
    BatchNorm2d weights are drawn from N(1, gain) and their biases become 0, so each
    norm starts close to the identity but not exactly equal across channels.

    Args:
        net: the module to initialise (changed in place).
        init_type: "normal" (N(0, gain)), "xavier" (xavier_normal_ with ``gain``),
            "kaiming" (kaiming_normal_, a=0, fan_in; ``gain`` unused) or
            "orthogonal" (orthogonal_ with ``gain``).
        gain: standard deviation for "normal", scale for "xavier"/"orthogonal".

    Returns:
        ``net``, for chaining.

    Raises:
        ValueError: if ``init_type`` is not one of :func:`list_inits`.
    """
    if init_type not in _INITS:
        raise ValueError(f"unknown init_type {init_type!r}; valid: {', '.join(_INITS)}")
    init_fn = _INITS[init_type]
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, _WEIGHT_LAYERS):
                init_fn(module.weight, gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                if module.weight is not None:
                    nn.init.normal_(module.weight, mean=1.0, std=gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return net


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Validate an integer constructor argument and return it as a plain ``int``.

    Models store their arguments as a JSON config, so numpy integers are turned into
    ``int`` here; bools, floats and strings are refused rather than guessed at.

    Raises:
        ValueError: if ``value`` is not an integer or is below ``minimum``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {number}")
    return number


def check_bool(name: str, value: object) -> bool:
    """Validate a boolean constructor argument (0/1 and strings are refused).

    Raises:
        ValueError: if ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
