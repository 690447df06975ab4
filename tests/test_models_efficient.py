"""The efficient generator families (students) and the MAC / parameter counter."""

import pytest
import torch
from torch import nn

from translate.models import build_generator
from translate.models.complexity import complexity, count_macs, count_params


def test_count_macs_of_single_layers_matches_the_formulas():
    conv = nn.Conv2d(3, 8, 3, padding=1)  # 8 outputs x 16x16 pixels x (3 x 3 x 3) MACs each
    assert count_macs(conv, (3, 16, 16)) == 8 * 16 * 16 * 27
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # one 3x3 filter per channel
    assert count_macs(dw, (8, 16, 16)) == 8 * 16 * 16 * 9
    up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)  # each input pixel scatters 4 x 4x4 MACs
    assert count_macs(up, (8, 8, 8)) == 8 * 8 * 8 * 4 * 16
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(lin, (3, 2, 2)) == 60
    assert count_params(lin) == 12 * 5 + 5


def test_paper_generators_cost():
    # unet_256: 54.4 M parameters, 6.05 GMACs at 256x256; resnet_9blocks: 11.4 M, 49.6 GMACs.
    unet = complexity(build_generator("unet_256"), (3, 256, 256))
    assert unet["params"] == 54_413_955 and unet["macs"] == 6_048_186_368
    resnet = complexity(build_generator("resnet_9blocks"), (3, 256, 256))
    assert resnet["params"] == 11_378_179 and resnet["macs"] == 49_551_507_456


def test_students_are_many_times_cheaper_than_their_teachers():
    unet = count_macs(build_generator("unet_256"), (3, 256, 256))
    slim = build_generator("slim_unet")  # ngf 16: a quarter of the width, 1/16 of the work
    assert slim.config["ngf"] == 16 and slim.config["use_dropout"] is False
    assert count_macs(slim, (3, 256, 256)) * 14 < unet
    assert count_params(slim) == 3_404_451

    resnet = count_macs(build_generator("resnet_9blocks"), (3, 256, 256))
    mobile = build_generator("mobile_resnet_9blocks", ngf=16)
    assert count_macs(mobile, (3, 256, 256)) * 50 < resnet
    assert count_params(mobile) == 136_195
    # the depthwise-separable block: same width, about 8x fewer MACs than a dense block at 256 channels
    dense = count_macs(build_generator("resnet_9blocks").blocks[0], (256, 64, 64))
    separable = count_macs(build_generator("mobile_resnet_9blocks", ngf=64).blocks[0], (256, 64, 64))
    assert 7 < dense / separable < 9


def test_mobile_resnet_keeps_size_and_range():
    torch.manual_seed(0)
    net = build_generator("mobile_resnet", ngf=4, n_blocks=2).eval()
    y = net(torch.rand(2, 3, 20, 24) * 2 - 1)
    assert y.shape == (2, 3, 20, 24) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 3, 18, 16))


def test_count_macs_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(nn.Conv2d(3, 3, 1), (3, 8))
