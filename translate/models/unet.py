"""U-Net generator of pix2pix (Isola et al., 2017), written as two flat lists of layers.

The reference implementation nests "skip connection blocks" recursively. Here the same
network is unrolled: an encoder of ``num_downs`` stride-2 convolutions and a decoder of
``num_downs`` stride-2 transposed convolutions, where each decoder step after the first
reads the matching encoder feature concatenated in front of the previous decoder output.
Parameters, their order in the state_dict, and the computation equal the reference.

Level ``k`` (0 = outermost) works at channel width ``c[k] = ngf * min(2**k, 8)``:

    down[k]: x -> c[k] channels at H / 2**(k+1)
    up[k]:   c[k] (innermost) or 2*c[k] (skip + previous) -> c[k-1] channels (output_nc for k=0)

A note on the reference: it applies LeakyReLU in place to each block's input, so its
skip branch carries LeakyReLU(x) rather than x. The only consumer of that skip is the
decoder's ReLU, and ReLU(LeakyReLU(x)) == ReLU(x) in value and gradient, so using the
un-activated x (as here) gives the same network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import check_bool, check_int, get_norm_layer, run_block
from ..nn.gemm_conv import GemmConv2d, GemmConvTranspose2d


class UnetGenerator(nn.Module):
    """pix2pix U-Net: encoder-decoder with skip connections at every resolution.

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        num_downs: number of stride-2 downsamplings (>= 5). 8 turns 256x256 into 1x1 at
            the bottleneck ("unet_256"); 7 does the same for 128x128 ("unet_128").
        ngf: channels after the first convolution; deeper levels use up to 8 * ngf.
        norm: "batch", "instance" or "none" (see :func:`translate.nn.get_norm_layer`).
        use_dropout: dropout 0.5 in the ``num_downs - 5`` decoder steps just outside the
            bottleneck. pix2pix keeps it on at test time too as its source of noise;
            this module follows ``train()``/``eval()`` like any other.

    Input:  (B, input_nc, H, W) in [-1, 1], H and W multiples of ``size_multiple``.
    Output: (B, output_nc, H, W) in [-1, 1] (tanh).
    """

    arch = "unet"

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
    ) -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        output_nc = check_int("output_nc", output_nc)
        # Below 5 levels there is no room for the fixed ngf -> 8*ngf channel ramp.
        num_downs = check_int("num_downs", num_downs, minimum=5)
        ngf = check_int("ngf", ngf)
        norm_layer = get_norm_layer(norm)
        use_dropout = check_bool("use_dropout", use_dropout)
        self.config = {
            "input_nc": input_nc,
            "output_nc": output_nc,
            "num_downs": num_downs,
            "ngf": ngf,
            "norm": norm,
            "use_dropout": use_dropout,
        }
        # The encoder halves H and W num_downs times, and the decoder must land exactly
        # on the encoder sizes to concatenate with them.
        self.size_multiple = 2**num_downs
        self.grad_checkpoint = False  # recompute each level in the backward pass (translate.nn.checkpointing)

        # Batch norm has its own shift, so a conv bias in front of it would be redundant.
        use_bias = norm != "batch"
        widths = [ngf * min(2**k, 8) for k in range(num_downs)]  # c[k] per level
        innermost = num_downs - 1

        # Encoder, outermost first. Every level but the first starts with the activation
        # of the previous level's output (pre-activation, as in the reference).
        down = []
        for k in range(num_downs):
            in_ch = input_nc if k == 0 else widths[k - 1]
            # nn.Conv2d that trains on the small inner maps as one matrix product (translate.nn.gemm_conv)
            conv = GemmConv2d(in_ch, widths[k], kernel_size=4, stride=2, padding=1, bias=use_bias)
            if k == 0:
                layers = [conv]
            elif k == innermost:
                # No norm at the bottleneck: at 256x256 input it is 1x1, where batch
                # statistics of a single image would be degenerate.
                layers = [nn.LeakyReLU(0.2), conv]
            else:
                layers = [nn.LeakyReLU(0.2), conv, norm_layer(widths[k])]
            down.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)

        # Decoder, in execution order: innermost level first, outermost last.
        up = []
        for k in reversed(range(num_downs)):
            # The bottleneck sees only its own features; every other level sees the
            # encoder skip concatenated with the decoder output from below.
            in_ch = widths[k] if k == innermost else 2 * widths[k]
            if k == 0:
                # Last layer: always with bias, no norm, tanh to reach [-1, 1].
                conv = GemmConvTranspose2d(in_ch, output_nc, kernel_size=4, stride=2, padding=1)
                layers = [nn.ReLU(), conv, nn.Tanh()]
            else:
                out_ch = widths[k - 1]
                conv = GemmConvTranspose2d(
                    in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=use_bias
                )
                layers = [nn.ReLU(), conv, norm_layer(out_ch)]
                # Dropout in the 8*ngf-wide levels between the bottleneck and level 4.
                if use_dropout and 4 <= k < innermost:
                    layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate a batch of images.

        Args:
            x: (B, input_nc, H, W) in [-1, 1]; H, W multiples of ``size_multiple``.

        Returns:
            (B, output_nc, H, W) in [-1, 1].
        """
        height, width = x.shape[-2], x.shape[-1]
        # Skipped while tracing for export: the sizes are then symbolic and the check
        # would only be frozen into the trace (with a TracerWarning).
        if not torch.jit.is_tracing() and (
            height % self.size_multiple or width % self.size_multiple
        ):
            raise ValueError(
                f"UnetGenerator with num_downs={len(self.down)} needs height and width that are "
                f"multiples of {self.size_multiple}; got {height}x{width} (pad the input first)"
            )

        skips = []
        for down in self.down:
            x = run_block(self, down, x)  # (B, c[k], H / 2**(k+1), W / 2**(k+1))
            skips.append(x)

        # x is now the bottleneck, (B, c[-1], H / 2**num_downs, W / 2**num_downs).
        for i, up in enumerate(self.up):
            if i > 0:
                # Skip first, then the upsampled features: (B, 2 * c[k], h, w).
                x = torch.cat([skips[-1 - i], x], dim=1)
            x = run_block(self, up, x)  # (B, c[k-1] or output_nc, 2h, 2w)
        return x
