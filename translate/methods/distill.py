"""Distillation: a small student generator learns to reproduce a trained translator (the teacher).

The teacher is loaded from its translator folder, frozen, and used exactly as ``Translator``
uses it (eval mode, the folder's batch-norm mode), so the student learns what users of the
teacher get. One step on a batch {"a": teacher input-domain images, "b": target-domain images}:

    1. target = T(real_a) (no gradient); fake = S(real_a)
    2. D step: a fresh PatchGAN on the target domain sees real_b as real, fake.detach() as fake
    3. S step with D frozen:  lambda_gan * GAN(D(fake))
                            + lambda_l1 * |fake - target|
                            + lambda_feat * sum_k |E_k(fake) - E_k(target)| / K

E_k are the first K encoder levels of the teacher generator itself (U-Net: its first four
stride-2 levels; ResNet: the stem and the two downsampling steps): a feature (perceptual) loss
with the teacher's own weights, no downloaded network (after GAN Compression, Li et al. 2020,
which distils with the teacher's features and a fresh discriminator).

For a pix2pix teacher, real_b is the paired target image; for a CycleGAN direction it is an
unpaired image of the target domain. The student is exported under the teacher's direction, so
``convert``, ``eval`` and ``export`` use it like the teacher, and its translator's provenance
names the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_generator, read_translator_json
from .. import options as o
from ..errors import UserError
from ..losses import adversarial_loss
from ..models import build_discriminator, build_generator
from ..nn import init_weights
from ..nn.inference import for_inference
from ..runtime import Scalers
from ..options import DIRECTIONS, GENERATORS, ModelConfig, option
from .common import adam, discriminator_loss, frozen
from .registry import MethodInfo, register_method


@dataclass
class DistillConfig(ModelConfig):
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
    num_downs: int = o.num_downs()
    n_blocks: int = option(9, minimum=0, help="residual blocks, used by --netG resnet / mobile_resnet only")
    netD: str = o.net_d()
    n_layers_D: int = o.n_layers_d()
    ngf: int = option(16, minimum=1, help="student generator width (filters in the first layer)")
    ndf: int = o.ndf()
    norm: str = o.norm("batch")
    use_dropout: bool = o.dropout(False)
    init_type: str = o.init_type()
    init_gain: float = o.init_gain()
    gan_mode: str = o.gan_mode("lsgan")
    lambda_l1: float = option(100.0, help="weight of the L1 loss between the student's and the teacher's outputs")
    lambda_feat: float = option(10.0, help="weight of the feature loss in the teacher encoder (0: off)")
    lambda_gan: float = option(1.0, help="weight of the adversarial loss (0: off)")
    lambda_gp: float = o.lambda_gp()


class DistillError(UserError):
    """The teacher cannot be distilled (missing, wrong direction, unsupported architecture)."""


def student_kwargs(cfg: DistillConfig, input_nc: int, output_nc: int) -> dict:
    """Constructor arguments of the student generator described by a distill config."""
    kw = dict(input_nc=input_nc, output_nc=output_nc, ngf=cfg.ngf, norm=cfg.norm, use_dropout=cfg.use_dropout)
    if cfg.netG in ("unet", "slim_unet"):
        kw["num_downs"] = cfg.num_downs
    if cfg.netG in ("resnet", "mobile_resnet"):
        kw["n_blocks"] = cfg.n_blocks
    return kw


def teacher_encoder(teacher: nn.Module) -> List[nn.Module]:
    """The teacher's first encoder stages, in order: their outputs are the feature-loss features.

    Raises:
        DistillError: the teacher's architecture has no known encoder.
    """
    arch = getattr(teacher, "arch", type(teacher).__name__)
    if arch in ("unet", "slim_unet"):
        return list(teacher.down[:4])  # (B, c[k], H / 2**(k+1), W / 2**(k+1)), k = 0..3
    if arch in ("resnet", "mobile_resnet"):
        return [teacher.stem, teacher.down[:3], teacher.down[3:]]  # H, H/2, H/4
    raise DistillError(f"no feature loss for a {arch!r} teacher (supported: unet, slim_unet, resnet, "
                       "mobile_resnet); distill with --lambda-feat 0")


def encoder_features(stages: List[nn.Module], x: torch.Tensor) -> List[torch.Tensor]:
    feats = []
    for stage in stages:
        x = stage(x)
        feats.append(x)
    return feats


def load_teacher(path: str, direction: str, device: torch.device) -> nn.Module:
    """The teacher's ``direction`` generator, as ``Translator`` runs it: eval mode, frozen."""
    if not path:
        raise DistillError("no teacher: give the teacher's translator folder (translate distill TEACHER ...)")
    doc = read_translator_json(path)
    if direction not in doc["generators"]:
        raise DistillError(f"{doc['_folder']}: the teacher has no {direction!r} generator; it has "
                           f"{', '.join(doc['generators'])}")
    net = load_generator(doc["_folder"], direction, device=device, doc=doc)
    return for_inference(net, batchnorm=doc["preprocessing"].get("batchnorm", "per_image"), copy_net=False)


