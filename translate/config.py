"""Typed configuration: one dataclass per concern, strict conversion to and from dicts.

The resolved configuration of a run is saved in ``run.json`` and is the single source of truth
on ``--resume``. Unknown keys are errors that list the valid ones, so a typo never silently
trains a different model.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and what is valid."""


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared for training."""

    root: str = ""
    split: str = "train"
    layout: str = "auto"  # auto | ab | a_b | unpaired
    direction: str = "AtoB"  # AtoB | BtoA: which side is the model input
    input_nc: int = 3
    output_nc: int = 3
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    skip_bad_images: bool = False
    num_workers: int = -1  # -1: chosen from the number of CPU cores
    max_items: Optional[int] = None  # use only the first N files (quick experiments)


@dataclass
class Pix2PixConfig:
    """pix2pix networks and losses (defaults follow Isola et al. 2017)."""

    netG: str = "unet_256"  # unet_128 | unet_256 | unet (num_downs below) | resnet_6blocks | resnet_9blocks
    num_downs: int = 8  # used by netG "unet" only
    n_blocks: int = 9  # used by netG "resnet" only
    netD: str = "basic"  # basic | n_layers | pixel
    n_layers_D: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "batch"
    use_dropout: bool = True
    init_type: str = "normal"
    init_gain: float = 0.02
    gan_mode: str = "vanilla"  # vanilla | lsgan | hinge | wgan-gp
    lambda_l1: float = 100.0
    lambda_gp: float = 10.0


@dataclass
class CycleGANConfig:
    """CycleGAN networks and losses (defaults follow Zhu et al. 2017)."""

    netG: str = "resnet_9blocks"
    n_blocks: int = 9  # used by netG "resnet" only
    num_downs: int = 8  # used by netG "unet" only
    netD: str = "basic"
    n_layers_D: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "instance"
    use_dropout: bool = False
    init_type: str = "normal"
    init_gain: float = 0.02
    gan_mode: str = "lsgan"
    lambda_a: float = 10.0  # cycle loss a -> b -> a
    lambda_b: float = 10.0  # cycle loss b -> a -> b
    lambda_identity: float = 0.5  # relative to lambda_a / lambda_b
    pool_size: int = 50
    lambda_gp: float = 10.0


@dataclass
class LoopConfig:
    """The training loop: schedule, precision, devices, cadence of logs and checkpoints."""

    batch_size: int = 1
    epochs: int = 100  # epochs at the initial learning rate
    epochs_decay: int = 100  # epochs of linear decay to zero
    max_steps: Optional[int] = None  # stop after this many optimisation steps in total
    max_minutes: Optional[float] = None  # stop (and save) after this much training time in this process
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.0  # exported generators are an exponential moving average of the weights (0: off)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16
    log_every: int = 50  # steps between log.jsonl lines / progress-bar loss updates
    save_every: int = 1000  # steps between checkpoints (also saved at each epoch end)
    sample_count: int = 4  # images in the fixed sample grid
    sync_bn: bool = False  # synchronise batch-norm statistics across processes (torchrun, CUDA)
    tensorboard: bool = False  # also log scalars and sample grids to <run>/tensorboard
    eval_every: int = 0  # steps between evaluations on a held-out split (0: never)
    eval_split: str = "auto"  # split to evaluate on; auto: val if the dataset has one, else test
    eval_metric: str = "auto"  # l1 | psnr | ssim | fid | kid; auto: l1 (pix2pix) or fid (CycleGAN)
    eval_max_images: Optional[int] = 50  # images per evaluation (keeps it cheap)


MODEL_CONFIGS = {"pix2pix": Pix2PixConfig, "cyclegan": CycleGANConfig}
METHODS = tuple(MODEL_CONFIGS)

CHOICES = {
    "data.layout": ("auto", "ab", "a_b", "unpaired"),
    "data.direction": ("AtoB", "BtoA"),
    "data.preprocess": ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"),
    "model.gan_mode": ("vanilla", "lsgan", "hinge", "wgan-gp"),
    "model.norm": ("batch", "instance", "none"),
    "model.init_type": ("normal", "xavier", "kaiming", "orthogonal"),
    "loop.precision": ("fp32", "bf16", "fp16"),
    "loop.eval_metric": ("auto", "l1", "psnr", "ssim", "fid", "kid"),
}


@dataclass
class RunConfig:
    """Everything that defines a training run."""

    method: str = "pix2pix"
    name: str = "run"
    checkpoints_dir: str = "checkpoints"
    data: DataConfig = field(default_factory=DataConfig)
    model: Union[Pix2PixConfig, CycleGANConfig] = field(default_factory=Pix2PixConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"expected a mapping for the run configuration, got {type(d).__name__}")
        _check_keys(d, [f.name for f in dataclasses.fields(cls)], "run configuration")
        method = d.get("method", "pix2pix")
        if method not in MODEL_CONFIGS:
            raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        cfg = cls(
            method=method,
            name=d.get("name", "run"),
            checkpoints_dir=d.get("checkpoints_dir", "checkpoints"),
            data=_from_dict(DataConfig, d.get("data", {}), "data"),
            model=_from_dict(MODEL_CONFIGS[method], d.get("model", {}), "model"),
            loop=_from_dict(LoopConfig, d.get("loop", {}), "loop"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check values that a dataclass type cannot express; raise ConfigError with the fix."""
        for key, valid in CHOICES.items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if value not in valid:
                raise ConfigError(f"{key} = {value!r} is not valid; choose one of: {', '.join(valid)}")
        d, lp = self.data, self.loop
        for nc_name in ("input_nc", "output_nc"):
            if getattr(d, nc_name) not in (1, 3):
                raise ConfigError(f"data.{nc_name} must be 1 or 3, got {getattr(d, nc_name)}")
        if d.preprocess in ("resize_and_crop", "scale_width_and_crop") and d.load_size < d.crop_size:
            raise ConfigError(f"load_size ({d.load_size}) must be >= crop_size ({d.crop_size})")
        if d.load_size <= 0 or d.crop_size <= 0:
            raise ConfigError("load_size and crop_size must be positive")
        if lp.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {lp.batch_size}")
        if lp.epochs < 0 or lp.epochs_decay < 0 or lp.epochs + lp.epochs_decay < 1:
            raise ConfigError("epochs and epochs_decay must be >= 0 with at least one epoch in total")
        if lp.max_steps is not None and lp.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {lp.max_steps}")
        if lp.max_minutes is not None and lp.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive, got {lp.max_minutes}")
        if lp.lr <= 0:
            raise ConfigError(f"lr must be positive, got {lp.lr}")
        if not 0.0 <= lp.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be 0 (off) or in (0, 1), e.g. 0.999; got {lp.ema_decay}")
        if lp.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {lp.eval_every}")
        if lp.log_every < 1 or lp.save_every < 1:
            raise ConfigError("log_every and save_every must be >= 1")
        if self.method == "cyclegan" and self.model.lambda_identity > 0 and d.input_nc != d.output_nc:
            raise ConfigError(
                "the CycleGAN identity loss needs input_nc == output_nc "
                f"(got {d.input_nc} and {d.output_nc}); set model.lambda_identity=0"
            )
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"run name {self.name!r} must be a plain folder name")


