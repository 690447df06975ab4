"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle and identity losses.

Update order in one step, as in the paper's reference code:
    1. fake_b = G_a2b(real_a), rec_a = G_b2a(fake_b), fake_a = G_b2a(real_b), rec_b = G_a2b(fake_a)
    2. G step with both D frozen: adversarial + lambda * cycle L1 + lambda * lambda_identity * identity L1
    3. D step: each D sees its real domain as real and a fake from the history pool as fake
``disc_b`` judges domain B (it sees ``fake_b``), ``disc_a`` judges domain A.

Net and loss names always name dataset domains. The step below is written for direction a2b
(the batch holds domain A under ``"a"``); with direction b2a (``--direction BtoA``) the loader
puts domain B under ``"a"`` and every name is swapped (``gen_a2b`` <-> ``gen_b2a``,
``disc_a`` <-> ``disc_b``, ``cycle_a`` <-> ``cycle_b``...), so names still say which domain they
translate or judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from .. import options as o
from ..options import DIRECTIONS, ConfigError, ModelConfig, multiscale_min_crop, option, swap_domains
from ..losses import adversarial_loss
from ..models import build_discriminator, build_generator
from ..nn import init_weights
from ..nn.inference import for_inference
from ..runtime import Scalers
from .common import ImagePool, adam, discriminator_kwargs, discriminator_loss, frozen, generator_kwargs
from .registry import BenchSpec, MethodInfo, register_method


@dataclass
class CycleGANConfig(ModelConfig):
    """CycleGAN networks and losses (defaults follow Zhu et al. 2017)."""

    netG: str = o.net_g("resnet_9blocks")
    n_blocks: int = o.n_blocks()
    num_downs: int = o.num_downs()
    netD: str = o.net_d()
    num_D: int = o.num_d()
    n_layers_D: int = o.n_layers_d()
    ngf: int = o.ngf()
    ndf: int = o.ndf()
    norm: str = o.norm("instance")
    use_dropout: bool = o.dropout(False)
    init_type: str = o.init_type()
    init_gain: float = o.init_gain()
    gan_mode: str = o.gan_mode("lsgan")
    lambda_a: float = option(10.0, help="weight of the cycle loss a -> b -> a")
    lambda_b: float = option(10.0, help="weight of the cycle loss b -> a -> b")
    lambda_identity: float = option(0.5, help="weight of the identity loss, relative to --lambda-a / --lambda-b")
    pool_size: int = option(50, minimum=0, help="history of generated images shown to the discriminators (0: none)")
    lambda_gp: float = o.lambda_gp()

    def check(self, data: Any) -> None:
        if self.lambda_identity > 0 and data.input_nc != data.output_nc:
            raise ConfigError(
                "the CycleGAN identity loss needs input_nc == output_nc "
                f"(got {data.input_nc} and {data.output_nc}); set model.lambda_identity=0"
            )

    def min_crop(self) -> int:
        return multiscale_min_crop(self.n_layers_D, self.num_D) if self.netD == "multiscale" else 0


