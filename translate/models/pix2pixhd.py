"""pix2pixHD generator (Wang et al. 2018): a global generator and an optional local enhancer.

Global generator G1 (``n_downsampling`` = 4 by default):

    stem:   reflect-pad 3, 7x7 conv -> ngf_g                          (B, ngf_g,        H,      W)
    down:   n_downsampling 3x3 stride-2 convs, doubling channels       (B, ngf_g * 2**n, H/2**n, W/2**n)
    blocks: n_blocks residual blocks                                   (B, ngf_g * 2**n, H/2**n, W/2**n)
    up:     n_downsampling 3x3 stride-2 transposed convs, halving      (B, ngf_g,        H,      W)
    head:   reflect-pad 3, 7x7 conv -> output_nc, tanh                 (B, out,          H,      W)

Local enhancer G2 (``n_local_enhancers=1``): G1, with ``ngf_g = 2 * ngf``, runs on the input
average-pooled to half size; its last features (without its head) are added to G2's own
downsampled features of the full-size input, then G2's residual blocks and upsampling give the
output. Training is coarse to fine: first G1 alone at half resolution (:meth:`forward_global`),
then both together (:meth:`forward`).

Norm "instance", no dropout, conv biases everywhere, as in the reference code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import check_int, get_norm_layer, run_block
from .resnet import ResnetBlock


def _stem(input_nc: int, ngf: int, norm_layer) -> list:
    return [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm_layer(ngf), nn.ReLU()]


def _down(cin: int, norm_layer) -> list:
    return [nn.Conv2d(cin, cin * 2, 3, stride=2, padding=1), norm_layer(cin * 2), nn.ReLU()]


def _up(cin: int, norm_layer) -> list:
    # output_padding=1: each step exactly doubles the size (h -> 2h)
    return [nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1),
            norm_layer(cin // 2), nn.ReLU()]


def _head(ngf: int, output_nc: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh())


class GlobalGenerator(nn.Module):
    """G1: downsample ``n_downsampling`` times, residual blocks, upsample back; see the module docstring.

    :meth:`features` returns the output before the head (what the local enhancer adds to its own).
    """

    def __init__(self, input_nc: int, output_nc: int, ngf: int, n_downsampling: int, n_blocks: int,
                 norm: str) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        segments = [_stem(input_nc, ngf, norm_layer)]
        segments += [_down(ngf * 2**i, norm_layer) for i in range(n_downsampling)]
        width = ngf * 2**n_downsampling
        segments += [[ResnetBlock(width, "reflect", norm_layer, False, True)] for _ in range(n_blocks)]
        segments += [_up(ngf * 2**i, norm_layer) for i in range(n_downsampling, 0, -1)]
        self.body = nn.Sequential(*[layer for segment in segments for layer in segment])
        self.ends = [sum(map(len, segments[:k + 1])) for k in range(len(segments))]  # block boundaries in body
        self.head = _head(ngf, output_nc)
        self.grad_checkpoint = False  # recompute each block in the backward pass (translate.nn.checkpointing)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        start = 0
        for end in self.ends:  # stem, downsamplings, residual blocks, upsamplings
            x = run_block(self, self.body[start:end], x)
            start = end
        return x  # (B, ngf, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_block(self, self.head, self.features(x))  # (B, output_nc, H, W)


class Pix2PixHDGenerator(nn.Module):
    """The pix2pixHD generator: G1 alone, or G1 inside a local enhancer G2.

    Args:
        input_nc: channels of the input (class-ID inputs: label_nc one-hot channels, + 1 for
            instance boundaries).
        output_nc: channels of the output image.
        ngf: width of the outermost layers (G2's when there is a local enhancer; G1 then has
            ``2 * ngf``).
        n_downsample_global: stride-2 downsamplings of G1 (4 in the paper).
        n_blocks_global: residual blocks of G1 (9).
        n_local_enhancers: 0 (G1 only) or 1 (G2 around G1).
        n_blocks_local: residual blocks of G2 (3).
        norm: "instance" (paper), "batch" or "none".

    Input:  (B, input_nc, H, W), H and W multiples of ``size_multiple``
            (2**(n_downsample_global + n_local_enhancers)).
    Output: (B, output_nc, H, W) in [-1, 1].
    """

    arch = "pix2pixhd"

    def __init__(self, input_nc: int = 36, output_nc: int = 3, ngf: int = 64, n_downsample_global: int = 4,
                 n_blocks_global: int = 9, n_local_enhancers: int = 0, n_blocks_local: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        output_nc = check_int("output_nc", output_nc)
        ngf = check_int("ngf", ngf)
        n_downsample_global = check_int("n_downsample_global", n_downsample_global)
        n_blocks_global = check_int("n_blocks_global", n_blocks_global, minimum=0)
        n_local_enhancers = check_int("n_local_enhancers", n_local_enhancers, minimum=0)
        n_blocks_local = check_int("n_blocks_local", n_blocks_local, minimum=0)
        if n_local_enhancers > 1:
            raise ValueError(f"n_local_enhancers must be 0 or 1, got {n_local_enhancers}")
        self.config = {"input_nc": input_nc, "output_nc": output_nc, "ngf": ngf,
                       "n_downsample_global": n_downsample_global, "n_blocks_global": n_blocks_global,
                       "n_local_enhancers": n_local_enhancers, "n_blocks_local": n_blocks_local, "norm": norm}
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        self.global_multiple = 2**n_downsample_global  # what forward_global needs
        self.n_local_enhancers = n_local_enhancers
        ngf_global = ngf * 2**n_local_enhancers
        self.global_net = GlobalGenerator(input_nc, output_nc, ngf_global, n_downsample_global, n_blocks_global, norm)
        if n_local_enhancers:
            norm_layer = get_norm_layer(norm)
            self.local_down = nn.Sequential(*_stem(input_nc, ngf, norm_layer), *_down(ngf, norm_layer))
            self.local_up = nn.Sequential(
                *[ResnetBlock(2 * ngf, "reflect", norm_layer, False, True) for _ in range(n_blocks_local)],
                *_up(2 * ngf, norm_layer))
            self.local_head = _head(ngf, output_nc)
        # 3x3 average pooling with stride 2 (padded borders not counted): G1's half-size input.
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.grad_checkpoint = False  # the local enhancer's parts; G1 has its own switch

    def _check(self, x: torch.Tensor, multiple: int) -> None:
        h, w = x.shape[-2:]
        if not torch.jit.is_tracing() and (h % multiple or w % multiple):
            raise ValueError(f"Pix2PixHDGenerator needs height and width that are multiples of {multiple}; "
                             f"got {h}x{w} (pad the input first)")

    def forward_global(self, x: torch.Tensor) -> torch.Tensor:
        """G1 alone on ``x`` (B, input_nc, h, w): the coarse phase of training (at half resolution)."""
        self._check(x, self.global_multiple)
        return self.global_net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (B, input_nc, H, W) -> (B, output_nc, H, W) in [-1, 1]."""
        self._check(x, self.size_multiple)
        if not self.n_local_enhancers:
            return self.global_net(x)
        coarse = self.global_net.features(self.downsample(x))  # (B, 2 ngf, H/2, W/2)
        fine = run_block(self, self.local_down, x)  # (B, 2 ngf, H/2, W/2)
        return run_block(self, self.local_head, run_block(self, self.local_up, fine + coarse))  # (B, output_nc, H, W)
