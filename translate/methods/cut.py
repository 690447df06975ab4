"""CUT and FastCUT (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image
Translation"): one generator, a PatchGAN discriminator, and PatchNCE on the generator's encoder.

PatchNCE: the source image and its translation go through the generator's encoder; at each
chosen encoder layer the same random patch locations are read from both, projected by a small
per-layer MLP head (two linear layers, L2-normalised output) and the translated patch at each
location must pick out the source patch at the same location among the other locations of the
same image (:func:`translate.losses.patch_nce_loss`). The heads are built here, at construction,
from the generator's known channel counts (the paper's code creates them lazily on the first
batch), so optimizers, resume, DDP and ``train_state`` treat them like any other network.

Update order in one step (the paper's code steps D first; this project's methods step G first,
with D frozen, and D then sees the same fakes detached):
    1. fake = G(real_a) (and idt_b = G(real_b) with identity NCE), with the encoder features of
       the real images from the same forward pass
    2. G step (G and the heads, D frozen): lambda_gan * LSGAN(D(fake_b)) + lambda_nce * PatchNCE
       averaged over layers (the mean of PatchNCE(real_a, fake_b) and PatchNCE(real_b, idt_b)
       with identity NCE)
    3. D step: real_b as real, fake_b.detach() as fake (no image pool)

FastCUT = lambda_nce 10, no identity NCE, and flip equivariance: with probability 1/2 per step
the input is flipped horizontally before the generator, and the translated features are
flipped back before patches are compared with the unflipped source.

Net names name dataset domains: direction a2b trains ``gen_a2b``, its heads ``proj_a2b`` and
``disc_b``; with direction b2a every name is swapped. Only the generator is exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import options as o
from ..options import DIRECTIONS, ConfigError, ModelConfig, option, swap_domains
from ..losses import adversarial_loss, patch_nce_loss
from ..models import build_discriminator, build_generator
from ..nn import init_weights
from ..nn.inference import for_inference
from ..runtime import Scalers
from .common import adam, discriminator_kwargs, discriminator_loss, frozen, generator_kwargs
from .registry import BenchSpec, MethodInfo, register_method


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
class CUTConfig(ModelConfig):
    """CUT networks and losses (defaults follow Park et al. 2020, contrastive unpaired translation)."""

    netG: str = option("resnet_9blocks", choices=("resnet_6blocks", "resnet_9blocks", "resnet"), flag="netG",
                       help="generator: resnet_6blocks, resnet_9blocks, resnet (depth --n-blocks); PatchNCE "
                            "reads its encoder")
    n_blocks: int = o.n_blocks()
    netD: str = o.net_d()
    n_layers_D: int = o.n_layers_d()
    ngf: int = o.ngf()
    ndf: int = o.ndf()
    norm: str = o.norm("instance")
    use_dropout: bool = o.dropout(False)
    init_type: str = o.init_type("xavier")
    init_gain: float = o.init_gain()
    gan_mode: str = o.gan_mode("lsgan")
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
    lambda_gp: float = o.lambda_gp()

    def check(self, data: Any) -> None:
        """Encoder layers that the generator has; identity NCE only when domain B fits the generator."""
        n_blocks = {"resnet_6blocks": 6, "resnet_9blocks": 9}.get(self.netG, self.n_blocks)
        layers = parse_layers(self.nce_layers)
        if max(layers) > 3 + n_blocks:
            raise ConfigError(f"nce_layers {self.nce_layers!r}: {self.netG} with {n_blocks} blocks has encoder "
                              f"points 0..{3 + n_blocks}")
        if self.nce_temperature <= 0:
            raise ConfigError(f"nce_temperature must be positive, got {self.nce_temperature}")
        if self.nce_idt and data.input_nc != data.output_nc:
            raise ConfigError("identity PatchNCE translates domain-B images, so it needs input_nc == output_nc "
                              f"(got {data.input_nc} and {data.output_nc}); use --no-nce-idt")


@dataclass
class FastCUTConfig(CUTConfig):
    """FastCUT: CUT with lambda_NCE 10, no identity PatchNCE and flip-equivariance augmentation."""

    lambda_nce: float = option(10.0, minimum=0.0, help="weight of the PatchNCE loss")
    nce_idt: bool = option(False, flag="nce-idt", help="identity PatchNCE on domain-B images (--no-nce-idt: none)")
    flip_equivariance: bool = option(True, help="translate a horizontally flipped input at random and match "
                                                "patches after flipping back")


class ProjectionHeads(nn.Module):
    """One two-layer MLP per PatchNCE layer: Linear(C_l, units), ReLU, Linear(units, units),
    then L2 normalisation of each patch vector.

    Args:
        channels: feature channels of each layer, in order.
        units: width of both linear layers (256 in the paper).
    """

    def __init__(self, channels: Sequence[int], units: int = 256):
        super().__init__()
        self.config = {"channels": list(channels), "units": units}
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units)) for c in channels)

    def forward(self, patches: List[torch.Tensor]) -> List[torch.Tensor]:
        """``patches[l]`` (B, P, C_l) -> (B, P, units), L2-normalised along the last axis."""
        return [F.normalize(mlp(p).float(), dim=-1, eps=1e-7) for mlp, p in zip(self.mlps, patches)]


def sample_locations(feats: List[torch.Tensor], num_patches: int, generator: torch.Generator) -> List[torch.Tensor]:
    """Random patch locations per layer: indices into the flattened H_l * W_l grid, at most
    ``num_patches`` and all of them when the layer is smaller; the same for every image."""
    out = []
    for f in feats:
        hw = f.shape[-2] * f.shape[-1]
        ids = torch.randperm(hw, generator=generator)[:min(num_patches, hw)]
        out.append(ids.to(f.device, non_blocking=True))
    return out


def gather_patches(feats: List[torch.Tensor], locations: List[torch.Tensor]) -> List[torch.Tensor]:
    """Feature vectors at ``locations``: (B, C_l, H_l, W_l) -> (B, P_l, C_l) per layer."""
    return [f.flatten(2).index_select(2, ids).transpose(1, 2) for f, ids in zip(feats, locations)]


@register_method
class CUT(MethodInfo):
    """Networks ``gen_a2b``, ``proj_a2b`` (PatchNCE heads), ``disc_b`` and the train step.

    Args:
        cfg: model section of the run configuration (:class:`CUTConfig`).
        input_nc, output_nc: channels of the input domain and the output domain.
        device: where the networks live.
        seed: seed of the private random streams (patch locations, flips), saved for resume.
        direction: "a2b" (the loader's ``"a"`` images are domain A) or "b2a".
    """

    name = "cut"
    title = "CUT"
    config_class = CUTConfig
    help = "unpaired, one-sided: one generator + PatchNCE (trainA/, trainB/)"
    data = "unpaired"  # unpaired domains A and B
    tiny = {"netG": "resnet_6blocks", "head_units": 16}
    # iterations, as CycleGAN's row (docs/cut.md compares them); the paper's layers with the last
    # block of the 2-block resnet of --quick
    bench = BenchSpec(counts="iterations", quick={"nce_layers": "0,2,3,4,5"}, compare_with="cyclegan")
    optimizer_names = ("gen", "disc")

    def __init__(self, cfg: CUTConfig, input_nc: int, output_nc: int, device: torch.device, seed: int = 0,
                 direction: str = "a2b"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.cfg = cfg
        self.device = device
        self.direction = direction
        n = (lambda name: name) if direction == "a2b" else swap_domains
        self.gen_name, self.proj_name, self.disc_name = n("gen_a2b"), n("proj_a2b"), n("disc_b")
        self.layers = parse_layers(cfg.nce_layers)
        gen = build_generator(cfg.netG, **generator_kwargs(cfg, input_nc, output_nc))
        channels = gen.feature_channels()
        if max(self.layers) >= len(channels):
            raise ValueError(f"nce_layers {cfg.nce_layers!r}: the generator has encoder points 0..{len(channels) - 1}")
        proj = ProjectionHeads([channels[i] for i in self.layers], cfg.head_units)
        disc = build_discriminator(cfg.netD, **discriminator_kwargs(cfg, output_nc))
        for net in (gen, proj, disc):
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self.gen_name: gen, self.proj_name: proj, self.disc_name: disc}).to(device)
        self.train_nets = dict(self.nets)  # what train_step calls: the nets, or their DDP wrappers
        self.generators = {direction: self.gen_name}  # the translator exports the generator only
        self.gen_step_nets = (self.gen_name, self.proj_name)  # what the "gen" optimizer trains
        self.rng = torch.Generator().manual_seed(seed * 2 + 1)  # patch locations and flips

    @property
    def size_multiple(self) -> int:
        return self.nets[self.gen_name].size_multiple

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        """"gen": generator and heads (Adam keeps per-parameter state, so one optimizer equals the
        paper's two with the same settings); "disc": the discriminator."""
        betas = (loop.beta1, loop.beta2)
        gen = list(self.nets[self.gen_name].parameters()) + list(self.nets[self.proj_name].parameters())
        return {"gen": adam(gen, loop.lr, betas, self.device),
                "disc": adam(self.nets[self.disc_name].parameters(), loop.lr, betas, self.device)}

    def _nce(self, proj, source_feats: List[torch.Tensor], target_feats: List[torch.Tensor]) -> torch.Tensor:
        """PatchNCE averaged over layers: target patches (queries, trained) against source patches
        at the same locations (keys, no gradient)."""
        locations = sample_locations(source_feats, self.cfg.num_patches, self.rng)
        with torch.no_grad():
            keys = proj(gather_patches([f.detach() for f in source_feats], locations))
        queries = proj(gather_patches(target_feats, locations))
        losses = [patch_nce_loss(q, k, self.cfg.nce_temperature) for q, k in zip(queries, keys)]
        return torch.stack(losses).mean()

    def _disc_loss(self, disc, disc_raw, real: torch.Tensor, fake: torch.Tensor, amp) -> torch.Tensor:
        return discriminator_loss(disc, disc_raw, real, fake, amp, self.cfg.gan_mode, self.cfg.lambda_gp)[0]

    def train_step(self, batch, opt, scalers: Scalers, amp) -> Dict[str, torch.Tensor]:
        """One update of the generator with its heads, then of the discriminator; returns detached losses."""
        cfg, layers = self.cfg, self.layers
        gen, proj, disc = (self.train_nets[k] for k in (self.gen_name, self.proj_name, self.disc_name))
        disc_raw = self.nets[self.disc_name]  # G step: D is frozen, so it is called without DDP
        real_a, real_b = batch["a"], batch["b"]
        bsz = real_a.shape[0]
        use_idt = cfg.nce_idt and cfg.lambda_nce > 0
        real = torch.cat([real_a, real_b], 0) if use_idt else real_a  # (B or 2B, C, H, W)
        flipped = cfg.flip_equivariance and bool(torch.rand((), generator=self.rng) < 0.5)
        gen_in = torch.flip(real, [3]) if flipped else real
        mode = cfg.gan_mode

        # G step (D frozen): adversarial + PatchNCE; the heads train with the generator.
        opt["gen"].zero_grad(set_to_none=True)
        with frozen(disc_raw):
            with amp:
                fake, src_feats = gen(gen_in, layers)  # (B or 2B, Cb, H, W) and the encoder features of gen_in
                fake_b = fake[:bsz]
                pred = disc_raw(fake_b)
            g_gan = adversarial_loss(pred, True, mode, for_discriminator=False) * cfg.lambda_gan
            losses = {"g_gan": g_gan}
            loss_g = g_gan
            if cfg.lambda_nce > 0:
                with amp:
                    tgt_feats = gen(fake, layers, encode_only=True)
                if flipped:
                    # G saw the flipped input: its translation's features are flipped back and
                    # compared with the features of the unflipped source (the keys carry no
                    # gradient, so that encoder pass needs none).
                    tgt_feats = [torch.flip(f, [3]) for f in tgt_feats]
                    with torch.no_grad(), amp:
                        src_feats = gen(real, layers, encode_only=True)
                with amp:
                    nce = self._nce(proj, [f[:bsz] for f in src_feats], [f[:bsz] for f in tgt_feats])
                losses["nce"] = nce
                if use_idt:
                    with amp:
                        nce_idt = self._nce(proj, [f[bsz:] for f in src_feats], [f[bsz:] for f in tgt_feats])
                    losses["nce_idt"] = nce_idt
                    nce = 0.5 * (nce + nce_idt)
                loss_g = loss_g + cfg.lambda_nce * nce
            scalers.backward("gen", loss_g)
        scalers.step("gen", opt["gen"])

        # D step: real domain-B images against the detached fakes.
        opt["disc"].zero_grad(set_to_none=True)
        d_b = self._disc_loss(disc, disc_raw, real_b, fake_b.detach().to(real_b.dtype), amp)
        scalers.backward("disc", d_b)
        scalers.step("disc", opt["disc"])
        losses["d_b"] = d_b
        r = (lambda name: name) if self.direction == "a2b" else swap_domains
        return {r(k): v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        """Columns real_a, fake_b, real_b, idt_b (the generator applied to domain B) for the grid."""
        gen = for_inference(self.nets[self.gen_name])
        with amp:
            fake_b = gen(batch["a"]).float()
            idt_b = gen(batch["b"]).float() if batch["b"].shape[1] == batch["a"].shape[1] else None
        columns = [batch["a"], fake_b, batch["b"]]
        return columns + ([idt_b] if idt_b is not None else [])

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["rng"])


@register_method
class FastCUT(CUT):
    """FastCUT: the CUT networks and step with the FastCUT defaults of :class:`FastCUTConfig`
    (lambda_nce 10, no identity NCE, flip equivariance)."""

    name = "fastcut"
    title = "FastCUT"
    config_class = FastCUTConfig
    help = "unpaired, one-sided: CUT without identity NCE, faster"
