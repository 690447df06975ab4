"""Weight averaging of the exported generators: the formula, the export and exact resume."""

import pytest
import torch
from torch import nn

from translate.checkpoint import load_generator
from translate.config import ConfigError
from translate import train
from translate.training.ema import GeneratorEMA, ema_decay_at
from translate.training.state import load_state

from test_train import tiny_cfg


def test_update_follows_the_formula_with_warmup():
    net = nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(0.0)
    ema = GeneratorEMA({"g": net}, decay=0.999)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(step=1)  # decay_1 = min(0.999, 2 / 11)
    d = 2 / 11
    assert torch.allclose(ema.nets["g"].weight, torch.full((1, 2), d * 1.0 + (1 - d) * 3.0))
    assert ema_decay_at(0.999, 10_000) == 0.999 and ema_decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert not any(p.requires_grad for p in ema.nets["g"].parameters())


def test_swapped_into_restores_the_raw_nets():
    nets = nn.ModuleDict({"g": nn.Linear(2, 1), "d": nn.Linear(2, 1)})
    raw = nets["g"]
    ema = GeneratorEMA({"g": nets["g"]}, decay=0.9)
    with ema.swapped_into(nets):
        assert nets["g"] is ema.nets["g"]
    assert nets["g"] is raw


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_bad_decay_is_refused(decay, ab_data, tmp_path):
    with pytest.raises(ConfigError, match="ema_decay"):
        train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=1, ema_decay=decay))


def test_translator_exports_the_average_and_resume_is_exact(tmp_path):
    from conftest import make_ab_dataset

    data = make_ab_dataset(tmp_path / "d")
    full = train(tiny_cfg("pix2pix", data, tmp_path / "ck", name="full", ema_decay=0.9))
    state = load_state(full.run_dir)
    gen = load_generator(full.run_dir, "a2b").state_dict()
    for k, v in gen.items():
        assert torch.equal(v, state["ema"]["gen_a2b"][k]), f"translator {k} is not the average"
    raw = state["nets"]["gen_a2b"]
    assert any(not torch.equal(gen[k], raw[k]) for k in gen if gen[k].is_floating_point())

    train(tiny_cfg("pix2pix", data, tmp_path / "ck", name="part", ema_decay=0.9, max_steps=2))
    resumed = train(tiny_cfg("pix2pix", data, tmp_path / "ck", name="part", ema_decay=0.9), resume=True)
    assert resumed.step == full.step
    again = load_state(resumed.run_dir)["ema"]["gen_a2b"]
    for k, v in state["ema"]["gen_a2b"].items():
        assert torch.equal(v, again[k]), f"average {k} differs after resume"


def test_average_is_on_by_default_and_zero_turns_it_off(ab_data, tmp_path):
    from translate.config import LoopConfig

    assert LoopConfig().ema_decay == 0.999
    run = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=2, ema_decay=0.0)).run_dir
    state = load_state(run)
    assert "ema" not in state
    gen = load_generator(run, "a2b").state_dict()
    for k, v in gen.items():
        assert torch.equal(v, state["nets"]["gen_a2b"][k])
