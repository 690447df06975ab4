"""pix2pixHD (Wang et al. 2018): high-resolution paired translation, typically from class-ID label maps.

Networks: the :class:`translate.models.Pix2PixHDGenerator` (global generator G1, optionally inside
a local enhancer G2) and a :class:`translate.models.MultiscaleDiscriminator` on the concatenated
(input, image) pair. Losses: LSGAN + ``lambda_feat`` x discriminator feature matching
(+ ``lambda_vgg`` x VGG19 perceptual loss when local VGG19 weights are given; nothing is
downloaded). No L1 term, as in the paper.

Coarse to fine (``n_local_enhancers=1``): for the first ``global_steps`` steps only G1 trains, on
the batch average-pooled to half resolution; afterwards G1 and G2 train together at full
resolution. The phase follows from the method's own step counter, which is part of its resumable
state, so a run resumed on either side of the switch continues in the right phase. One optimizer
holds all generator parameters: Adam skips parameters without a gradient, so G2's parameters
(and G1's head after the switch) are left untouched while unused.

Update order in one step: fake = G(a); D step on (a, b) real vs (a, fake.detach()) fake; G step
with D frozen: fool every scale of D, match D's features of the real pair, [VGG].
"""

from __future__ import annotations

import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import options as o
from ..errors import UserError
from ..losses import adversarial_loss, feature_matching_loss
from ..models import build_discriminator, build_generator
from ..nn import init_weights
from ..nn.inference import for_inference
from ..runtime import Scalers
from ..options import DIRECTIONS, ModelConfig, multiscale_min_crop, option
from .common import adam, discriminator_loss, frozen, viewable_input
from .registry import BenchSpec, MethodInfo, register_method

# VGG19 ``features`` indices ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, and the
# weights of those layers in the perceptual loss (pix2pixHD's reference code).
_VGG_CUTS = (2, 7, 12, 21, 30)
_VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


@dataclass
class Pix2PixHDConfig(ModelConfig):
    """pix2pixHD networks and losses (defaults follow Wang et al. 2018)."""

    ngf: int = option(64, minimum=1, help="global generator width (filters in the first layer)")
    n_downsample_global: int = option(4, minimum=1, help="downsamplings of the global generator")
    n_blocks_global: int = option(9, minimum=1, help="residual blocks of the global generator")
    n_local_enhancers: int = option(0, choices=(0, 1), help="local enhancer (1: global net at half resolution "
                                                            "first, then both at full resolution)")
    n_blocks_local: int = option(3, minimum=1, help="residual blocks of the local enhancer")
    global_steps: int = option(1000, minimum=0, help="with --n-local-enhancers 1: steps that train the global "
                                                     "generator alone at half resolution before the joint phase")
    num_D: int = o.num_d()
    n_layers_D: int = o.n_layers_d()
    ndf: int = o.ndf()
    norm: str = o.norm("instance")
    init_type: str = o.init_type()
    init_gain: float = o.init_gain()
    gan_mode: str = option("lsgan", choices=("vanilla", "lsgan", "hinge"),
                           help="adversarial loss: vanilla, lsgan, hinge")
    lambda_feat: float = o.lambda_feat()
    lambda_vgg: float = option(10.0, help="weight of the VGG19 perceptual loss (only with --vgg-weights)")
    vgg_weights: str = option("", help="local torchvision vgg19 weights file (.pth) for the perceptual loss; "
                                       "nothing is downloaded, and without it the loss is off")

    def min_crop(self) -> int:
        smallest = multiscale_min_crop(self.n_layers_D, self.num_D)  # the multi-scale D is always there
        return 2 * smallest if self.n_local_enhancers else smallest  # the global phase trains at half resolution


