"""Named recipes: each returns partial configuration sections to apply on top of the defaults.

A preset is chosen with ``--preset NAME``; explicit options and ``--set`` still override it.
``tiny`` suits every method (with the method's own ``tiny`` overrides); a method declares the
presets made for it alone in its ``presets`` (e.g. ``pix2pix_paper``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List

from .methods import get_method, list_methods
from .options import ConfigError

Preset = Dict[str, Dict[str, Any]]


def tiny() -> Preset:
    """Small nets and images for tests and smoke runs: seconds per epoch on a laptop CPU."""
    return {
        "data": {"load_size": 36, "crop_size": 32, "num_workers": 0},
        "model": {"ngf": 8, "ndf": 8, "n_layers_D": 2},
        "loop": {"log_every": 1, "epochs": 1, "epochs_decay": 1},
        # the generator that fits a 32x32 crop is the method's: its ``tiny`` overrides
    }


PRESETS: Dict[str, Callable[[], Preset]] = {"tiny": tiny}  # presets for every method


def method_presets() -> Dict[str, str]:
    """Presets made for one method (declared by the method, e.g. its paper's settings): name -> method."""
    return {name: method for method in list_methods() for name in get_method(method).presets}


def list_presets() -> List[str]:
    return sorted([*PRESETS, *method_presets()])


def get_preset(name: str, method: str) -> Preset:
    """Return the named preset's sections for ``method``; ConfigError lists the valid names."""
    owner = method_presets().get(name)
    if name not in PRESETS and owner is None:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(list_presets())}")
    if owner is not None and owner != method:
        raise ConfigError(f"preset {name} is for `translate train {owner}`, not {method}")
    preset = PRESETS[name]() if owner is None else get_method(method).presets[name]()
    if name == "tiny":
        cls = get_method(method)
        known = {f.name for f in dataclasses.fields(cls.config_class)}  # e.g. no ndf without a discriminator
        preset["model"] = {k: v for k, v in preset["model"].items() if k in known}
        preset["model"].update(cls.tiny)
    return preset
