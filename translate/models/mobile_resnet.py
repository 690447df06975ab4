"""MobileNet-style ResNet generator: CycleGAN's layout with depthwise-separable residual blocks.

The layout is the ResNet generator's (:mod:`translate.models.resnet`): a 7x7 stem, two stride-2
convolutions down, ``n_blocks`` residual blocks at 4 * ngf channels, two transposed convolutions
up and a 7x7 head. Each residual block replaces its two dense 3x3 convolutions with a 3x3
depthwise convolution (one filter per channel) followed by a 1x1 pointwise convolution (Howard et
al. 2017, MobileNets), which divides the block's multiply-accumulates by about
``9 C / (9 + C)`` (~8x at C = 256). GAN Compression (Li et al. 2020) uses the same block for its
CycleGAN and pix2pix students.

    stem:   reflect-pad 3, 7x7 conv -> ngf                        (B, ngf,  H,   W)
    down:   two 3x3 stride-2 convs, doubling channels             (B, 4ngf, H/4, W/4)
    blocks: n_blocks x [dw3x3, pw1x1, norm, ReLU, dw3x3, pw1x1, norm] + skip
    up:     two 3x3 stride-2 transposed convs, halving channels   (B, ngf,  H,   W)
    head:   reflect-pad 3, 7x7 conv -> output_nc, tanh            (B, out,  H,   W)
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import check_bool, check_int, get_norm_layer


def _separable_conv3x3(channels: int, bias: bool) -> list[nn.Module]:
    """Reflect-padded 3x3 depthwise conv then 1x1 pointwise conv; (B, C, h, w) -> same."""
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(channels, channels, 3, padding=0, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=bias),
    ]


class SeparableResnetBlock(nn.Module):
    """``x + F(x)`` with F = separable conv, norm, ReLU, [dropout], separable conv, norm."""

    def __init__(self, channels: int, norm_layer, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers = _separable_conv3x3(channels, use_bias) + [norm_layer(channels), nn.ReLU()]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += _separable_conv3x3(channels, use_bias) + [norm_layer(channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # (B, C, h, w)


class MobileResnetGenerator(nn.Module):
    """ResNet generator with depthwise-separable residual blocks (a cheap student).

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: channels after the stem; the residual blocks run at 4 * ngf.
        norm: "instance", "batch" or "none".
        use_dropout: dropout 0.5 inside each residual block.
        n_blocks: number of residual blocks.

    Input:  (B, input_nc, H, W) in [-1, 1], H and W multiples of 4.
    Output: (B, output_nc, H, W) in [-1, 1] (tanh).
    """

    arch = "mobile_resnet"

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 32, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9) -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        output_nc = check_int("output_nc", output_nc)
        ngf = check_int("ngf", ngf)
        norm_layer = get_norm_layer(norm)
        use_dropout = check_bool("use_dropout", use_dropout)
        n_blocks = check_int("n_blocks", n_blocks, minimum=0)
        self.config = {"input_nc": input_nc, "output_nc": output_nc, "ngf": ngf, "norm": norm,
                       "use_dropout": use_dropout, "n_blocks": n_blocks}
        self.size_multiple = 4
        use_bias = norm != "batch"  # batch norm has its own shift

        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias),
                                  norm_layer(ngf), nn.ReLU())
        down = []
        for mult in (1, 2):
            down += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                     norm_layer(ngf * mult * 2), nn.ReLU()]
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(*[SeparableResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias)
                                      for _ in range(n_blocks)])
        up = []
        for mult in (4, 2):
            up += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                      bias=use_bias),
                   norm_layer(ngf * mult // 2), nn.ReLU()]
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_nc, H, W) in [-1, 1], H and W multiples of 4 -> (B, output_nc, H, W) in [-1, 1]."""
        height, width = x.shape[-2], x.shape[-1]
        if not torch.jit.is_tracing() and (height % self.size_multiple or width % self.size_multiple):
            raise ValueError(f"MobileResnetGenerator needs height and width that are multiples of "
                             f"{self.size_multiple}; got {height}x{width} (pad the input first)")
        x = self.stem(x)  # (B, ngf, H, W)
        x = self.down(x)  # (B, 4 * ngf, H/4, W/4)
        x = self.blocks(x)  # (B, 4 * ngf, H/4, W/4)
        x = self.up(x)  # (B, ngf, H, W)
        return self.head(x)  # (B, output_nc, H, W)