def _check_keys(d: Dict[str, Any], valid, where: str) -> None:
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid keys: {', '.join(valid)}")


def _from_dict(cls, d: Dict[str, Any], where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(d, fields, where)
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in d.items()})


def _coerce(value: Any, hint, where: str):
    """Check a JSON value against a field type (int accepted for float; None for Optional)."""
    origin = typing.get_origin(hint)
    if origin is Union:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - all fields are plain scalars
        return value
    raise ConfigError(f"{where} expects {hint.__name__}, got {value!r}")


def parse_value(text: str, hint) -> Any:
    """Parse a command-line string into a field's type (``--set key=value``)."""
    origin = typing.get_origin(hint)
    if origin is Union:
        if text.lower() in ("none", "null"):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected true/false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(f"expected {hint.__name__}, got {text!r}") from None
    return text


def apply_overrides(cfg: RunConfig, overrides) -> RunConfig:
    """Apply ``section.key=value`` strings (``--set``) to a config, strictly."""
    d = cfg.to_dict()
    model_cls = MODEL_CONFIGS[cfg.method]
    sections = {"data": DataConfig, "model": model_cls, "loop": LoopConfig}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        key, text = item.split("=", 1)
        if "." not in key:
            raise ConfigError(f"--set key {key!r} needs a section; valid sections: {', '.join(sections)}")
        section, name = key.split(".", 1)
        if section not in sections:
            raise ConfigError(f"unknown section {section!r} in --set {item!r}; valid: {', '.join(sections)}")
        hints = typing.get_type_hints(sections[section])
        if name not in hints:
            raise ConfigError(f"unknown key {key!r}; valid keys in {section}: {', '.join(hints)}")
        d[section][name] = parse_value(text, hints[name])
    return RunConfig.from_dict(d)

