"""ResNet generator of CycleGAN (Zhu et al., 2017), after Johnson et al.'s style-transfer net.

    stem:   reflect-pad 3, 7x7 conv -> ngf                       (B, ngf,   H,   W)
    down:   two 3x3 stride-2 convs, doubling channels            (B, 4ngf,  H/4, W/4)
    blocks: n_blocks residual blocks at 4 * ngf channels         (B, 4ngf,  H/4, W/4)
    up:     two 3x3 stride-2 transposed convs, halving channels  (B, ngf,   H,   W)
    head:   reflect-pad 3, 7x7 conv -> output_nc, tanh           (B, out,   H,   W)

Parameter order in the state_dict equals the reference implementation's.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import check_bool, check_int, get_norm_layer, run_block

_PADDINGS = ("reflect", "replicate", "zero")


def _padded_conv3x3(channels: int, padding_type: str, bias: bool) -> list[nn.Module]:
    """A size-preserving 3x3 conv; reflect/replicate padding avoids dark borders."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, padding=0, bias=bias)]
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(1), nn.Conv2d(channels, channels, 3, padding=0, bias=bias)]
    return [nn.Conv2d(channels, channels, 3, padding=1, bias=bias)]


class ResnetBlock(nn.Module):
    """``x + F(x)`` with F = conv3x3, norm, ReLU, [dropout], conv3x3, norm.

    Input and output: (B, channels, h, w).
    """

    def __init__(
        self, channels: int, padding_type: str, norm_layer, use_dropout: bool, use_bias: bool
    ) -> None:
        super().__init__()
        layers = _padded_conv3x3(channels, padding_type, use_bias)
        layers += [norm_layer(channels), nn.ReLU()]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += _padded_conv3x3(channels, padding_type, use_bias)
        # No activation after the second norm: the residual sum stays unbounded.
        layers.append(norm_layer(channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # (B, C, h, w)


class ResnetGenerator(nn.Module):
    """CycleGAN generator: downsample by 4, residual blocks, upsample by 4.

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: channels after the stem; the residual blocks run at 4 * ngf.
        norm: "instance" (CycleGAN), "batch" or "none".
        use_dropout: dropout 0.5 inside each residual block.
        n_blocks: number of residual blocks (CycleGAN: 9 at 256x256, 6 at 128x128).
        padding_type: padding inside the residual blocks: "reflect", "replicate" or
            "zero". The stem and head always use reflect padding.

    Input:  (B, input_nc, H, W) in [-1, 1], H and W multiples of 4.
    Output: (B, output_nc, H, W) in [-1, 1] (tanh).
    """

    arch = "resnet"

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        input_nc = check_int("input_nc", input_nc)
        output_nc = check_int("output_nc", output_nc)
        ngf = check_int("ngf", ngf)
        norm_layer = get_norm_layer(norm)
        use_dropout = check_bool("use_dropout", use_dropout)
        n_blocks = check_int("n_blocks", n_blocks, minimum=0)
        if padding_type not in _PADDINGS:
            raise ValueError(
                f"unknown padding_type {padding_type!r}; valid: {', '.join(_PADDINGS)}"
            )
        self.config = {
            "input_nc": input_nc,
            "output_nc": output_nc,
            "ngf": ngf,
            "norm": norm,
            "use_dropout": use_dropout,
            "n_blocks": n_blocks,
            "padding_type": padding_type,
        }
        # Two stride-2 steps down and two up: other sizes would come back resized.
        self.size_multiple = 4
        self.grad_checkpoint = False  # recompute each block in the backward pass (translate.nn.checkpointing)

        # Batch norm has its own shift, so a conv bias in front of it would be redundant.
        use_bias = norm != "batch"

        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(),
        )

        down = []
        for mult in (1, 2):
            down += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(),
            ]
        self.down = nn.Sequential(*down)

        self.blocks = nn.Sequential(
            *[
                ResnetBlock(ngf * 4, padding_type, norm_layer, use_dropout, use_bias)
                for _ in range(n_blocks)
            ]
        )

        up = []
        for mult in (4, 2):
            # output_padding=1 makes each step exactly double the size (h -> 2h).
            up += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                    bias=use_bias,
                ),
                norm_layer(ngf * mult // 2),
                nn.ReLU(),
            ]
        self.up = nn.Sequential(*up)

        self.head = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
            nn.Tanh(),
        )

    def feature_channels(self) -> list[int]:
        """Channels of each encoder feature point that ``forward(x, layers)`` can return.

        Feature points, in order: 0 the input image, 1 the stem output, 2 and 3 the outputs of
        the two stride-2 downsampling convs (before their norm), 4 + k the output of residual
        block k. CUT's default layers (input, the two downsampling convs, residual blocks 1 and
        5) are ``0, 2, 3, 4, 8``.
        """
        ngf = self.config["ngf"]
        return [self.config["input_nc"], ngf, 2 * ngf, 4 * ngf] + [4 * ngf] * self.config["n_blocks"]

    def _features(self, x: torch.Tensor, layers, stop_early: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder features at ``layers`` (feature point indices) and the last encoder output
        computed: the residual blocks' output, or with ``stop_early`` the last requested point."""
        wanted, last = set(layers), max(layers)
        feats: dict[int, torch.Tensor] = {}
        if 0 in wanted:
            feats[0] = x  # (B, input_nc, H, W)
        points = [self.stem] + [self.down[i] for i in range(len(self.down))] + list(self.blocks)
        # feature point of each module's output: stem -> 1, down conv k -> 2 + k, block k -> 4 + k
        point_of = {0: 1, 1: 2, 4: 3}
        point_of.update({7 + k: 4 + k for k in range(len(self.blocks))})
        h = x
        for i, module in enumerate(points):
            h = module(h)
            p = point_of.get(i)
            if p is not None and p in wanted:
                feats[p] = h
                if stop_early and p == last:
                    break
        return [feats[p] for p in layers], h

    def forward(self, x: torch.Tensor, layers=None, encode_only: bool = False):
        """Translate a batch of images.

        Args:
            x: (B, input_nc, H, W) in [-1, 1]; H, W multiples of 4.
            layers: feature point indices (see :meth:`feature_channels`); when given, the
                encoder features at those points are returned too.
            encode_only: with ``layers``, return only the features and stop after the last one.

        Returns:
            (B, output_nc, H, W) in [-1, 1]; with ``layers``, ``(output, features)``, or the
            list of features (B, C_l, H_l, W_l) when ``encode_only``.
        """
        height, width = x.shape[-2], x.shape[-1]
        # Skipped while tracing for export: the sizes are then symbolic and the check
        # would only be frozen into the trace (with a TracerWarning).
        if not torch.jit.is_tracing() and (
            height % self.size_multiple or width % self.size_multiple
        ):
            raise ValueError(
                f"ResnetGenerator needs height and width that are multiples of "
                f"{self.size_multiple}; got {height}x{width} (pad the input first)"
            )
        if layers is not None:
            bad = [p for p in layers if not 0 <= p < len(self.feature_channels())]
            if bad or not layers:
                raise ValueError(f"feature layers must be in 0..{len(self.feature_channels()) - 1}, got {list(layers)}")
            if encode_only:
                return self._features(x, layers, stop_early=True)[0]
            feats, x = self._features(x, layers, stop_early=False)
            return self.head(self.up(x)), feats
        x = run_block(self, self.stem, x)  # (B, ngf, H, W)
        x = run_block(self, self.down, x)  # (B, 4 * ngf, H/4, W/4)
        for block in self.blocks:
            x = run_block(self, block, x)  # (B, 4 * ngf, H/4, W/4)
        x = run_block(self, self.up, x)  # (B, ngf, H, W)
        return run_block(self, self.head, x)  # (B, output_nc, H, W)