class VGGPerceptualLoss(nn.Module):
    """L1 between VGG19 activations of two images, summed over five depths with fixed weights.

    Args:
        weights_path: a local torchvision ``vgg19`` state dict (``.pth``); read with
            ``weights_only=True``; nothing is downloaded.
    """

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        from torchvision.models import vgg19

        path = Path(weights_path)
        if not path.is_file():
            raise UserError(f"--vgg-weights {path}: no such file (give a local torchvision vgg19 state dict)")
        net = vgg19(weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as e:  # a wrong or corrupt file: say which and why
            raise UserError(f"--vgg-weights {path}: not a torchvision vgg19 state dict ({e})") from None
        features = net.features[:_VGG_CUTS[-1]].eval()
        for p in features.parameters():
            p.requires_grad_(False)
        self.slices = nn.ModuleList(features[a:b] for a, b in zip((0,) + _VGG_CUTS[:-1], _VGG_CUTS))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        return super().train(False)  # always in eval mode

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``fake``, ``real``: (B, 3, H, W) in [-1, 1] (gray images are repeated to 3 channels)."""
        if fake.shape[1] == 1:
            fake, real = fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
        x = ((fake.float() + 1) / 2 - self.mean) / self.std
        y = ((real.float() + 1) / 2 - self.mean) / self.std
        loss = 0.0
        for w, block in zip(_VGG_WEIGHTS, self.slices):
            x, y = block(x), block(y)
            loss = loss + w * F.l1_loss(x, y.detach())
        return loss


@register_method
class Pix2PixHD(MethodInfo):
    """Networks ``gen_a2b`` and ``disc_b`` (``gen_b2a`` / ``disc_a`` for direction b2a) and their train step.

    Args: as :class:`translate.methods.pix2pix.Pix2Pix` (``cfg`` is a :class:`Pix2PixHDConfig`).
    """

    name = "pix2pixhd"
    title = "pix2pixHD"
    config_class = Pix2PixHDConfig
    help = "paired, high resolution: label maps (--label-nc) to images, multi-scale D + feature matching"
    data = "paired"
    tiny = {"n_downsample_global": 2, "n_blocks_global": 1, "num_D": 2}
    # opt-in: the paper's networks on class-ID maps at their full size
    bench = BenchSpec(counts="images", data="labels", default=False,
                      quick={"ngf": 8, "ndf": 8, "n_layers_D": 2, "num_D": 2, "n_blocks_global": 2,
                             "n_downsample_global": 2})
    optimizer_names = ("gen", "disc")

    def __init__(self, cfg: Pix2PixHDConfig, input_nc: int, output_nc: int, device: torch.device,
                 seed: int = 0, direction: str = "a2b"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.cfg, self.device, self.direction = cfg, device, direction
        self.gen_name = f"gen_{direction}"
        self.disc_name = f"disc_{direction[-1]}"
        gen = build_generator("pix2pixhd", input_nc=input_nc, output_nc=output_nc, ngf=cfg.ngf,
                              n_downsample_global=cfg.n_downsample_global, n_blocks_global=cfg.n_blocks_global,
                              n_local_enhancers=cfg.n_local_enhancers, n_blocks_local=cfg.n_blocks_local,
                              norm=cfg.norm)
        disc = build_discriminator("multiscale", input_nc=input_nc + output_nc, ndf=cfg.ndf,
                                   n_layers=cfg.n_layers_D, norm=cfg.norm, num_D=cfg.num_D)
        for net in (gen, disc):
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self.gen_name: gen, self.disc_name: disc}).to(device)
        self.train_nets = dict(self.nets)
        self.generators = {direction: self.gen_name}
        self.steps_done = 0  # drives the coarse-to-fine switch; saved and restored with the run
        self.vgg: Optional[VGGPerceptualLoss] = None
        if cfg.vgg_weights and cfg.lambda_vgg > 0:
            self.vgg = VGGPerceptualLoss(cfg.vgg_weights).to(device)
            print(f"pix2pixhd: VGG19 perceptual loss on (weight {cfg.lambda_vgg}, weights {cfg.vgg_weights})",
                  file=sys.stderr)
        else:
            why = "no --vgg-weights given" if not cfg.vgg_weights else "--lambda-vgg is 0"
            print(f"pix2pixhd: VGG19 perceptual loss off ({why}; nothing is downloaded)", file=sys.stderr)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @property
    def size_multiple(self) -> int:
        return self.nets[self.gen_name].size_multiple

    @property
    def phase(self) -> str:
        """"global" while G1 trains alone at half resolution, else "joint"."""
        cfg = self.cfg
        return "global" if cfg.n_local_enhancers and self.steps_done < cfg.global_steps else "joint"

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        betas = (loop.beta1, loop.beta2)
        return {
            "gen": adam(self.nets[self.gen_name].parameters(), loop.lr, betas, self.device),
            "disc": adam(self.nets[self.disc_name].parameters(), loop.lr, betas, self.device),
        }

    def _generate(self, gen, real_a: torch.Tensor) -> torch.Tensor:
        if self.phase == "global":
            raw = gen.module if hasattr(gen, "module") else gen
            return raw.forward_global(real_a)
        return gen(real_a)

    def train_step(self, batch, opt, scalers: Scalers, amp) -> Dict[str, torch.Tensor]:
        """One G and one D update on ``batch`` {"a": input (B, Ci, H, W), "b": target (B, Co, H, W)}."""
        cfg, gen, disc = self.cfg, self.train_nets[self.gen_name], self.train_nets[self.disc_name]
        disc_raw = self.nets[self.disc_name]
        real_a, real_b = batch["a"], batch["b"]
        if self.phase == "global":  # coarse phase: everything at half resolution
            real_a, real_b = self.downsample(real_a), self.downsample(real_b)
        with amp:
            fake_b = self._generate(gen, real_a)  # (B, Co, H, W)

        # D step: every scale, real pairs vs generated pairs (detached: no gradient into G).
        opt["disc"].zero_grad(set_to_none=True)
        real_ab = torch.cat([real_a, real_b], 1)
        fake_ab = torch.cat([real_a, fake_b.detach().to(real_a.dtype)], 1)
        loss_d, losses, pred_real = discriminator_loss(disc, disc_raw, real_ab, fake_ab, amp, cfg.gan_mode, 0.0)
        scalers.backward("disc", loss_d)
        scalers.step("disc", opt["disc"])

        # G step with D frozen: adversarial + feature matching (+ VGG).
        opt["gen"].zero_grad(set_to_none=True)
        with frozen(disc_raw):
            with amp:
                pred_fake = disc_raw(torch.cat([real_a, fake_b], 1))
            g_gan = adversarial_loss(pred_fake, True, cfg.gan_mode, for_discriminator=False)
            g_feat = feature_matching_loss(pred_fake, pred_real)
            loss_g = g_gan + cfg.lambda_feat * g_feat
            losses.update(g_gan=g_gan, g_feat=g_feat)
            if self.vgg is not None:
                g_vgg = self.vgg(fake_b, real_b)
                loss_g = loss_g + cfg.lambda_vgg * g_vgg
                losses["g_vgg"] = g_vgg
            scalers.backward("gen", loss_g)
        scalers.step("gen", opt["gen"])
        self.steps_done += 1
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        """Image columns for the sample grid: input (first 3 channels when one-hot, as a class
        colouring), output, target; in the global phase the output of G1 at half size, enlarged."""
        gen = for_inference(self.nets[self.gen_name])
        real_a = batch["a"]
        with amp:
            if self.phase == "global":
                fake = gen.forward_global(self.downsample(real_a)).float()
                fake = F.interpolate(fake, size=real_a.shape[-2:], mode="nearest")
            else:
                fake = gen(real_a).float()
        return [viewable_input(real_a, fake.shape[1]), fake, batch["b"]]

    def state_dict(self) -> dict:
        return {"steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        self.steps_done = int(state.get("steps_done", 0))
