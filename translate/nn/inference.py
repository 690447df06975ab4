"""Turning a training network into an inference network.

pix2pix trains its U-Net with batch norm at batch size 1, where the batch statistics are the
statistics of the one image; the running averages it accumulates are a poor stand-in for them
(the reference implementation therefore keeps batch norm in training mode when testing). We keep
that behaviour but make it independent of how many images are translated together: each batch
norm layer normalises every image by its own statistics, so a converted image never depends on
its neighbours in a batch.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

BATCHNORM_MODES = ("per_image", "running")


class PerImageBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises each image by its own (H, W) statistics at inference.

    Same parameters and buffers as BatchNorm2d, so it loads the same state dict.
    """

    def forward(self, x):  # x: (B, C, H, W)
        # Batch statistics of one image are its own statistics: batch_norm on each image keeps
        # the input's memory layout, where instance_norm would copy a channels_last input to
        # contiguous and back (a third of a bf16 U-Net conversion on a CPU went into such copies).
        # For one contiguous image this is the very computation instance_norm does. Exports and
        # compilation keep instance_norm: a loop over the batch would fix the batch size in a graph.
        if x.dim() != 4 or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        images = [F.batch_norm(xi, None, None, self.weight, self.bias, True, 0.0, self.eps) for xi in x.split(1)]
        return images[0] if len(images) == 1 else torch.cat(images)


def for_inference(net: nn.Module, batchnorm: str = "per_image", copy_net: bool = True) -> nn.Module:
    """Return ``net`` (a copy by default) in eval mode, without gradients, ready to translate.

    Args:
        net: a generator.
        batchnorm: "per_image" (see module docstring) or "running" (use the running averages,
            the right choice for nets trained with large batches).
        copy_net: work on a deep copy, leaving ``net`` untouched (used for training samples).
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"unknown batchnorm mode {batchnorm!r}; valid: {', '.join(BATCHNORM_MODES)}")
    if copy_net:
        net = copy.deepcopy(net)
    if batchnorm == "per_image":
        _swap_batchnorm(net)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _swap_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = PerImageBatchNorm2d(
                child.num_features, eps=child.eps, momentum=child.momentum,
                affine=child.affine, track_running_stats=child.track_running_stats,
            ).to(device=child.weight.device if child.affine else None)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            _swap_batchnorm(child)


def cast_for_inference(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast an inference network's weights to ``dtype`` once (in place), instead of autocast casting
    them again at every call; normalisation layers keep fp32 parameters and statistics (they take
    ``dtype`` inputs and compute their statistics in fp32). Feed it ``dtype`` inputs."""
    net.to(dtype)
    for module in net.modules():
        if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            module.float()
    return net
