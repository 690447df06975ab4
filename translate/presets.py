"""Named recipes: each returns partial configuration sections to apply on top of the defaults.

A preset is chosen with ``--preset NAME``; explicit options and ``--set`` still override it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from .config import ConfigError

Preset = Dict[str, Dict[str, Any]]


def pix2pix_paper() -> Preset:
    """pix2pix as published: U-Net 256, 70x70 PatchGAN, batch 1, 286 -> 256 crops, 100 + 100 epochs."""
    return {"data": {"load_size": 286, "crop_size": 256}, "model": {}, "loop": {"batch_size": 1}}


def cyclegan_paper() -> Preset:
    """CycleGAN as published: ResNet 9 blocks, LSGAN, history pool 50, 286 -> 256 crops."""
    return {"data": {"load_size": 286, "crop_size": 256}, "model": {}, "loop": {"batch_size": 1}}


def tiny() -> Preset:
    """Small nets and images for tests and smoke runs: seconds per epoch on a laptop CPU."""
    return {
        "data": {"load_size": 36, "crop_size": 32, "num_workers": 0},
        "model": {"ngf": 8, "ndf": 8, "n_layers_D": 2},
        "loop": {"log_every": 1, "epochs": 1, "epochs_decay": 1},
        # generator choice depends on the method, see method_overrides below
    }


# Per-method adjustments that a preset needs (e.g. a generator that fits a 32x32 crop).
_TINY_MODEL = {"pix2pix": {"netG": "unet", "num_downs": 5}, "cyclegan": {"netG": "resnet_6blocks"}}

PRESETS: Dict[str, Callable[[], Preset]] = {
    "pix2pix_paper": pix2pix_paper,
    "cyclegan_paper": cyclegan_paper,
    "tiny": tiny,
}


def list_presets():
    return sorted(PRESETS)


def get_preset(name: str, method: str) -> Preset:
    """Return the named preset's sections for ``method``; ConfigError lists the valid names."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(list_presets())}")
    preset = PRESETS[name]()
    if name == "tiny":
        preset["model"].update(_TINY_MODEL[method])
    return preset
