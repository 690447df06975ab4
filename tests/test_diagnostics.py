"""Diagnostics: each finding provoked on a tiny synthetic run, and none on a healthy one."""

import json

import numpy as np
import pytest
import torch

from translate import train
from translate.training.diagnostics import Diagnostics, Thresholds

from conftest import _write_png
from test_train import tiny_cfg


def _events(run_dir):
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("event", "").startswith("health")]


def _paired(root, n=6, size=36, target=None, seed=0):
    """A|B pairs; ``target`` "constant" (every B the same) or "noise" (B unrelated to A)."""
    rng = np.random.default_rng(seed)
    const = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for k in range(n):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        b = const if target == "constant" else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        _write_png(root / "train" / f"{k:03d}.png", np.concatenate([a, b], axis=1))
    return root


def test_start_and_end_are_reported_once():
    diag = Diagnostics(unpaired=False, gan_mode="vanilla", thresholds=Thresholds(consecutive=2))
    low, high = {"d_real": 0.001, "d_fake": 0.002}, {"d_real": 0.5, "d_fake": 0.6}
    events = [e for step, rec in enumerate([low, low, low, low, high, high, high], 1)
              for e in diag.on_losses(step, rec)]
    assert [(e["step"], e["event"]) for e in events] == [(2, "health_start"), (6, "health_end")]
    assert "discriminator" in events[0]["message"] and events[1]["since"] == 2
    assert Diagnostics(unpaired=False, gan_mode="wgan-gp").on_losses(1, low) == []


def test_no_translation_and_collapse_and_flat_from_samples():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    t = Thresholds(consecutive=1)
    diag = Diagnostics(unpaired=True, gan_mode="lsgan", thresholds=t)
    names = {e["diagnostic"] for e in diag.on_samples(1, [(x, x + 0.001)], 1.0)}
    assert names == {"no_translation"}
    diag = Diagnostics(unpaired=True, gan_mode="lsgan", thresholds=t)
    same = torch.zeros_like(x)
    assert {e["diagnostic"] for e in diag.on_samples(1, [(x, same)], 1.0)} == {"generator_collapse"}
    assert {e["diagnostic"] for e in diag.on_samples(2, [(x, same)], 1.0)} == {"flat_generator"}
    assert diag.on_samples(3, [(x, same)], 0.01) == []  # learning rate decayed: a still output is expected


@pytest.mark.slow
def test_cyclegan_pushed_into_identity_is_flagged_and_a_normal_one_is_not(unpaired_data, tmp_path):
    common = dict(max_steps=60, epochs=100, lr=2e-3, health_every=5, log_every=5)
    pushed = train(tiny_cfg("cyclegan", unpaired_data, tmp_path / "ck", name="idt", **common))
    cfg = tiny_cfg("cyclegan", unpaired_data, tmp_path / "ck", name="ok", **common)
    assert [e["diagnostic"] for e in _events(pushed.run_dir)] == []
