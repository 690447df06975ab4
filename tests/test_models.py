"""Contracts of translate.models and translate.nn: sizes, shapes, rebuild-from-config, errors."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from torch import nn

from translate.models import (
    NLayerDiscriminator,
    UnetGenerator,
    build_discriminator,
    build_generator,
    generator_size_multiple,
    list_discriminators,
    list_generators,
)
from translate.nn import get_norm_layer, init_weights, list_inits, list_norms

# Extra arguments that keep every registered net tiny; the generic names get a small
# structural argument so that their size multiple stays small too.
GEN_SMALL = {
    "unet_128": {},
    "unet_256": {},
    "unet": {"num_downs": 5},
    "resnet_6blocks": {},
    "resnet_9blocks": {},
    "resnet": {"n_blocks": 2},
    "slim_unet": {"num_downs": 5},
    "mobile_resnet_9blocks": {},
    "mobile_resnet": {"n_blocks": 2},
}
DISC_SMALL = {"basic": {}, "n_layers": {"n_layers": 2}, "patchgan": {}, "pixel": {}}
GEN_SMALL["pix2pixhd"] = {"n_downsample_global": 2, "n_blocks_global": 1}
DISC_SMALL["multiscale"] = {"n_layers": 2, "num_D": 2}


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def small_generator(name: str, input_nc: int = 3, output_nc: int = 3) -> nn.Module:
    return build_generator(name, input_nc=input_nc, output_nc=output_nc, ngf=8, **GEN_SMALL[name])


def test_registries_cover_the_small_configs():
    assert sorted(GEN_SMALL) == sorted(list_generators())
    assert sorted(DISC_SMALL) == sorted(list_discriminators())


# ---- exact sizes of the paper architectures (built on the meta device: no memory, no init)


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: build_generator("unet_256"), 54_413_955),
        (lambda: build_generator("resnet_9blocks"), 11_378_179),
        (lambda: build_discriminator("basic", input_nc=6), 2_768_705),
        (lambda: build_discriminator("basic", input_nc=3, norm="instance"), 2_764_737),
    ],
    ids=["unet_256", "resnet_9blocks", "basic_6ch_batch", "basic_3ch_instance"],
)
def test_parameter_counts_match_reference(build, expected):
    with torch.device("meta"):
        net = build()
    assert n_params(net) == expected


def test_default_constructors_are_the_paper_setups():
    with torch.device("meta"):
        assert n_params(UnetGenerator()) == 54_413_955
        assert generator_size_multiple(UnetGenerator()) == 256
        assert generator_size_multiple(build_generator("unet_128")) == 128
        assert generator_size_multiple(build_generator("resnet_6blocks")) == 4


# ---- forward and backward for every registered net


@pytest.mark.parametrize("channels", [(1, 3), (3, 1)], ids=["1to3", "3to1"])
@pytest.mark.parametrize("name", list_generators())
def test_generator_forward_backward(name, channels):
    input_nc, output_nc = channels
    torch.manual_seed(0)
    net = init_weights(small_generator(name, input_nc, output_nc))
    size = max(generator_size_multiple(net), 16)
    x = torch.rand(1, input_nc, size, size) * 2 - 1  # (B, C, H, W) in [-1, 1]

    y = net(x)

    assert y.shape == (1, output_nc, size, size)
    assert y.min() >= -1 and y.max() <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("input_nc", [1, 3])
@pytest.mark.parametrize("name", list_discriminators())
def test_discriminator_forward_backward(name, input_nc):
    torch.manual_seed(0)
    net = init_weights(build_discriminator(name, input_nc=input_nc, ndf=8, **DISC_SMALL[name]))
    x = torch.rand(2, input_nc, 32, 32) * 2 - 1

    out = net(x)
    scales = [o[-1] for o in out] if isinstance(out, list) else [out]  # multiscale: logits of each scale

    for logits in scales:
        assert logits.dim() == 4 and logits.shape[:2] == (2, 1)
        assert logits.shape[2] >= 1 and logits.shape[3] >= 1
    sum(logits.mean() for logits in scales).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_patchgan_output_grid_at_256():
    net = NLayerDiscriminator(input_nc=3, ndf=4)
    assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert build_discriminator("pixel", input_nc=3, ndf=4)(torch.zeros(1, 3, 8, 8)).shape == (
        1, 1, 8, 8,
    )


def test_generators_refuse_sizes_that_are_not_multiples():
    with pytest.raises(ValueError, match="multiples of 32"):
        small_generator("unet")(torch.zeros(1, 3, 48, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        small_generator("resnet")(torch.zeros(1, 3, 18, 16))


# ---- config-as-constructor: (arch, config) rebuilds the same architecture


def _rebuild_cases():
    cases = [(name, "generator") for name in list_generators()]
    return cases + [(name, "discriminator") for name in list_discriminators()]


@pytest.mark.parametrize("name, kind", _rebuild_cases())
def test_rebuild_from_arch_and_config(name, kind):
    if kind == "generator":
        net = small_generator(name, input_nc=1, output_nc=3)
        rebuilt = build_generator(net.arch, **json.loads(json.dumps(net.config)))
    else:
        net = build_discriminator(name, input_nc=4, ndf=8, norm="instance", **DISC_SMALL[name])
        rebuilt = build_discriminator(net.arch, **json.loads(json.dumps(net.config)))

    # The config is the whole constructor, in plain JSON values.
    assert list(net.config) == list(inspect.signature(type(net)).parameters)
    assert type(rebuilt) is type(net) and rebuilt.config == net.config
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(net.state_dict(), strict=True)


# ---- errors name what was wrong and list what is valid


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="unknown generator 'unet_512'.*unet_256"):
        build_generator("unet_512")
    with pytest.raises(ValueError, match="unknown discriminator 'big'.*basic.*pixel"):
        build_discriminator("big", input_nc=3)
    with pytest.raises(ValueError, match="unknown norm 'layer'.*batch.*instance.*none"):
        get_norm_layer("layer")
    with pytest.raises(ValueError, match="unknown init_type 'he'.*normal.*kaiming"):
        init_weights(nn.Conv2d(1, 1, 1), "he")
    with pytest.raises(ValueError, match="padding_type 'circular'.*reflect"):
        build_generator("resnet", padding_type="circular")


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unexpected argument.*n_blocks.*valid:.*num_downs"):
        build_generator("unet_128", n_blocks=3)
    with pytest.raises(ValueError, match="fixes num_downs=8.*num_downs=7.*'unet'"):
        build_generator("unet_256", num_downs=7)
    with pytest.raises(ValueError, match="fixes n_layers=3"):
        build_discriminator("basic", input_nc=3, n_layers=4)
    with pytest.raises(ValueError, match="num_downs must be an integer >= 5, got 4"):
        build_generator("unet", num_downs=4)
    with pytest.raises(ValueError, match="ngf"):
        build_generator("resnet", ngf=32.0)
    with pytest.raises(ValueError, match="use_dropout"):
        UnetGenerator(use_dropout=1)
    # The same value as the fixed one is not a conflict.
    with torch.device("meta"):
        assert build_generator("unet_128", num_downs=7).config["num_downs"] == 7


def test_generator_size_multiple_rejects_non_generators():
    with pytest.raises(TypeError, match="size_multiple"):
        generator_size_multiple(nn.Conv2d(1, 1, 1))


# ---- norms and init


def test_norm_factories():
    assert list_norms() == ["batch", "instance", "none"]
    batch = get_norm_layer("batch")(5)
    assert isinstance(batch, nn.BatchNorm2d) and batch.affine and batch.track_running_stats
    inst = get_norm_layer("instance")(5)
    assert isinstance(inst, nn.InstanceNorm2d)
    assert not inst.affine and not inst.track_running_stats
    assert isinstance(get_norm_layer("none")(5), nn.Identity)


def test_norm_none_builds_plain_convs_with_bias():
    net = build_generator("unet", num_downs=5, ngf=4, norm="none")
    norms = (nn.BatchNorm2d, nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in net.modules())
    assert all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("init_type", list_inits())
def test_init_variants_run(init_type):
    torch.manual_seed(0)
    net = init_weights(small_generator("unet"), init_type)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
            assert torch.all(m.bias == 0)
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.bias == 0)
            assert abs(m.weight.mean().item() - 1.0) < 0.1


def test_normal_init_statistics():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 4)  # 131k weights: the sample std is within ~0.5% of 0.02
    init_weights(conv, "normal", gain=0.02)
    assert abs(conv.weight.std().item() - 0.02) < 0.001
    assert abs(conv.weight.mean().item()) < 0.001
    init_weights(conv, "kaiming")
    fan_in = 64 * 4 * 4
    assert abs(conv.weight.std().item() - (2 / fan_in) ** 0.5) < 0.002


# ---- dropout is the U-Net's noise: random in train mode, off in eval mode


def test_unet_dropout_stochastic_in_train_deterministic_in_eval():
    torch.manual_seed(0)
    net = init_weights(build_generator("unet", num_downs=6, ngf=8, use_dropout=True))
    assert any(isinstance(m, nn.Dropout) for m in net.modules())
    x = torch.rand(2, 3, 64, 64) * 2 - 1

    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_unet_without_dropout_has_none():
    net = build_generator("unet_256", ngf=4, use_dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    # unet_256 has num_downs - 5 = 3 dropout layers, as in pix2pix.
    with_dropout = build_generator("unet_256", ngf=4)
    assert sum(isinstance(m, nn.Dropout) for m in with_dropout.modules()) == 3
