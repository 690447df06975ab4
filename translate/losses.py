"""Loss functions, written as pure functions of tensors.

Adversarial losses take raw discriminator outputs (logits, any shape) and are computed in fp32
so that reduced-precision autocast never changes their value range.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgan-gp")


def adversarial_loss(pred: torch.Tensor, real: bool, mode: str, for_discriminator: bool = True) -> torch.Tensor:
    """GAN loss of discriminator outputs against a real/fake target.

    Args:
        pred: discriminator output, any shape (e.g. (B, 1, h, w) patch logits).
        real: whether the target is "real".
        mode: "vanilla" (BCE on logits), "lsgan" (least squares), "hinge" or "wgan-gp".
        for_discriminator: hinge uses a different form for the generator step
            (-mean(pred)); the other modes are symmetric.

    Returns:
        Scalar loss tensor. For a multi-scale discriminator's output (a list with one entry per
        scale, each a tensor or a list of layer outputs whose last is the logits) the mean of
        the loss over the scales.
    """
    if isinstance(pred, (list, tuple)):
        scales = [p[-1] if isinstance(p, (list, tuple)) else p for p in pred]
        return sum(adversarial_loss(p, real, mode, for_discriminator) for p in scales) / len(scales)
    pred = pred.float()
    if mode == "vanilla":
        target = torch.ones_like(pred) if real else torch.zeros_like(pred)
        return F.binary_cross_entropy_with_logits(pred, target)
    if mode == "lsgan":
        target = torch.ones_like(pred) if real else torch.zeros_like(pred)
        return F.mse_loss(pred, target)
    if mode == "hinge":
        if not for_discriminator:
            return -pred.mean()
        return F.relu(1.0 - pred).mean() if real else F.relu(1.0 + pred).mean()
    if mode == "wgan-gp":
        return -pred.mean() if real else pred.mean()
    raise ValueError(f"unknown gan mode {mode!r}; valid: {', '.join(GAN_MODES)}")


def gradient_penalty(disc, real: torch.Tensor, fake: torch.Tensor, amp=None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2].

    ``x_hat`` is a random per-sample interpolation between ``real`` and ``fake`` (B, C, H, W);
    the graph is kept (``create_graph``) so the penalty trains the discriminator. Only D's
    forward runs under ``amp`` (the run's autocast context, if any): the interpolation, the
    gradient norm and the penalty itself are computed in fp32.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=torch.float32)
    x_hat = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
    with (amp if amp is not None else contextlib.nullcontext()):
        out = disc(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).float().norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE loss of CUT (Park et al. 2020): each query patch must pick out the key patch at
    the same location among all key patches of the same image.

    For image ``b`` and location ``i``, the logits are ``query[b, i] . key[b, j] / temperature``
    over every sampled location ``j`` of that image; the positive is ``j = i`` and the others are
    the negatives (cross-entropy with target ``i``). The keys are detached: the loss trains what
    produced the queries only. Computed in fp32.

    (The paper's code puts the positive in column 0 and fills the diagonal of the negatives with
    -10 before dividing by the temperature; that adds exp(-10 / 0.07) ~ 1e-62 to each
    denominator, which is the only difference from this form.)

    Args:
        query: (B, P, C) features of the translated image at P locations, L2-normalised.
        key: (B, P, C) features of the source image at the same P locations, L2-normalised.
        temperature: softmax temperature (0.07 in the paper).

    Returns:
        Scalar loss: the mean over the B * P locations.
    """
    if query.shape != key.shape or query.ndim != 3:
        raise ValueError(f"query and key must both be (B, P, C); got {tuple(query.shape)} and {tuple(key.shape)}")
    q, k = query.float(), key.detach().float()
    logits = torch.bmm(q, k.transpose(1, 2)) / temperature  # (B, P, P); the diagonal holds the positives
    b, p, _ = logits.shape
    target = torch.arange(p, device=logits.device).repeat(b)  # location i's positive is key i
    return F.cross_entropy(logits.reshape(b * p, p), target)
def feature_matching_loss(fake_feats, real_feats) -> torch.Tensor:
    """Discriminator feature matching (Wang et al. 2018, eq. 4): L1 between the intermediate layer
    outputs of D on generated and on real images.

    Args:
        fake_feats, real_feats: multi-scale discriminator outputs (one list per scale of layer
            outputs, the last being the logits, which are left out); ``real_feats`` are treated as
            constants (detached).

    Returns:
        Scalar: sum over scales and layers of the mean absolute difference, each scale weighted
        1 / num_scales and each layer 4 / (number of layers), as in the pix2pixHD reference code.
    """
    if len(fake_feats) != len(real_feats) or not fake_feats:
        raise ValueError(f"expected the same non-zero number of scales, got {len(fake_feats)} and {len(real_feats)}")
    loss = 0.0
    for fake, real in zip(fake_feats, real_feats):
        layers = len(fake) - 1
        if layers < 1:
            raise ValueError("feature matching needs discriminators that return their layer outputs")
        for f, r in zip(fake[:-1], real[:-1]):
            loss = loss + F.l1_loss(f.float(), r.detach().float()) * (4.0 / layers) / len(fake_feats)
    return loss
