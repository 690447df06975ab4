"""Typed configuration: one dataclass per concern, strict conversion to and from dicts.

The resolved configuration of a run is saved in ``run.json`` and is the single source of truth
on ``--resume``. Unknown keys are errors that list the valid ones, so a typo never silently
trains a different model.

Each field is declared with :func:`option`: its help text, valid choices, smallest value and
command-line flag live next to it, once. ``translate train METHOD`` builds its options from
this metadata and :meth:`RunConfig.validate` checks the same choices.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from .errors import UserError
from .runtime import AUTO, PRECISION_CHOICES


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid; the message says which and what is valid."""


def option(default: Any = dataclasses.MISSING, *, help: str, choices=None, flag: Optional[str] = None,
           minimum: Optional[float] = None, required: bool = False):
    """A configuration field that also describes its command-line option.

    The command line (``translate train METHOD``) gets one option per field from this metadata:
    the type comes from the annotation, the flag is the field name in kebab case unless ``flag``
    names it (booleans become ``--flag/--no-flag``), ``choices`` and ``minimum`` are checked by
    :meth:`RunConfig.validate` as well as by the parser.

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


# Options shared by both methods' model sections: one declaration each, the default per method.
GENERATORS = ("unet_128", "unet_256", "unet", "resnet_6blocks", "resnet_9blocks", "resnet")
GENERATORS += ("pix2pixhd",)  # the pix2pixHD global generator (depth --n-blocks)
GENERATORS += ("slim_unet", "mobile_resnet_9blocks", "mobile_resnet")  # efficient students (translate distill)
DISCRIMINATORS = ("basic", "n_layers", "patchgan", "pixel")
DISCRIMINATORS += ("multiscale",)  # --num-D PatchGANs at scales 1, 1/2, 1/4 (pix2pixHD)
GAN_MODES = ("vanilla", "lsgan", "hinge", "wgan-gp")


def _net_g(default: str):
    return option(default, choices=GENERATORS, flag="netG",
                  help="generator: unet_128, unet_256, unet (depth --num-downs), resnet_6blocks, resnet_9blocks, "
                       "resnet (depth --n-blocks), pix2pixhd (global generator, --n-blocks residual blocks)")


def _num_downs():
    return option(8, minimum=5, help="U-Net downsamplings, used by --netG unet only")


def _n_blocks():
    return option(9, minimum=1, help="ResNet blocks, used by --netG resnet only")


def _net_d():
    return option("basic", choices=DISCRIMINATORS, flag="netD",
                  help="discriminator: basic (70x70 PatchGAN), n_layers (depth --n-layers-D), patchgan, pixel (1x1 PatchGAN), "
                       "multiscale (--num-D PatchGANs at scales 1, 1/2, 1/4...)")


def _num_d():
    return option(3, minimum=1, flag="num-D", help="discriminators of --netD multiscale (scales 1, 1/2, 1/4...)")


def _lambda_feat():
    return option(10.0, help="weight of the discriminator feature-matching loss (--netD multiscale)")


def _n_layers_d():
    return option(3, minimum=1, flag="n-layers-D", help="discriminator depth when --netD n_layers")


def _ngf():
    return option(64, minimum=1, help="generator width (filters in the first layer)")


def _ndf():
    return option(64, minimum=1, help="discriminator width (filters in the first layer)")


def _norm(default: str):
    return option(default, choices=("batch", "instance", "none"), help="normalisation layers: batch, instance, none")


def _dropout(default: bool):
    return option(default, flag="dropout", help="dropout in the generator (--no-dropout: none)")


def _init_type():
    return option("normal", choices=("normal", "xavier", "kaiming", "orthogonal"),
                  help="weight initialisation: normal, xavier, kaiming, orthogonal")


def _init_gain():
    return option(0.02, help="scale of the initial weights")


def _gan_mode(default: str):
    return option(default, choices=GAN_MODES, help="adversarial loss: vanilla, lsgan, hinge, wgan-gp")


def _lambda_gp():
    return option(10.0, help="gradient-penalty weight (--gan-mode wgan-gp)")


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
class Pix2PixConfig:
    """pix2pix networks and losses (defaults follow Isola et al. 2017)."""

    netG: str = _net_g("unet_256")
    num_downs: int = _num_downs()
    n_blocks: int = _n_blocks()
    netD: str = _net_d()
    num_D: int = _num_d()
    lambda_feat: float = _lambda_feat()
    n_layers_D: int = _n_layers_d()
    ngf: int = _ngf()
    ndf: int = _ndf()
    norm: str = _norm("batch")
    use_dropout: bool = _dropout(True)
    init_type: str = _init_type()
    init_gain: float = _init_gain()
    gan_mode: str = _gan_mode("vanilla")
    lambda_l1: float = option(100.0, help="weight of the L1 loss between output and target")
    lambda_gp: float = _lambda_gp()


@dataclass
class CycleGANConfig:
    """CycleGAN networks and losses (defaults follow Zhu et al. 2017)."""

    netG: str = _net_g("resnet_9blocks")
    n_blocks: int = _n_blocks()
    num_downs: int = _num_downs()
    netD: str = _net_d()
    num_D: int = _num_d()
    n_layers_D: int = _n_layers_d()
    ngf: int = _ngf()
    ndf: int = _ndf()
    norm: str = _norm("instance")
    use_dropout: bool = _dropout(False)
    init_type: str = _init_type()
    init_gain: float = _init_gain()
    gan_mode: str = _gan_mode("lsgan")
    lambda_a: float = option(10.0, help="weight of the cycle loss a -> b -> a")
    lambda_b: float = option(10.0, help="weight of the cycle loss b -> a -> b")
    lambda_identity: float = option(0.5, help="weight of the identity loss, relative to --lambda-a / --lambda-b")
    pool_size: int = option(50, minimum=0, help="history of generated images shown to the discriminators (0: none)")
    lambda_gp: float = _lambda_gp()


@dataclass
class CUTConfig:
    """CUT networks and losses (defaults follow Park et al. 2020, contrastive unpaired translation)."""

    netG: str = option("resnet_9blocks", choices=("resnet_6blocks", "resnet_9blocks", "resnet"), flag="netG",
                       help="generator: resnet_6blocks, resnet_9blocks, resnet (depth --n-blocks); PatchNCE "
                            "reads its encoder")
    n_blocks: int = _n_blocks()
    netD: str = _net_d()
    n_layers_D: int = _n_layers_d()
    ngf: int = _ngf()
    ndf: int = _ndf()
    norm: str = _norm("instance")
    use_dropout: bool = _dropout(False)
    init_type: str = option("xavier", choices=("normal", "xavier", "kaiming", "orthogonal"),
                            help="weight initialisation: normal, xavier, kaiming, orthogonal")
    init_gain: float = _init_gain()
    gan_mode: str = _gan_mode("lsgan")
    lambda_gan: float = option(1.0, minimum=0.0, help="weight of the adversarial loss")
    lambda_nce: float = option(1.0, minimum=0.0, help="weight of the PatchNCE loss")
    nce_layers: str = option("0,2,3,4,8", help="generator encoder points for PatchNCE, comma-separated: 0 input, "
                                               "1 stem, 2-3 downsampling convs, 4+k residual block k")
    num_patches: int = option(256, minimum=1, help="patch locations sampled per layer and image")
    nce_temperature: float = option(0.07, help="PatchNCE softmax temperature")
    nce_idt: bool = option(True, flag="nce-idt", help="identity PatchNCE on domain-B images (--no-nce-idt: none)")
    flip_equivariance: bool = option(False, help="translate a horizontally flipped input at random and match "
                                                 "patches after flipping back (FastCUT)")
    head_units: int = option(256, minimum=1, help="units of each projection head's two layers")
    lambda_gp: float = _lambda_gp()


@dataclass
class DistillConfig:
    """A student generator trained to reproduce a trained translator (``translate distill``).

    Losses of the student S on a teacher T's input-domain images x: ``lambda_l1 * |S(x) - T(x)|``
    + ``lambda_feat`` x L1 between the teacher encoder's features of S(x) and of T(x) + an
    adversarial loss from a fresh PatchGAN that judges the target domain.
    """

    teacher: str = option("", help="the teacher: a trained translator folder or its run folder")
    teacher_direction: str = option("auto", choices=("auto", "a2b", "b2a"),
                                    help="which generator of the teacher to distill (auto: its only one; "
                                         "a CycleGAN teacher needs a2b or b2a)")
    paired: bool = option(True, help="the data are aligned pairs (pix2pix teachers); --no-paired: unpaired domains "
                                     "(CycleGAN teachers; set from the teacher by translate distill)")
    netG: str = option("slim_unet", choices=GENERATORS, flag="netG",
                       help="student generator: slim_unet, mobile_resnet_9blocks, mobile_resnet (depth --n-blocks), "
                            "or any other registered generator")
    num_downs: int = _num_downs()
    n_blocks: int = option(9, minimum=0, help="residual blocks, used by --netG resnet / mobile_resnet only")
    netD: str = _net_d()
    n_layers_D: int = _n_layers_d()
    ngf: int = option(16, minimum=1, help="student generator width (filters in the first layer)")
    ndf: int = _ndf()
    norm: str = _norm("batch")
    use_dropout: bool = _dropout(False)
    init_type: str = _init_type()
    init_gain: float = _init_gain()
    gan_mode: str = _gan_mode("lsgan")
    lambda_l1: float = option(100.0, help="weight of the L1 loss between the student's and the teacher's outputs")
    lambda_feat: float = option(10.0, help="weight of the feature loss in the teacher encoder (0: off)")
    lambda_gan: float = option(1.0, help="weight of the adversarial loss (0: off)")
    lambda_gp: float = _lambda_gp()


@dataclass
class FastCUTConfig(CUTConfig):
    """FastCUT: CUT with lambda_NCE 10, no identity PatchNCE and flip-equivariance augmentation."""

    lambda_nce: float = option(10.0, minimum=0.0, help="weight of the PatchNCE loss")
    nce_idt: bool = option(False, flag="nce-idt", help="identity PatchNCE on domain-B images (--no-nce-idt: none)")
    flip_equivariance: bool = option(True, help="translate a horizontally flipped input at random and match "
                                                "patches after flipping back")


def parse_layers(text: str) -> list:
    """``"0,2,3"`` -> [0, 2, 3]; ConfigError unless a comma list of distinct non-negative integers."""
    try:
        layers = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"nce_layers must be comma-separated integers such as 0,2,3,4,8; got {text!r}") from None
    if not layers or min(layers) < 0 or len(set(layers)) != len(layers):
        raise ConfigError(f"nce_layers must be distinct non-negative integers such as 0,2,3,4,8; got {text!r}")
    return layers


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
                                   "(auto: l1 for pix2pix, fid for CycleGAN)")
    eval_max_images: Optional[int] = option(50, minimum=1, help="images per evaluation")


DIRECTIONS = ("a2b", "b2a")  # generator directions, named by dataset domains


def swap_domains(name: str) -> str:
    """Swap the domains a name refers to: ``gen_a2b`` -> ``gen_b2a``, ``disc_a`` -> ``disc_b``,
    ``cycle_b`` -> ``cycle_a``, ``a2b`` -> ``b2a``; other names are returned unchanged."""
    head, _, tail = name.rpartition("_")
    swapped = {"a": "b", "b": "a", "a2b": "b2a", "b2a": "a2b"}.get(tail)
    if swapped is None:
        return name
    return f"{head}_{swapped}" if head else swapped


@dataclass
class Pix2PixHDConfig:
    """pix2pixHD networks and losses (defaults follow Wang et al. 2018)."""

    ngf: int = option(64, minimum=1, help="global generator width (filters in the first layer)")
    n_downsample_global: int = option(4, minimum=1, help="downsamplings of the global generator")
    n_blocks_global: int = option(9, minimum=1, help="residual blocks of the global generator")
    n_local_enhancers: int = option(0, choices=(0, 1), help="local enhancer (1: global net at half resolution "
                                                            "first, then both at full resolution)")
    n_blocks_local: int = option(3, minimum=1, help="residual blocks of the local enhancer")
    global_steps: int = option(1000, minimum=0, help="with --n-local-enhancers 1: steps that train the global "
                                                     "generator alone at half resolution before the joint phase")
    num_D: int = _num_d()
    n_layers_D: int = _n_layers_d()
    ndf: int = _ndf()
    norm: str = _norm("instance")
    init_type: str = _init_type()
    init_gain: float = _init_gain()
    gan_mode: str = option("lsgan", choices=("vanilla", "lsgan", "hinge"),
                           help="adversarial loss: vanilla, lsgan, hinge")
    lambda_feat: float = _lambda_feat()
    lambda_vgg: float = option(10.0, help="weight of the VGG19 perceptual loss (only with --vgg-weights)")
    vgg_weights: str = option("", help="local torchvision vgg19 weights file (.pth) for the perceptual loss; "
                                       "nothing is downloaded, and without it the loss is off")


MODEL_CONFIGS = {"pix2pix": Pix2PixConfig, "cyclegan": CycleGANConfig, "pix2pixhd": Pix2PixHDConfig}
MODEL_CONFIGS.update(cut=CUTConfig, fastcut=FastCUTConfig)
METHODS = tuple(MODEL_CONFIGS)
MODEL_CONFIGS["distill"] = DistillConfig  # trained by `translate distill`, not `translate train`


def section_classes(method: str) -> Dict[str, type]:
    """The configuration sections of a run of ``method``: name -> dataclass."""
    if method not in MODEL_CONFIGS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    return {"data": DataConfig, "model": MODEL_CONFIGS[method], "loop": LoopConfig}


def option_flag(f: dataclasses.Field) -> str:
    """The command-line flag of a configuration field, without the leading dashes."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


