"""Building blocks shared by the architectures in :mod:`translate.models`."""

from .checkpointing import run_block, set_grad_checkpoint

from .layers import (
    check_bool,
    check_int,
    get_norm_layer,
    init_weights,
    list_inits,
    list_norms,
)

__all__ = [
    "check_bool",
    "check_int",
    "get_norm_layer",
    "init_weights",
    "list_inits",
    "list_norms",
    "run_block",
    "set_grad_checkpoint",
]
