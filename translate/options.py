"""Configuration fields that describe their command-line option, and the pieces every method's
model section shares.

A field is declared with :func:`option`: its help text, valid choices, smallest value and
command-line flag live next to it, once. ``translate train METHOD`` builds its options from this
metadata and :meth:`translate.config.RunConfig.validate` checks the same choices. A method's model
section (declared in the method's own module) is a dataclass of such fields deriving from
:class:`ModelConfig`; the shared fields below (``net_g``, ``ngf``...) keep one declaration each,
with the default per method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Optional

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid; the message says which and what is valid."""


def option(default: Any = dataclasses.MISSING, *, help: str, choices=None, flag: Optional[str] = None,
           minimum: Optional[float] = None, required: bool = False):
    """A configuration field that also describes its command-line option.

    The command line (``translate train METHOD``) gets one option per field from this metadata:
    the type comes from the annotation, the flag is the field name in kebab case unless ``flag``
    names it (booleans become ``--flag/--no-flag``), ``choices`` and ``minimum`` are checked by
    :meth:`translate.config.RunConfig.validate` as well as by the parser.

    Args:
        default: the default value.
        help: one line for ``--help``.
        choices: the valid values, if they are a fixed set.
        flag: the option name without the leading dashes (default: the field name, ``_`` -> ``-``).
        minimum: the smallest valid value of a number.
        required: the option must be given on the command line.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag,
            "minimum": minimum, "required": required}
    return field(default=default, metadata=meta)


def option_flag(f: dataclasses.Field) -> str:
    """The command-line flag of a configuration field, without the leading dashes."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


DIRECTIONS = ("a2b", "b2a")  # generator directions, named by dataset domains


def swap_domains(name: str) -> str:
    """Swap the domains a name refers to: ``gen_a2b`` -> ``gen_b2a``, ``disc_a`` -> ``disc_b``,
    ``cycle_b`` -> ``cycle_a``, ``a2b`` -> ``b2a``; other names are returned unchanged."""
    head, _, tail = name.rpartition("_")
    swapped = {"a": "b", "b": "a", "a2b": "b2a", "b2a": "a2b"}.get(tail)
    if swapped is None:
        return name
    return f"{head}_{swapped}" if head else swapped


class ModelConfig:
    """Base of a method's model section (a dataclass of :func:`option` fields).

    A section adds the checks a dataclass type cannot express by overriding :meth:`check`, and the
    smallest training crop its discriminator can judge by overriding :meth:`min_crop`.
    """

    def check(self, data: Any) -> None:
        """Raise ConfigError when this section does not suit ``data`` (the run's DataConfig)."""

    def min_crop(self) -> int:
        """The smallest training crop the networks can take (0: no limit beyond the size multiple)."""
        return 0


def multiscale_min_crop(n_layers_d: int, num_d: int) -> int:
    """The smallest crop a multi-scale discriminator can judge: its coarsest scale must keep at
    least 2x2 values before the last norm layer."""
    return 3 * 2**n_layers_d * 2 ** (num_d - 1)


# Options shared by several methods' model sections: one declaration each, the default per method.
GENERATORS = ("unet_128", "unet_256", "unet", "resnet_6blocks", "resnet_9blocks", "resnet")
GENERATORS += ("pix2pixhd",)  # the pix2pixHD global generator (depth --n-blocks)
GENERATORS += ("slim_unet", "mobile_resnet_9blocks", "mobile_resnet")  # efficient students (translate distill)
DISCRIMINATORS = ("basic", "n_layers", "patchgan", "pixel")
DISCRIMINATORS += ("multiscale",)  # --num-D PatchGANs at scales 1, 1/2, 1/4 (pix2pixHD)
GAN_MODES = ("vanilla", "lsgan", "hinge", "wgan-gp")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def net_g(default: str):
    return option(default, choices=GENERATORS, flag="netG",
                  help="generator: unet_128, unet_256, unet (depth --num-downs), resnet_6blocks, resnet_9blocks, "
                       "resnet (depth --n-blocks), pix2pixhd (global generator, --n-blocks residual blocks)")


def num_downs():
    return option(8, minimum=5, help="U-Net downsamplings, used by --netG unet only")


def n_blocks():
    return option(9, minimum=1, help="ResNet blocks, used by --netG resnet only")


def net_d():
    return option("basic", choices=DISCRIMINATORS, flag="netD",
                  help="discriminator: basic (70x70 PatchGAN), n_layers (depth --n-layers-D), patchgan, pixel (1x1 PatchGAN), "
                       "multiscale (--num-D PatchGANs at scales 1, 1/2, 1/4...)")


def num_d():
    return option(3, minimum=1, flag="num-D", help="discriminators of --netD multiscale (scales 1, 1/2, 1/4...)")


def lambda_feat():
    return option(10.0, help="weight of the discriminator feature-matching loss (--netD multiscale)")


def n_layers_d():
    return option(3, minimum=1, flag="n-layers-D", help="discriminator depth when --netD n_layers")


def ngf():
    return option(64, minimum=1, help="generator width (filters in the first layer)")


def ndf():
    return option(64, minimum=1, help="discriminator width (filters in the first layer)")


def norm(default: str):
    return option(default, choices=("batch", "instance", "none"), help="normalisation layers: batch, instance, none")


def dropout(default: bool):
    return option(default, flag="dropout", help="dropout in the generator (--no-dropout: none)")


def init_type(default: str = "normal"):
    return option(default, choices=INIT_TYPES, help="weight initialisation: normal, xavier, kaiming, orthogonal")


def init_gain():
    return option(0.02, help="scale of the initial weights")


def gan_mode(default: str):
    return option(default, choices=GAN_MODES, help="adversarial loss: vanilla, lsgan, hinge, wgan-gp")


def lambda_gp():
    return option(10.0, help="gradient-penalty weight (--gan-mode wgan-gp)")
