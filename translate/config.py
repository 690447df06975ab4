"""Typed configuration: one dataclass per concern, strict conversion to and from dicts.

The resolved configuration of a run is saved in ``run.json`` and is the single source of truth
on ``--resume``. Unknown keys are errors that list the valid ones, so a typo never silently
trains a different model.

Each field is declared with :func:`translate.options.option`: its help text, valid choices,
smallest value and command-line flag live next to it, once. ``translate train METHOD`` builds its
options from this metadata and :meth:`RunConfig.validate` checks the same choices. The data and
loop sections are declared here; the model section is the method's own (its ``config_class``,
found through :func:`translate.methods.get_method`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from .methods import get_method
from .options import DIRECTIONS, ConfigError, option, option_flag, swap_domains
from .runtime import AUTO, PRECISION_CHOICES

__all__ = ["DIRECTIONS", "ConfigError", "DataConfig", "LoopConfig", "RunConfig", "apply_overrides",
           "default_config", "option", "option_flag", "parse_value", "section_classes", "swap_domains"]


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared for training."""

    root: str = option("", flag="data", required=True, help="dataset folder (see `translate check-data`)")
    split: str = option("train", help="dataset split folder to train on (train, val, test...)")
    layout: str = option("auto", choices=("auto", "ab", "a_b", "unpaired"),
                         help="dataset layout: auto, ab (A|B side by side), a_b (A/ and B/ folders), unpaired")
    direction: str = option("AtoB", choices=("AtoB", "BtoA"),
                            help="AtoB or BtoA: which domain of the data is the model input; a BtoA run "
                                 "trains the b2a generator")
    input_nc: int = option(3, choices=(1, 3), help="channels of the input images: 1 (gray) or 3 (RGB)")
    output_nc: int = option(3, choices=(1, 3), help="channels of the output images: 1 or 3")
    preprocess: str = option("resize_and_crop",
                             choices=("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"),
                             help="resize_and_crop | crop | scale_width | scale_width_and_crop | none")
    load_size: int = option(286, minimum=1, help="resize images to this size first")
    crop_size: int = option(256, minimum=1, help="then crop random patches of this size")
    flip: bool = option(True, help="flip training images horizontally at random (--no-flip: never)")
    skip_bad_images: bool = option(False, help="train without unreadable images (each is named in a warning) "
                                               "instead of stopping")
    num_workers: int = option(-1, help="data loader processes (-1: chosen from the number of CPU cores)")
    max_items: Optional[int] = option(None, minimum=1, help="train on the first N images only (quick experiments)")
    label_nc: int = option(0, minimum=0, help="inputs are single-channel class-ID label maps with IDs 0..N-1, "
                                              "one-hot encoded to N channels (0: inputs are ordinary images)")
    instance_dir: str = option("", help="with --label-nc: folder of instance-ID maps matched to the label maps by "
                                        "name, adding an instance-boundary channel (default: SPLIT/inst/ if present)")

    @property
    def generator_direction(self) -> str:
        """The direction the model learns, in dataset domains: "a2b" for AtoB, "b2a" for BtoA."""
        return "b2a" if self.direction == "BtoA" else "a2b"


