"""Named recipes: each returns partial configuration sections to apply on top of the defaults.

A preset is chosen with ``--preset NAME``; explicit options and ``--set`` still override it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict

from .methods import get_method
from .options import ConfigError

Preset = Dict[str, Dict[str, Any]]


def pix2pix_paper() -> Preset:
    """pix2pix as published (Isola et al. 2017): U-Net 256 with dropout, 70x70 PatchGAN, batch
    norm, vanilla GAN loss + 100 x L1, 286 -> 256 random crops with flips, batch 1, 100 epochs at
    Adam 2e-4 (0.5, 0.999) then 100 of linear decay."""
    return {
        "data": {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 256, "flip": True},
        "model": {"netG": "unet_256", "netD": "basic", "ngf": 64, "ndf": 64, "norm": "batch",
                  "use_dropout": True, "init_type": "normal", "init_gain": 0.02, "gan_mode": "vanilla",
                  "lambda_l1": 100.0},
        "loop": {"batch_size": 1, "epochs": 100, "epochs_decay": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
    }


def cyclegan_paper() -> Preset:
    """CycleGAN as published (Zhu et al. 2017): ResNet 9 blocks, 70x70 PatchGANs, instance norm,
    LSGAN loss, cycle weight 10 each way, identity 0.5, history pool of 50, 286 -> 256 random
    crops with flips, batch 1, 100 epochs at Adam 2e-4 (0.5, 0.999) then 100 of linear decay."""
    return {
        "data": {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 256, "flip": True},
        "model": {"netG": "resnet_9blocks", "netD": "basic", "ngf": 64, "ndf": 64, "norm": "instance",
                  "use_dropout": False, "init_type": "normal", "init_gain": 0.02, "gan_mode": "lsgan",
                  "lambda_a": 10.0, "lambda_b": 10.0, "lambda_identity": 0.5, "pool_size": 50},
        "loop": {"batch_size": 1, "epochs": 100, "epochs_decay": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
    }


def tiny() -> Preset:
    """Small nets and images for tests and smoke runs: seconds per epoch on a laptop CPU."""
    return {
        "data": {"load_size": 36, "crop_size": 32, "num_workers": 0},
        "model": {"ngf": 8, "ndf": 8, "n_layers_D": 2},
        "loop": {"log_every": 1, "epochs": 1, "epochs_decay": 1},
        # the generator that fits a 32x32 crop is the method's: its ``tiny`` overrides
    }


PRESETS: Dict[str, Callable[[], Preset]] = {
    "pix2pix_paper": pix2pix_paper,
    "cyclegan_paper": cyclegan_paper,
    "tiny": tiny,
}


def list_presets():
    return sorted(PRESETS)


# Presets made for one method only: name -> method.
_METHOD_OF = {"pix2pix_paper": "pix2pix", "cyclegan_paper": "cyclegan"}


def get_preset(name: str, method: str) -> Preset:
    """Return the named preset's sections for ``method``; ConfigError lists the valid names."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(list_presets())}")
    if _METHOD_OF.get(name, method) != method:
        raise ConfigError(f"preset {name} is for `translate train {_METHOD_OF[name]}`, not {method}")
    preset = PRESETS[name]()
    if name == "tiny":
        cls = get_method(method)
        known = {f.name for f in dataclasses.fields(cls.config_class)}  # e.g. no ndf without a discriminator
        preset["model"] = {k: v for k, v in preset["model"].items() if k in known}
        preset["model"].update(cls.tiny)
    return preset
