import pytest

from translate.config import ConfigError, RunConfig, apply_overrides
from translate.presets import get_preset, list_presets


def test_round_trip_and_defaults():
    cfg = RunConfig.from_dict({"method": "cyclegan"})
    assert cfg.model.gan_mode == "lsgan" and cfg.model.pool_size == 50 and cfg.model.lambda_identity == 0.5
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    p2p = RunConfig.from_dict({"method": "pix2pix"})
    assert p2p.model.gan_mode == "vanilla" and p2p.model.lambda_l1 == 100 and p2p.model.netG == "unet_256"
    assert p2p.loop.lr == 2e-4 and (p2p.loop.beta1, p2p.loop.beta2) == (0.5, 0.999)


def test_unknown_keys_list_valid_ones():
    with pytest.raises(ConfigError, match="unknown key.*lambda_L1.*valid keys.*lambda_l1"):
        RunConfig.from_dict({"method": "pix2pix", "model": {"lambda_L1": 3}})
    with pytest.raises(ConfigError, match="pool_size"):
        RunConfig.from_dict({"method": "pix2pix", "model": {"pool_size": 3}})  # a CycleGAN key


def test_types_and_choices_are_checked():
    with pytest.raises(ConfigError, match="loop.batch_size expects int"):
        RunConfig.from_dict({"loop": {"batch_size": "4"}})
    with pytest.raises(ConfigError, match="gan_mode.*choose one of"):
        RunConfig.from_dict({"model": {"gan_mode": "wgan"}})
    with pytest.raises(ConfigError, match="load_size.*crop_size"):
        RunConfig.from_dict({"data": {"load_size": 100, "crop_size": 128}})


def test_set_overrides():
    cfg = RunConfig.from_dict({"method": "pix2pix"})
    cfg = apply_overrides(cfg, ["model.lambda_l1=50", "data.flip=false", "loop.max_steps=7", "loop.max_steps=none"])
    assert cfg.model.lambda_l1 == 50.0 and cfg.data.flip is False and cfg.loop.max_steps is None
    with pytest.raises(ConfigError, match="valid keys in model"):
        apply_overrides(cfg, ["model.nope=1"])
    with pytest.raises(ConfigError, match="section"):
        apply_overrides(cfg, ["lambda_l1=1"])


def test_presets():
    assert "tiny" in list_presets()
    assert get_preset("tiny", "pix2pix")["model"]["netG"] == "unet"
    with pytest.raises(ValueError, match="valid"):
        get_preset("nope", "pix2pix")


def test_choices_match_the_registries():
    from translate import losses
    from translate import options as config
    from translate.models import list_discriminators, list_generators

    assert sorted(config.GENERATORS) == sorted(list_generators())
    assert sorted(config.DISCRIMINATORS) == sorted(list_discriminators())
    assert tuple(config.GAN_MODES) == tuple(losses.GAN_MODES)


def test_every_field_declares_its_help_and_validation_uses_its_choices():
    import dataclasses

    from translate.config import section_classes

    for method in ("pix2pix", "cyclegan"):
        for cls in section_classes(method).values():
            for f in dataclasses.fields(cls):
                assert f.metadata.get("help"), (cls.__name__, f.name)
    with pytest.raises(ConfigError, match="model.netG = 'unet_512' is not valid; choose one of: unet_128"):
        RunConfig.from_dict({"model": {"netG": "unet_512"}})
    with pytest.raises(ConfigError, match="data.input_nc = 2 is not valid; choose one of: 1, 3"):
        RunConfig.from_dict({"data": {"input_nc": 2}})
    with pytest.raises(ConfigError, match="model.ngf must be >= 1, got 0"):
        RunConfig.from_dict({"model": {"ngf": 0}})


@pytest.mark.parametrize("name, method, expected", [
    ("pix2pix_paper", "pix2pix", {
        "model.netG": "unet_256", "model.netD": "basic", "model.norm": "batch", "model.use_dropout": True,
        "model.gan_mode": "vanilla", "model.lambda_l1": 100.0, "data.load_size": 286, "data.crop_size": 256,
        "data.preprocess": "resize_and_crop", "data.flip": True, "loop.batch_size": 1, "loop.epochs": 100,
        "loop.epochs_decay": 100, "loop.lr": 2e-4, "loop.beta1": 0.5, "loop.beta2": 0.999}),
    ("cyclegan_paper", "cyclegan", {
        "model.netG": "resnet_9blocks", "model.netD": "basic", "model.norm": "instance", "model.gan_mode": "lsgan",
        "model.pool_size": 50, "model.lambda_a": 10.0, "model.lambda_b": 10.0, "model.lambda_identity": 0.5,
        "data.load_size": 286, "data.crop_size": 256, "loop.batch_size": 1, "loop.epochs": 100,
        "loop.epochs_decay": 100, "loop.lr": 2e-4, "loop.beta1": 0.5, "loop.beta2": 0.999}),
])
def test_paper_presets_set_every_value_they_claim(name, method, expected):
    """Applied on top of settings far from the paper's, the preset restores each value."""
    preset = get_preset(name, method)
    claimed = {f"{section}.{key}": value for section, values in preset.items() for key, value in values.items()}
    assert {k: claimed.get(k) for k in expected} == expected
    far = RunConfig.from_dict({"method": method, "data": {"load_size": 64, "crop_size": 32, "flip": False},
                               "model": {"netG": "unet_128", "netD": "pixel", "norm": "none", "gan_mode": "hinge"},
                               "loop": {"batch_size": 8, "epochs": 3, "epochs_decay": 0, "lr": 1e-3,
                                        "beta1": 0.9}}).to_dict()
    for section, values in preset.items():
        far[section].update(values)
    cfg = RunConfig.from_dict(far)
    for key, value in expected.items():
        section, field = key.split(".")
        assert getattr(getattr(cfg, section), field) == value, key
    with pytest.raises(ConfigError, match="is for `translate train"):
        get_preset(name, "cyclegan" if method == "pix2pix" else "pix2pix")
