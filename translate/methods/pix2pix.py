"""pix2pix (Isola et al. 2017): conditional GAN with a U-Net generator and a PatchGAN on (A, B).

Update order in one step, as in the paper's reference code:
    1. fake_b = G(real_a)
    2. D step: D sees (real_a, real_b) as real and (real_a, fake_b.detach()) as fake
    3. G step with D frozen: fool D on (real_a, fake_b) + lambda_l1 * |fake_b - real_b|
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from .. import options as o
from ..losses import adversarial_loss, feature_matching_loss
from ..models import build_discriminator, build_generator
from ..nn import init_weights
from ..nn.inference import for_inference
from ..runtime import Scalers
from ..options import DIRECTIONS, ModelConfig, multiscale_min_crop, option
from .common import adam, discriminator_kwargs, discriminator_loss, frozen, generator_kwargs, viewable_input
from .registry import BenchSpec, MethodInfo, register_method


@dataclass
class Pix2PixConfig(ModelConfig):
    """pix2pix networks and losses (defaults follow Isola et al. 2017)."""

    netG: str = o.net_g("unet_256")
    num_downs: int = o.num_downs()
    n_blocks: int = o.n_blocks()
    netD: str = o.net_d()
    num_D: int = o.num_d()
    lambda_feat: float = o.lambda_feat()
    n_layers_D: int = o.n_layers_d()
    ngf: int = o.ngf()
    ndf: int = o.ndf()
    norm: str = o.norm("batch")
    use_dropout: bool = o.dropout(True)
    init_type: str = o.init_type()
    init_gain: float = o.init_gain()
    gan_mode: str = o.gan_mode("vanilla")
    lambda_l1: float = option(100.0, help="weight of the L1 loss between output and target")
    lambda_gp: float = o.lambda_gp()

    def min_crop(self) -> int:
        return multiscale_min_crop(self.n_layers_D, self.num_D) if self.netD == "multiscale" else 0


def pix2pix_paper() -> Dict[str, Dict[str, Any]]:
    """pix2pix as published (Isola et al. 2017): U-Net 256 with dropout, 70x70 PatchGAN, batch
    norm, vanilla GAN loss + 100 x L1, 286 -> 256 random crops with flips, batch 1, 100 epochs at
    Adam 2e-4 (0.5, 0.999) then 100 of linear decay. The exported generator stays the weight
    average (``loop.ema_decay``, default 0.999); ``--ema-decay 0`` exports the last step's
    weights, as the paper's code does."""
    return {
        "data": {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 256, "flip": True},
        "model": {"netG": "unet_256", "netD": "basic", "ngf": 64, "ndf": 64, "norm": "batch",
                  "use_dropout": True, "init_type": "normal", "init_gain": 0.02, "gan_mode": "vanilla",
                  "lambda_l1": 100.0},
        "loop": {"batch_size": 1, "epochs": 100, "epochs_decay": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
    }


@register_method
class Pix2Pix(MethodInfo):
    """Networks ``gen_a2b`` and ``disc_b`` (``gen_b2a`` and ``disc_a`` for direction b2a) and their
    train step.

    Net names always name dataset domains: a run trained from B to A (``--direction BtoA``) has
    the generator ``gen_b2a`` and the discriminator ``disc_a`` that judges domain A. Batches hold
    the model input under ``"a"`` and the target under ``"b"`` whatever the direction (the data
    loader puts the input domain first).

    Args:
        cfg: model section of the run configuration.
        input_nc, output_nc: channels of the input and target images.
        device: where the networks live.
        seed: unused (pix2pix has no random state of its own); every method takes it.
        direction: "a2b" (domain A is the input) or "b2a".
    """

    name = "pix2pix"
    config_class = Pix2PixConfig
    help = "paired: U-Net + PatchGAN + L1 (A|B side by side, or A/ + B/)"
    data = "paired"  # aligned (A, B) pairs
    tiny = {"netG": "unet", "num_downs": 5}
    bench = BenchSpec(counts="images", convert=("a2b",))
    presets = {"pix2pix_paper": pix2pix_paper}
    optimizer_names = ("gen", "disc")

    def __init__(self, cfg: Pix2PixConfig, input_nc: int, output_nc: int, device: torch.device,
                 seed: int = 0, direction: str = "a2b"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.cfg = cfg
        self.device = device
        self.direction = direction
        self.gen_name = f"gen_{direction}"
        self.disc_name = f"disc_{direction[-1]}"  # judges the target domain
        gen = build_generator(cfg.netG, **generator_kwargs(cfg, input_nc, output_nc))
        disc = build_discriminator(cfg.netD, **discriminator_kwargs(cfg, input_nc + output_nc))
        for net in (gen, disc):
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self.gen_name: gen, self.disc_name: disc}).to(device)
        self.train_nets = dict(self.nets)  # what train_step calls: the nets, or their DDP wrappers
        self.generators = {direction: self.gen_name}  # direction -> net name, for the translator folder

    @property
    def size_multiple(self) -> int:
        return self.nets[self.gen_name].size_multiple

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        betas = (loop.beta1, loop.beta2)
        return {
            "gen": adam(self.nets[self.gen_name].parameters(), loop.lr, betas, self.device),
            "disc": adam(self.nets[self.disc_name].parameters(), loop.lr, betas, self.device),
        }

    def train_step(self, batch, opt, scalers: Scalers, amp) -> Dict[str, torch.Tensor]:
        """One G and one D update on ``batch`` {"a": input (B, Ci, H, W), "b": target (B, Co, H, W)} in [-1, 1].

        Returns detached scalar losses (no host synchronisation here).
        """
        cfg, gen, disc = self.cfg, self.train_nets[self.gen_name], self.train_nets[self.disc_name]
        disc_raw = self.nets[self.disc_name]  # G step: D is frozen, so no gradient sync is wanted
        real_a, real_b = batch["a"], batch["b"]
        with amp:
            fake_b = gen(real_a)  # (B, Co, H, W)

        # D step: real pairs vs. generated pairs (detached: no gradient into G).
        opt["disc"].zero_grad(set_to_none=True)
        real_ab = torch.cat([real_a, real_b], 1)
        fake_ab = torch.cat([real_a, fake_b.detach().to(real_a.dtype)], 1)
        loss_d, losses, pred_real = discriminator_loss(disc, disc_raw, real_ab, fake_ab, amp, cfg.gan_mode,
                                                       cfg.lambda_gp)
        scalers.backward("disc", loss_d)
        scalers.step("disc", opt["disc"])

        # G step: fool the (frozen) D and stay close to the target in L1.
        opt["gen"].zero_grad(set_to_none=True)
        with frozen(disc_raw):
            with amp:
                pred_fake = disc_raw(torch.cat([real_a, fake_b], 1))
            g_gan = adversarial_loss(pred_fake, True, cfg.gan_mode, for_discriminator=False)
            g_l1 = F.l1_loss(fake_b.float(), real_b.float())
            loss_g = g_gan + cfg.lambda_l1 * g_l1
            if cfg.netD == "multiscale" and cfg.lambda_feat > 0:
                # D's features of the real pair, from the D step (constants for G)
                g_feat = feature_matching_loss(pred_fake, pred_real)
                loss_g = loss_g + cfg.lambda_feat * g_feat
                losses["g_feat"] = g_feat
            scalers.backward("gen", loss_g)
        scalers.step("gen", opt["gen"])
        losses.update(g_gan=g_gan, g_l1=g_l1)
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        """Image columns for the sample grid: input, output, target, each (B, C, H, W)."""
        gen = for_inference(self.nets[self.gen_name])
        with amp:
            fake_b = gen(batch["a"]).float()
        return [viewable_input(batch["a"], fake_b.shape[1]), fake_b, batch["b"]]
