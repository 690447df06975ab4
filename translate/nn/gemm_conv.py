"""Stride-2 convolutions of small feature maps computed as one matrix product each.

The innermost levels of a U-Net work on maps of 1 x 1 to 8 x 8 pixels with the largest weights
of the network (512 -> 512 and 1024 -> 512 channels, 4 x 4 kernels: 4 to 8 M weights each). There
the work is tiny and the weights dominate: oneDNN's (transposed) convolution reorders them at
every call, and its backward pass of a 1024 -> 512 transposed convolution at 2 x 2 took as long
in bf16 as in fp32 (about 75 ms forward and backward on one core of a Xeon with AMX), while the
same arithmetic written as ``unfold``/``fold`` around one matrix product took 24-41 ms (fp32) and
30-34 ms (bf16). On larger maps the convolution kernels are faster, so these layers use the
matrix form only while training on maps of at most ``max_pixels`` input pixels; evaluation,
export and tracing always take the ordinary path, so translators and ONNX graphs are unchanged.

Parameters, their names and initialisation are those of ``nn.Conv2d`` / ``nn.ConvTranspose2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_PIXELS = 64  # input maps of at most 8 x 8 pixels take the matrix form while training


def _use_gemm(module: nn.Module, x: torch.Tensor) -> bool:
    # Under torch.compile the plain convolution is left to the compiler (its symbolic shapes
    # cannot decide the map size here, and the compiled graph fuses the small layers anyway).
    return (module.training and x.dim() == 4 and not torch.compiler.is_compiling()
            and x.shape[-2] * x.shape[-1] <= module.max_pixels
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.onnx.is_in_onnx_export())


class GemmConv2d(nn.Conv2d):
    """``nn.Conv2d`` (no groups, no dilation) that trains on small maps as unfold + one matmul."""

    max_pixels = MAX_PIXELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W)
        if not _use_gemm(self, x) or self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros":
            return super().forward(x)
        b, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (B, Cin*kh*kw, L)
        y = torch.matmul(self.weight.flatten(1), cols)  # (B, Cout, L)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1).to(y.dtype)
        return y.view(b, self.out_channels, out_h, out_w)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (no groups, no dilation, no output padding) that trains on small maps
    as one matmul + fold."""

    max_pixels = MAX_PIXELS

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:  # (B, Cin, H, W)
        if (output_size is not None or not _use_gemm(self, x) or self.groups != 1 or self.dilation != (1, 1)
                or self.output_padding != (0, 0)):
            return super().forward(x, output_size)
        b, c_in, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_h, out_w = (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw
        # (B, H*W, Cin) @ (Cin, Cout*kh*kw): the weight is used as stored (no transposed copy)
        cols = torch.matmul(x.reshape(b, c_in, h * w).transpose(1, 2), self.weight.reshape(c_in, -1))
        y = F.fold(cols.transpose(1, 2), (out_h, out_w), self.kernel_size, padding=self.padding, stride=self.stride)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1).to(y.dtype)
        return y  # (B, Cout, out_h, out_w)