@dataclass
class RunConfig:
    """Everything that defines a training run."""

    method: str = "pix2pix"
    name: str = option("run", required=True, help="run name: outputs go to CHECKPOINTS_DIR/NAME")
    checkpoints_dir: str = option("checkpoints", help="root folder of runs")
    data: DataConfig = field(default_factory=DataConfig)
    model: Union[Pix2PixConfig, CycleGANConfig, Pix2PixHDConfig, CUTConfig, DistillConfig] = field(
        default_factory=Pix2PixConfig)
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
        if self.method == "cyclegan" and self.model.lambda_identity > 0 and d.input_nc != d.output_nc:
            raise ConfigError(
                "the CycleGAN identity loss needs input_nc == output_nc "
                f"(got {d.input_nc} and {d.output_nc}); set model.lambda_identity=0"
            )
        if self.method in ("cut", "fastcut"):
            _validate_cut(self.model, d)
        if getattr(self.model, "netD", None) == "multiscale" and self.model.gan_mode == "wgan-gp":
            raise ConfigError("--netD multiscale does not support --gan-mode wgan-gp; use vanilla, lsgan or hinge")
        if d.label_nc == 0 and d.instance_dir:
            raise ConfigError("--instance-dir needs --label-nc (instance maps go with class-ID label maps)")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"run name {self.name!r} must be a plain folder name")


def _validate_cut(m: CUTConfig, d: DataConfig) -> None:
    """CUT/FastCUT checks: encoder layers that the generator has, identity NCE only when B fits G."""
    n_blocks = {"resnet_6blocks": 6, "resnet_9blocks": 9}.get(m.netG, m.n_blocks)
    layers = parse_layers(m.nce_layers)
    if max(layers) > 3 + n_blocks:
        raise ConfigError(f"nce_layers {m.nce_layers!r}: {m.netG} with {n_blocks} blocks has encoder points "
                          f"0..{3 + n_blocks}")
    if m.nce_temperature <= 0:
        raise ConfigError(f"nce_temperature must be positive, got {m.nce_temperature}")
    if m.nce_idt and d.input_nc != d.output_nc:
        raise ConfigError("identity PatchNCE translates domain-B images, so it needs input_nc == output_nc "
                          f"(got {d.input_nc} and {d.output_nc}); use --no-nce-idt")


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

