"""PatchGAN discriminators (Isola et al., 2017): judge local patches, not whole images.

Both return raw logits, one per patch; the loss function decides how to squash them
("vanilla" uses BCE-with-logits, "lsgan" a squared error, "hinge" a margin).

With the defaults (n_layers=3) each output logit of :class:`NLayerDiscriminator` sees a
70x70 receptive field, and a 256x256 input gives a 30x30 grid of logits.
:class:`PixelDiscriminator` is the 1x1 extreme: one logit per pixel, colour only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import check_int, get_norm_layer


class NLayerDiscriminator(nn.Module):
    """Fully convolutional PatchGAN.

    Layout: 4x4 stride-2 conv + LeakyReLU; ``n_layers - 1`` 4x4 stride-2 convs + norm +
    LeakyReLU (channels ``ndf * min(2**n, 8)``); one 4x4 stride-1 conv + norm +
    LeakyReLU; a 4x4 stride-1 conv to 1 channel.

    Args:
        input_nc: channels of the judged image (pix2pix: input + output channels,
            because it judges the (A, B) pair concatenated).
        ndf: channels of the first conv.
        n_layers: number of stride-2 convs; 3 gives the 70x70 PatchGAN.
        norm: "batch", "instance" or "none".

    Input:  (B, input_nc, H, W), H and W at least ``3 * 2**n_layers`` (24 for n_layers=3).
    Output: (B, 1, h, w) logits, h = H / 2**n_layers - 2 for H a multiple of 2**n_layers.
    """

    arch = "patchgan"

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        ndf = check_int("ndf", ndf)
        n_layers = check_int("n_layers", n_layers)
        norm_layer = get_norm_layer(norm)
        self.config = {"input_nc": input_nc, "ndf": ndf, "n_layers": n_layers, "norm": norm}

        # Batch norm has its own shift, so a conv bias in front of it would be redundant.
        use_bias = norm != "batch"

        # First layer: no norm, so the statistics of the raw image are not washed out.
        layers = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        channels = ndf
        for n in range(1, n_layers):
            out_channels = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(channels, out_channels, 4, stride=2, padding=1, bias=use_bias),
                norm_layer(out_channels),
                nn.LeakyReLU(0.2),
            ]
            channels = out_channels

        # Stride 1 from here on: widen the receptive field without shrinking the grid much.
        out_channels = ndf * min(2**n_layers, 8)
        layers += [
            nn.Conv2d(channels, out_channels, 4, stride=1, padding=1, bias=use_bias),
            norm_layer(out_channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, 1, kernel_size=4, stride=1, padding=1),  # logits
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every patch of ``x``.

        Args:
            x: (B, input_nc, H, W), images in [-1, 1].

        Returns:
            (B, 1, h, w) raw logits (real > fake), no sigmoid.
        """
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: every pixel judged on its own (checks colour, not structure).

    Args:
        input_nc: channels of the judged image.
        ndf: channels of the first 1x1 conv; the second has 2 * ndf.
        norm: "batch", "instance" or "none".

    Input:  (B, input_nc, H, W).
    Output: (B, 1, H, W) logits.
    """

    arch = "pixel"

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        ndf = check_int("ndf", ndf)
        norm_layer = get_norm_layer(norm)
        self.config = {"input_nc": input_nc, "ndf": ndf, "norm": norm}

        use_bias = norm != "batch"
        self.model = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),  # (B, ndf, H, W)
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=use_bias),  # (B, 2ndf, H, W)
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2),
            # Bias follows use_bias here too, as in the reference implementation.
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=use_bias),  # (B, 1, H, W)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every pixel of ``x``.

        Args:
            x: (B, input_nc, H, W), images in [-1, 1].

        Returns:
            (B, 1, H, W) raw logits, no sigmoid.
        """
        return self.model(x)