@dataclass
class LoopConfig:
    """The training loop: schedule, precision, devices, cadence of logs and checkpoints."""

    batch_size: int = option(1, help="images per step (per process under torchrun)")
    epochs: int = option(100, help="epochs at the initial learning rate")
    epochs_decay: int = option(100, help="epochs of linear learning-rate decay to zero")
    max_steps: Optional[int] = option(None, help="stop after this many steps in total (a checkpoint is saved)")
    max_minutes: Optional[float] = option(None, help="stop after this many minutes of training in this process "
                                                     "(a checkpoint is saved)")
    lr: float = option(2e-4, help="Adam learning rate")
    beta1: float = option(0.5, help="Adam beta1")
    beta2: float = option(0.999, help="Adam beta2")
    ema_decay: float = option(0.999, help="the translator exports an exponential moving average of the generator "
                                          "weights with this decay (docs/quality.md: FID -40 on facades at 2000 "
                                          "steps); 0: the weights of the last step")
    seed: int = option(0, help="random seed (data order, augmentation, init)")
    device: str = option("auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    precision: str = option(AUTO, choices=PRECISION_CHOICES,
                            help="auto (bf16 where the device runs it natively: CUDA with bf16, CPUs with AMX or "
                                 "AVX-512 BF16; fp32 elsewhere), fp32, bf16 or fp16 (autocast with fp32 weights; "
                                 "fp16 with gradient scaling, CUDA only)")
    log_every: int = option(50, help="steps between log.jsonl lines and progress-bar loss updates")
    save_every: int = option(1000, help="steps between checkpoints (one is also saved every epoch)")
    sample_count: int = option(4, minimum=1, help="images in the fixed sample grid")
    sync_bn: bool = option(False, help="synchronise batch-norm statistics across torchrun processes (CUDA only)")
    compile: bool = option(False, help="train the networks through torch.compile (single process; the first steps "
                                       "compile, which takes minutes on a CPU; checkpoints are unchanged); "
                                       "docs/performance.md has measured speeds")
    tensorboard: bool = option(False, help="also log losses and sample grids for TensorBoard in RUN/tensorboard "
                                           "(needs tensorboard)")
    eval_every: int = option(0, help="steps between evaluations on a held-out split; the best checkpoint is kept "
                                     "in translator_best/ (0: never)")
    eval_split: str = option("auto", help="split for --eval-every (auto: val if present, else test)")
    eval_metric: str = option("auto", choices=("auto", "l1", "psnr", "ssim", "fid", "kid"),
                              help="metric that picks translator_best/: l1, psnr, ssim, fid, kid "
                                   "(auto: l1 for methods trained on paired data, fid for unpaired ones)")
    eval_max_images: Optional[int] = option(50, minimum=1, help="images per evaluation")
    nonfinite_patience: int = option(10, minimum=1, help="a step whose losses are not finite is skipped (no update); "
                                                         "after this many in a row the run restores its last "
                                                         "checkpoint and stops (docs/health.md)")
    health_every: int = option(50, minimum=0, help="steps between checks of the sample batch for signs of a failing "
                                                   "run: no translation, collapse, a flat generator "
                                                   "(docs/health.md); 0: no diagnostics")
    grad_checkpoint: bool = option(False, help="recompute the generator blocks in the backward pass "
                                               "(torch.utils.checkpoint): less activation memory, more compute; "
                                               "results and checkpoints are unchanged")


def model_class(method: str) -> type:
    """The model-section dataclass of ``method`` (declared by the method, see :mod:`translate.methods`)."""
    try:
        return get_method(method).config_class
    except ValueError as e:
        raise ConfigError(str(e)) from None


def section_classes(method: str) -> Dict[str, type]:
    """The configuration sections of a run of ``method``: name -> dataclass."""
    return {"data": DataConfig, "model": model_class(method), "loop": LoopConfig}


def default_config(method: str, **sections) -> "RunConfig":
    """A run configuration of ``method`` with every value at its default (``sections`` replace whole sections)."""
    return RunConfig(method=method, model=model_class(method)(), **sections)


@dataclass
class RunConfig:
    """Everything that defines a training run."""

    method: str = "pix2pix"
    name: str = option("run", required=True, help="run name: outputs go to CHECKPOINTS_DIR/NAME")
    checkpoints_dir: str = option("checkpoints", help="root folder of runs")
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None  # the method's model section (its ``config_class``); None: its defaults
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = model_class(self.method)()

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"expected a mapping for the run configuration, got {type(d).__name__}")
        _check_keys(d, [f.name for f in dataclasses.fields(cls)], "run configuration")
        method = d.get("method", "pix2pix")
        cfg = cls(
            method=method,
            name=d.get("name", "run"),
            checkpoints_dir=d.get("checkpoints_dir", "checkpoints"),
            **{name: _from_dict(section, d.get(name, {}), name)
               for name, section in section_classes(method).items()},
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check values that a dataclass type cannot express; raise ConfigError with the fix."""
        for section in ("data", "model", "loop"):
            values = getattr(self, section)
            for f in dataclasses.fields(values):
                value, valid, low = getattr(values, f.name), f.metadata.get("choices"), f.metadata.get("minimum")
                if valid is not None and value not in valid:
                    raise ConfigError(f"{section}.{f.name} = {value!r} is not valid; "
                                      f"choose one of: {', '.join(map(str, valid))}")
                if low is not None and value is not None and value < low:
                    raise ConfigError(f"{section}.{f.name} must be >= {low}, got {value!r}")
        d, lp = self.data, self.loop
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
        self.model.check(d)  # the method's own checks (translate.options.ModelConfig.check)
        if getattr(self.model, "netD", None) == "multiscale" and self.model.gan_mode == "wgan-gp":
            raise ConfigError("--netD multiscale does not support --gan-mode wgan-gp; use vanilla, lsgan or hinge")
        if d.label_nc == 0 and d.instance_dir:
            raise ConfigError("--instance-dir needs --label-nc (instance maps go with class-ID label maps)")
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
    sections = section_classes(cfg.method)
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

