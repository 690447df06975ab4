"""Stride-2 (transposed) convolutions that train on small maps as one matrix product."""

import pytest
import torch
from torch import nn

from translate.nn.gemm_conv import MAX_PIXELS, GemmConv2d, GemmConvTranspose2d


@pytest.mark.parametrize("cls,base,channels", [(GemmConv2d, nn.Conv2d, (12, 10)),
                                               (GemmConvTranspose2d, nn.ConvTranspose2d, (12, 10))])
@pytest.mark.parametrize("side", [1, 2, 4, 8, 16])  # 16 x 16 is above MAX_PIXELS: the ordinary path
@pytest.mark.parametrize("bias", [True, False])
def test_same_values_and_gradients_as_the_torch_layer(cls, base, channels, side, bias):
    if cls is GemmConv2d and side == 1:
        pytest.skip("a 4x4 stride-2 convolution needs at least 2x2 inputs")
    torch.manual_seed(0)
    ours, ref = cls(*channels, 4, 2, 1, bias=bias), base(*channels, 4, 2, 1, bias=bias)
    ref.load_state_dict(ours.state_dict())  # same parameters, same names
    x = torch.randn(2, channels[0], side, side)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ours(xa), ref(xb)
    assert ya.shape == yb.shape
    torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)
    ours.eval()  # evaluation (and export) always takes the ordinary path: identical values
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_bf16_autocast_and_channels_last_inputs():
    torch.manual_seed(0)
    ours, ref = GemmConvTranspose2d(16, 8, 4, 2, 1), nn.ConvTranspose2d(16, 8, 4, 2, 1)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    assert 16 <= MAX_PIXELS
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = ours(x), ref(x)
    assert ya.dtype == torch.bfloat16
    torch.testing.assert_close(ya.float(), yb.float(), rtol=0.05, atol=0.05)