def cyclegan_paper() -> Dict[str, Dict[str, Any]]:
    """CycleGAN as published (Zhu et al. 2017): ResNet 9 blocks, 70x70 PatchGANs, instance norm,
    LSGAN loss, cycle weight 10 each way, identity 0.5, history pool of 50, 286 -> 256 random
    crops with flips, batch 1, 100 epochs at Adam 2e-4 (0.5, 0.999) then 100 of linear decay.
    The exported generators stay the weight average, as for pix2pix_paper."""
    return {
        "data": {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 256, "flip": True},
        "model": {"netG": "resnet_9blocks", "netD": "basic", "ngf": 64, "ndf": 64, "norm": "instance",
                  "use_dropout": False, "init_type": "normal", "init_gain": 0.02, "gan_mode": "lsgan",
                  "lambda_a": 10.0, "lambda_b": 10.0, "lambda_identity": 0.5, "pool_size": 50},
        "loop": {"batch_size": 1, "epochs": 100, "epochs_decay": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
    }


@register_method
class CycleGAN(MethodInfo):
    """Networks ``gen_a2b``, ``gen_b2a``, ``disc_a``, ``disc_b``, two image pools, the train step.

    Args:
        cfg: model section of the run configuration.
        input_nc, output_nc: channels of the input domain and the other domain.
        device: where the networks live.
        seed: seed of the image pools' random choices.
        direction: "a2b" (the loader's ``"a"`` images are domain A) or "b2a" (they are domain B).
    """

    name = "cyclegan"
    title = "CycleGAN"
    config_class = CycleGANConfig
    help = "unpaired: two ResNet generators, cycle + identity (trainA/, trainB/)"
    data = "unpaired"  # unpaired domains A and B
    tiny = {"netG": "resnet_6blocks"}
    # a step translates both ways: the benchmark counts iterations
    bench = BenchSpec(counts="iterations", convert=("a2b", "b2a"))
    presets = {"cyclegan_paper": cyclegan_paper}
    optimizer_names = ("gen", "disc")

    def __init__(self, cfg: CycleGANConfig, input_nc: int, output_nc: int, device: torch.device, seed: int = 0,
                 direction: str = "a2b"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.cfg = cfg
        self.device = device
        self.direction = direction
        # The step is written for a2b; _n maps those names to the domain names of this run.
        self._n = (lambda name: name) if direction == "a2b" else swap_domains
        nets = {
            "gen_a2b": build_generator(cfg.netG, **generator_kwargs(cfg, input_nc, output_nc)),
            "gen_b2a": build_generator(cfg.netG, **generator_kwargs(cfg, output_nc, input_nc)),
            "disc_a": build_discriminator(cfg.netD, **discriminator_kwargs(cfg, input_nc)),
            "disc_b": build_discriminator(cfg.netD, **discriminator_kwargs(cfg, output_nc)),
        }
        for net in nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self._n(name): net for name, net in nets.items()}).to(device)
        self.train_nets = dict(self.nets)  # what train_step calls: the nets, or their DDP wrappers
        self.generators = {"a2b": "gen_a2b", "b2a": "gen_b2a"}  # direction -> net name
        self.pool_a = ImagePool(cfg.pool_size, seed=seed * 2 + 1)  # fakes of domain A, for disc_a
        self.pool_b = ImagePool(cfg.pool_size, seed=seed * 2 + 2)  # fakes of domain B, for disc_b

    @property
    def size_multiple(self) -> int:
        return self.nets[self._n("gen_a2b")].size_multiple

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        betas = (loop.beta1, loop.beta2)
        n = {name: self.nets[self._n(name)] for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b")}
        gens = list(n["gen_a2b"].parameters()) + list(n["gen_b2a"].parameters())
        discs = list(n["disc_a"].parameters()) + list(n["disc_b"].parameters())
        return {"gen": adam(gens, loop.lr, betas, self.device), "disc": adam(discs, loop.lr, betas, self.device)}

    def _disc_loss(self, disc, disc_raw, real: torch.Tensor, fake: torch.Tensor, amp) -> torch.Tensor:
        return discriminator_loss(disc, disc_raw, real, fake, amp, self.cfg.gan_mode, self.cfg.lambda_gp)[0]

    def train_step(self, batch, opt, scalers: Scalers, amp) -> Dict[str, torch.Tensor]:
        """One update of both generators and both discriminators; returns detached losses."""
        cfg, n, r = self.cfg, self.train_nets, self._n
        g_ab, g_ba, d_a, d_b = n[r("gen_a2b")], n[r("gen_b2a")], n[r("disc_a")], n[r("disc_b")]
        # G step: the discriminators are frozen, so they are called without their DDP wrappers.
        d_a_raw, d_b_raw = self.nets[r("disc_a")], self.nets[r("disc_b")]
        real_a, real_b = batch["a"], batch["b"]
        mode = cfg.gan_mode

        # G step (both discriminators frozen).
        opt["gen"].zero_grad(set_to_none=True)
        with frozen(d_a_raw, d_b_raw):
            with amp:
                fake_b = g_ab(real_a)  # (B, Cb, H, W)
                rec_a = g_ba(fake_b)  # (B, Ca, H, W)
                fake_a = g_ba(real_b)
                rec_b = g_ab(fake_a)
                pred_b = d_b_raw(fake_b)
                pred_a = d_a_raw(fake_a)
            g_a2b = adversarial_loss(pred_b, True, mode, for_discriminator=False)
            g_b2a = adversarial_loss(pred_a, True, mode, for_discriminator=False)
            cycle_a = F.l1_loss(rec_a.float(), real_a.float()) * cfg.lambda_a
            cycle_b = F.l1_loss(rec_b.float(), real_b.float()) * cfg.lambda_b
            loss_g = g_a2b + g_b2a + cycle_a + cycle_b
            losses = {"g_a2b": g_a2b, "g_b2a": g_b2a, "cycle_a": cycle_a, "cycle_b": cycle_b}
            if cfg.lambda_identity > 0:
                with amp:
                    idt_b = g_ab(real_b)  # G_a2b should leave a real B image unchanged
                    idt_a = g_ba(real_a)
                loss_idt_b = F.l1_loss(idt_b.float(), real_b.float()) * cfg.lambda_b * cfg.lambda_identity
                loss_idt_a = F.l1_loss(idt_a.float(), real_a.float()) * cfg.lambda_a * cfg.lambda_identity
                loss_g = loss_g + loss_idt_a + loss_idt_b
                losses.update(idt_a=loss_idt_a, idt_b=loss_idt_b)
            scalers.backward("gen", loss_g)
        scalers.step("gen", opt["gen"])

        # D step: fakes drawn from the history pools, detached from the generators.
        opt["disc"].zero_grad(set_to_none=True)
        fake_b_hist = self.pool_b.query(fake_b.to(real_b.dtype))
        fake_a_hist = self.pool_a.query(fake_a.to(real_a.dtype))
        d_b_loss = self._disc_loss(d_b, d_b_raw, real_b, fake_b_hist, amp)
        d_a_loss = self._disc_loss(d_a, d_a_raw, real_a, fake_a_hist, amp)
        scalers.backward("disc", d_a_loss + d_b_loss)
        scalers.step("disc", opt["disc"])
        losses.update(d_a=d_a_loss, d_b=d_b_loss)
        return {r(k): v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        """Columns real_a, fake_b, rec_a, real_b, fake_a, rec_b for the sample grid."""
        g_ab = for_inference(self.nets[self._n("gen_a2b")])
        g_ba = for_inference(self.nets[self._n("gen_b2a")])
        with amp:
            fake_b = g_ab(batch["a"]).float()
            rec_a = g_ba(fake_b).float()
            fake_a = g_ba(batch["b"]).float()
            rec_b = g_ab(fake_a).float()
        return [batch["a"], fake_b, rec_a, batch["b"], fake_a, rec_b]

    def state_dict(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
