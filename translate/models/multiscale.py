"""Multi-scale PatchGAN (Wang et al. 2018, pix2pixHD): the same PatchGAN at several image scales.

The discriminator at scale 1 sees fine detail; the ones at 1/2 and 1/4 (average-pooled inputs)
have a receptive field 2x and 4x larger relative to the image, so they judge global structure
without a deeper network. Every discriminator returns the output of each of its layers, which
the feature-matching loss (:func:`translate.losses.feature_matching_loss`) compares between real
and generated images.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..nn import check_int
from .patchgan import NLayerDiscriminator


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs (:class:`NLayerDiscriminator`), the k-th on the input average-pooled k times.

    Args:
        input_nc: channels of the judged image (pix2pix: input + output channels).
        ndf: channels of the first conv of each PatchGAN.
        n_layers: stride-2 convs of each PatchGAN (3: 70x70 receptive field at its scale).
        norm: "batch", "instance" or "none".
        num_D: number of scales (3: 1, 1/2, 1/4).

    Input:  (B, input_nc, H, W), H and W at least ``3 * 2**n_layers * 2**(num_D - 1)`` for
            every scale to give a non-empty output.
    Output: a list with one entry per scale (finest first); each entry is the list of that
            PatchGAN's layer outputs, the last being its (B, 1, h, w) logits.
    """

    arch = "multiscale"

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_D: int = 3) -> None:
        super().__init__()
        num_D = check_int("num_D", num_D)
        self.config = {"input_nc": input_nc, "ndf": ndf, "n_layers": n_layers, "norm": norm, "num_D": num_D}
        self.discriminators = nn.ModuleList(
            NLayerDiscriminator(input_nc, ndf=ndf, n_layers=n_layers, norm=norm) for _ in range(num_D))
        # 3x3 average pooling with stride 2; padded borders are not counted, so edges stay unbiased.
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def layer_outputs(disc: NLayerDiscriminator, x: torch.Tensor) -> List[torch.Tensor]:
        """Outputs of every layer of a PatchGAN: after each activation, then the logits."""
        feats = []
        for layer in disc.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        feats.append(x)  # the final conv: (B, 1, h, w) logits
        return feats

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        """Score ``x`` (B, input_nc, H, W) at every scale; see the class docstring for the output."""
        out = []
        for k, disc in enumerate(self.discriminators):
            if k:
                x = self.downsample(x)  # (B, C, H / 2**k, W / 2**k)
            out.append(self.layer_outputs(disc, x))
        return out
