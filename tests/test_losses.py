import math

import pytest
import torch

from translate.losses import adversarial_loss, gradient_penalty
from translate.models import build_discriminator


def test_adversarial_losses_known_values():
    zeros = torch.zeros(2, 1, 3, 3)
    assert adversarial_loss(zeros, True, "vanilla").item() == pytest.approx(math.log(2))
    assert adversarial_loss(zeros, True, "lsgan").item() == pytest.approx(1.0)
    assert adversarial_loss(zeros, False, "lsgan").item() == pytest.approx(0.0)
    ones = torch.ones(2, 1, 3, 3)
    assert adversarial_loss(ones, True, "hinge").item() == pytest.approx(0.0)
    assert adversarial_loss(ones, False, "hinge").item() == pytest.approx(2.0)
    assert adversarial_loss(ones, True, "hinge", for_discriminator=False).item() == pytest.approx(-1.0)
    assert adversarial_loss(ones, True, "wgan-gp").item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="valid"):
        adversarial_loss(ones, True, "nope")


def test_gradient_penalty_is_nonzero_and_trains_d():
    torch.manual_seed(0)
    disc = build_discriminator("basic", input_nc=3, ndf=8, norm="none")
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    gp = gradient_penalty(disc, real, fake)
    assert gp.item() > 0
    gp.backward()
    # every conv weight gets a gradient from the penalty (biases cannot: they do not change dD/dx)
    weights = [p for name, p in disc.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_gradient_penalty_in_bf16_autocast_is_fp32_and_close_to_fp32():
    """Only D's forward runs in bf16: the penalty is an fp32 value within bf16 rounding of fp32's."""
    torch.manual_seed(0)
    disc = build_discriminator("basic", input_nc=3, ndf=8, norm="none")
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    ref = gradient_penalty(disc, real, fake)
    torch.manual_seed(1)
    gp = gradient_penalty(disc, real, fake, torch.autocast("cpu", dtype=torch.bfloat16))
    assert gp.dtype == torch.float32 and gp.requires_grad
    assert gp.item() == pytest.approx(ref.item(), rel=0.05)
