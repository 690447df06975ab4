"""The method interface and the GAN update contract of every registered method."""

import tempfile
from pathlib import Path

import pytest
import torch
from conftest import make_translator

from translate.config import ConfigError, RunConfig
from translate.methods import METHODS, Method, build_method, get_method, list_methods
from translate.methods.common import ImagePool, linear_decay
from translate.presets import get_preset
from translate.runtime import Scalers, autocast
from translate.training.pipeline import build_trainables

CPU = torch.device("cpu")


def tiny_method(name, gan_mode=None, seed=0):
    model = {**get_method(name).config_class().__dict__, **get_preset("tiny", name)["model"]}
    if name == "distill":  # a student needs a teacher
        model["teacher"] = str(make_translator(Path(tempfile.mkdtemp(prefix="teacher-"))))
    if gan_mode is not None:
        model["gan_mode"] = gan_mode
    cfg = RunConfig.from_dict({"method": name, "model": model}).model
    torch.manual_seed(seed)
    return build_method(name, cfg, 3, 3, CPU, seed=seed)


def tiny_batch(batch_size=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(batch_size, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b")}


class SpyScalers(Scalers):
    """Scalers that record which parameters each backward sends gradients into and each
    optimizer step changes."""

    def __init__(self, names, params):
        super().__init__(names, "fp32", CPU)
        self.params = params  # id -> (net name, parameter)
        self.grads_from, self.changed_by = {}, {}

    def _grads(self):
        return {i: None if p.grad is None else p.grad.clone() for i, (_, p) in self.params.items()}

    def backward(self, name, loss):
        before = self._grads()
        super().backward(name, loss)
        after = self._grads()
        self.grads_from.setdefault(name, set()).update(
            i for i in self.params if after[i] is not None and (before[i] is None or not torch.equal(before[i], after[i])))

    def step(self, name, optimizer):
        before = {i: p.detach().clone() for i, (_, p) in self.params.items()}
        super().step(name, optimizer)
        self.changed_by.setdefault(name, set()).update(
            i for i, (_, p) in self.params.items() if not torch.equal(before[i], p.detach()))


def spy_step(method, batch):
    params = {id(p): (net_name, p) for net_name, net in method.nets.items() for p in net.parameters()}
    optimizers = method.make_optimizers(RunConfig().loop)
    scalers = SpyScalers(optimizers, params)
    for net in method.nets.values():
        net.train()
    losses = method.train_step(batch, optimizers, scalers, autocast(CPU, "fp32"))
    owned = {name: {id(p) for group in opt.param_groups for p in group["params"]} for name, opt in optimizers.items()}
    return params, owned, scalers, losses


def test_registry_lists_names_and_refuses_unknown_ones():
    assert list_methods() == sorted(METHODS) and {"pix2pix", "cyclegan"} <= set(list_methods())
    with pytest.raises(ValueError, match="unknown method 'nope'; valid: " + ", ".join(list_methods())):
        get_method("nope")
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"method": "nope"})


@pytest.mark.parametrize("name", list_methods())
def test_method_satisfies_the_protocol(name):
    m = tiny_method(name)
    assert isinstance(m, Method) and m.name == name
    assert set(m.train_nets) == set(m.nets)
    assert m.generators and set(m.generators.values()) <= set(m.nets)
    assert set(m.generators) <= {"a2b", "b2a"}
    assert set(m.make_optimizers(RunConfig().loop)) == set(m.optimizer_names)
    assert 32 % m.size_multiple == 0
    batch = tiny_batch()
    columns = m.sample(batch, autocast(CPU, "fp32"))
    assert all(c.shape == batch["a"].shape and c.min() >= -1 and c.max() <= 1 for c in columns)
    m.load_state_dict(m.state_dict())
    wrapped = []
    m.wrap(lambda net: wrapped.append(net) or net)
    assert len(wrapped) == len(m.nets)


@pytest.mark.parametrize("gan_mode", [None, "wgan-gp"])
@pytest.mark.parametrize("name", list_methods())
def test_train_step_keeps_the_gan_update_contract(name, gan_mode):
    modes = {f.name: f for f in __import__("dataclasses").fields(get_method(name).config_class)}["gan_mode"].metadata["choices"]
    if gan_mode is not None and gan_mode not in modes:
        pytest.skip(f"{name} does not offer gan_mode {gan_mode}")
    method = tiny_method(name, gan_mode)
    generators = set(method.generators.values()) | set(getattr(method, "gen_step_nets", ()))  # + e.g. CUT heads
    params, owned, scalers, losses = spy_step(method, tiny_batch())
    gen_params = {i for i, (net, _) in params.items() if net in generators}
    disc_params = set(params) - gen_params
    assert owned["gen"] == gen_params and owned["disc"] == disc_params
    # The generator update sends no gradient into, and does not change, any discriminator.
    assert scalers.grads_from["gen"] and not scalers.grads_from["gen"] & disc_params
    assert not scalers.changed_by["gen"] & disc_params
    # The discriminator update sees detached fakes: no gradient into any generator.
    assert scalers.grads_from["disc"] and not scalers.grads_from["disc"] & gen_params
    assert not scalers.changed_by["disc"] & gen_params
    # Every trainable parameter receives a gradient in one step.
    missing = {params[i][0] for i in set(params) - scalers.grads_from["gen"] - scalers.grads_from["disc"]}
    assert not missing, f"no gradient for parameters of {sorted(missing)}"
    assert all(p.requires_grad for _, p in params.values())  # freezing is undone
    assert losses and all(v.ndim == 0 and not v.requires_grad and torch.isfinite(v) for v in losses.values())


def test_image_pool_mixes_history_as_documented():
    pool = ImagePool(3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back
    served_old = 0
    for k in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + k)
        stored = [im.item() for im in pool.images]
        out = pool.query(new).item()
        if out == new.item():
            assert [im.item() for im in pool.images] == stored
        else:  # a stored image is returned and the new one takes its place
            served_old += 1
            assert out in stored
            assert sorted([im.item() for im in pool.images]) == sorted([s for s in stored if s != out] + [new.item()])
    assert 60 < served_old < 140  # probability 1/2
    assert torch.equal(ImagePool(0).query(first), first)


def test_image_pool_state_round_trip_continues_identically():
    a = ImagePool(2, seed=5)
    for k in range(4):
        a.query(torch.full((2, 1, 2, 2), float(k)))
    b = ImagePool(2, seed=0)
    b.load_state_dict(a.state_dict(), CPU)
    x = torch.randn(4, 1, 2, 2)
    assert torch.equal(a.query(x), b.query(x))
    with pytest.raises(ValueError, match="size"):
        ImagePool(3).load_state_dict(a.state_dict(), CPU)


def test_lr_is_constant_then_decays_linearly():
    factor = linear_decay(epochs=3, epochs_decay=2)
    assert [factor(e) for e in range(5)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3])
    preset = get_preset("tiny", "pix2pix")
    cfg = RunConfig.from_dict({"method": "pix2pix", "model": preset["model"],
                               "loop": {"epochs": 2, "epochs_decay": 3, "lr": 0.1}})
    parts = build_trainables(cfg, CPU)
    lrs = []
    for _ in range(5):
        lrs.append([o.param_groups[0]["lr"] for o in parts.optimizers.values()])
        for o in parts.optimizers.values():
            o.step()  # no gradients: changes nothing (the scheduler expects a step first)
        for s in parts.schedulers.values():
            s.step()
    assert lrs == [pytest.approx([x, x]) for x in (0.1, 0.1, 0.075, 0.05, 0.025)]
