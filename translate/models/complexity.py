"""Cost of a network: parameters and multiply-accumulates (MACs) of one forward pass.

MACs are counted for the layers that do the arithmetic (convolutions, transposed convolutions,
linear layers) by running the network once on a zero input with forward hooks; norms,
activations and additions (a few percent at most) are left out, as in the GAN Compression and
MobileNet papers. FLOPs are about 2 x MACs.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn


def count_params(net: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``net``."""
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``net`` on one input of ``input_shape``.

    Args:
        net: any module; it is run once in eval mode on zeros (its mode is restored).
        input_shape: (C, H, W) of one image (or (B, C, H, W); the count is per batch then).

    Returns:
        MACs of the Conv2d, ConvTranspose2d and Linear layers.
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(f"input_shape must be (C, H, W) or (B, C, H, W), got {tuple(input_shape)}")
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.ConvTranspose2d):
            # every input pixel scatters a kernel into out_channels / groups outputs
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += inputs[0].numel() * k * module.out_channels // module.groups
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * k * module.in_channels // module.groups
        elif isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = net.training
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return total[0]


def complexity(net: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """{"params": int, "macs": int, "gmacs": float} of ``net`` for one input of ``input_shape``."""
    macs = count_macs(net, input_shape)
    return {"params": count_params(net), "macs": macs, "gmacs": round(macs / 1e9, 3)}
