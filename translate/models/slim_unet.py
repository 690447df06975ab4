"""Slim U-Net: the pix2pix U-Net at a fraction of its width, a student for pix2pix teachers.

Multiply-accumulates of a convolution grow with (input channels x output channels), so the
U-Net's cost falls with the square of ``ngf``: ngf 16 does 1/16 of unet_256's work (counted by
:func:`translate.models.complexity.count_macs`; tests/test_models_efficient.py checks it). The
layers, skip connections and the 2**num_downs size multiple are the pix2pix U-Net's; the
defaults differ: ngf 16 and no dropout (a distilled student reproduces a teacher's outputs and
needs no noise source).
"""

from __future__ import annotations

from .unet import UnetGenerator


class SlimUnetGenerator(UnetGenerator):
    """pix2pix U-Net with a narrow default width (``ngf`` 16) and no dropout.

    Args: as :class:`translate.models.UnetGenerator`.

    Input:  (B, input_nc, H, W) in [-1, 1], H and W multiples of ``2 ** num_downs``.
    Output: (B, output_nc, H, W) in [-1, 1] (tanh).
    """

    arch = "slim_unet"

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 16,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__(input_nc, output_nc, num_downs, ngf, norm, use_dropout)