@register_method
class Distill(MethodInfo):
    """Networks ``gen_<direction>`` (the student) and ``disc_<target domain>``; the teacher is
    held outside ``nets`` (it is not trained, saved or resumed: it is loaded again from its folder).

    Args:
        cfg: the distill configuration (``cfg.teacher`` is the teacher's folder).
        input_nc, output_nc: channels of the teacher's input and output images.
        device: where the networks live.
        seed: unused (no random state of its own).
        direction: the direction of the teacher generator and of the student ("a2b" or "b2a").
    """

    name = "distill"
    config_class = DistillConfig
    help = "train a small student generator that reproduces a trained translator"
    description = ("Train a student generator (default slim_unet, ngf 16) on the teacher's input-domain images "
                   "of --data to reproduce the teacher's outputs (L1 + teacher-encoder feature loss + a fresh "
                   "PatchGAN). The result is an ordinary translator folder whose info names its teacher; the "
                   "direction, channels and data pairing come from the teacher.")
    command = "distill"  # translate distill TEACHER, not translate train
    data = "teacher"  # batches hold the input under "a" and a target-domain image under "b"
    tiny = {"netG": "slim_unet", "num_downs": 5}
    optimizer_names = ("gen", "disc")

    @classmethod
    def data_kind(cls, model_cfg: DistillConfig) -> str:
        """As the teacher was trained: set in ``model.paired`` by :func:`translate.distill.prepare`."""
        return "paired" if model_cfg.paired else "unpaired"

    def __init__(self, cfg: DistillConfig, input_nc: int, output_nc: int, device: torch.device,
                 seed: int = 0, direction: str = "a2b"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.cfg, self.device, self.direction = cfg, device, direction
        self.teacher = load_teacher(cfg.teacher, direction, device)
        t_in, t_out = self.teacher.config["input_nc"], self.teacher.config["output_nc"]
        if (t_in, t_out) != (input_nc, output_nc):
            raise DistillError(f"the teacher maps {t_in} to {t_out} channels; the data give {input_nc} -> {output_nc}")
        self.stages = teacher_encoder(self.teacher) if cfg.lambda_feat > 0 else []
        self.gen_name = f"gen_{direction}"
        self.disc_name = f"disc_{direction[-1]}"  # judges the target domain
        gen = build_generator(cfg.netG, **student_kwargs(cfg, input_nc, output_nc))
        kw = dict(input_nc=output_nc, ndf=cfg.ndf, norm=cfg.norm)
        if cfg.netD == "n_layers":
            kw["n_layers"] = cfg.n_layers_D
        disc = build_discriminator(cfg.netD, **kw)
        for net in (gen, disc):
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self.gen_name: gen, self.disc_name: disc}).to(device)
        self.train_nets = dict(self.nets)
        self.generators = {direction: self.gen_name}
        self.teacher_record = {"teacher": str(Path(cfg.teacher).resolve()), "teacher_direction": direction,
                               "teacher_arch": self.teacher.arch}

    def provenance(self) -> Dict[str, Any]:
        """The student's translator names its teacher."""
        return dict(self.teacher_record)

    @property
    def size_multiple(self) -> int:
        # the data must suit both: the teacher makes the targets
        return max(self.nets[self.gen_name].size_multiple, self.teacher.size_multiple)

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        betas = (loop.beta1, loop.beta2)
        return {"gen": adam(self.nets[self.gen_name].parameters(), loop.lr, betas, self.device),
                "disc": adam(self.nets[self.disc_name].parameters(), loop.lr, betas, self.device)}

    def train_step(self, batch, opt, scalers: Scalers, amp) -> Dict[str, torch.Tensor]:
        """One student and one D update on {"a": input (B, Ci, H, W), "b": target-domain (B, Co, H, W)}."""
        cfg, gen, disc = self.cfg, self.train_nets[self.gen_name], self.train_nets[self.disc_name]
        disc_raw = self.nets[self.disc_name]
        real_a, real_b = batch["a"], batch["b"]
        with torch.no_grad(), amp:
            target = self.teacher(real_a).float()  # (B, Co, H, W), what the teacher's users get
            target_feats = encoder_features(self.stages, target)
        with amp:
            fake = gen(real_a)  # (B, Co, H, W)

        opt["disc"].zero_grad(set_to_none=True)
        loss_d, losses, _ = discriminator_loss(disc, disc_raw, real_b, fake.detach(), amp, cfg.gan_mode, cfg.lambda_gp)
        scalers.backward("disc", loss_d)
        scalers.step("disc", opt["disc"])

        opt["gen"].zero_grad(set_to_none=True)
        with frozen(disc_raw):
            with amp:
                pred_fake = disc_raw(fake)
                fake_feats = encoder_features(self.stages, fake)
            g_gan = adversarial_loss(pred_fake, True, cfg.gan_mode, for_discriminator=False)
            g_l1 = F.l1_loss(fake.float(), target)
            loss_g = cfg.lambda_gan * g_gan + cfg.lambda_l1 * g_l1
            losses.update(g_gan=g_gan, g_l1=g_l1)
            if self.stages:
                g_feat = sum(F.l1_loss(f.float(), t.float()) for f, t in zip(fake_feats, target_feats)) / len(self.stages)
                loss_g = loss_g + cfg.lambda_feat * g_feat
                losses["g_feat"] = g_feat
            scalers.backward("gen", loss_g)
        scalers.step("gen", opt["gen"])
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        """Image columns for the sample grid: input, student output, teacher output."""
        gen = for_inference(self.nets[self.gen_name])
        with amp:
            fake = gen(batch["a"]).float()
            target = self.teacher(batch["a"]).float()
        return [batch["a"], fake, target]
