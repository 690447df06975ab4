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
    return [r for r in lines if r.get("event") in ("health_start", "health_end")]


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


FAST = dict(epochs=1000, health_every=5, log_every=5, batch_size=2)


def _pix2pix(data, tmp_path, name, steps, lr, **model):
    cfg = tiny_cfg("pix2pix", data, tmp_path / "ck", name=name, max_steps=steps, lr=lr, **FAST)
    for k, v in model.items():
        setattr(cfg.model, k, v)
    return _events(train(cfg).run_dir)


@pytest.mark.slow
def test_generator_collapse_is_flagged(tmp_path):
    # every target is the same image: the generator learns to ignore its input
    events = _pix2pix(_paired(tmp_path / "d", target="constant"), tmp_path, "collapse", 40, 2e-3)
    assert "generator_collapse" in {e["diagnostic"] for e in events if e["event"] == "health_start"}, events


@pytest.mark.slow
def test_discriminator_domination_is_flagged(tmp_path):
    # targets unrelated to the inputs and a huge L1 weight: the generator outputs a flat average
    # that the discriminator (without normalisation, which would hide the contrast) tells from the
    # noisy targets at once
    events = _pix2pix(_paired(tmp_path / "d", target="noise"), tmp_path, "dom", 40, 2e-3, lambda_l1=1000.0,
                      norm="none")
    assert "discriminator_domination" in {e["diagnostic"] for e in events if e["event"] == "health_start"}, events


@pytest.mark.slow
def test_flat_generator_is_flagged(tmp_path):
    events = _pix2pix(_paired(tmp_path / "d"), tmp_path, "flat", 30, 1e-12, norm="instance")
    starts = [e for e in events if e["event"] == "health_start"]
    assert [e["diagnostic"] for e in starts] == ["flat_generator"], events
    assert "stopped changing" in starts[0]["message"]


@pytest.mark.slow
def test_a_healthy_demo_run_raises_none(tmp_path):
    from translate.config import RunConfig
    from translate.demo import make_dataset

    # the demo's data and networks (translate demo), with a step budget instead of a time budget
    root = make_dataset(tmp_path / "d", n_train=24, n_test=2)
    cfg = RunConfig.from_dict({
        "method": "pix2pix", "name": "demo", "checkpoints_dir": str(tmp_path / "ck"),
        "data": {"root": str(root), "direction": "AtoB", "load_size": 64, "crop_size": 64},
        "model": {"netG": "unet", "num_downs": 6, "ngf": 32, "ndf": 32},
        "loop": {"epochs": 1000, "epochs_decay": 0, "max_steps": 60, "log_every": 10, "health_every": 10,
                 "batch_size": 4, "sample_count": 6}})
    run = train(cfg).run_dir
    assert _events(run) == []


def test_findings_show_in_info_and_plot(tmp_path):
    from translate.info import describe, format_description
    from translate.training.plot import loss_figure, loss_keys

    from conftest import make_translator

    run = tmp_path / "run"
    make_translator(run)
    (run / "run.json").write_text(json.dumps({"config": {}, "argv": ["translate"], "created": "now"}))
    records = [{"step": 5, "d_real": 0.01}, {"step": 10, "d_real": 0.01},
               {"step": 10, "event": "health_start", "diagnostic": "discriminator_domination", "values": {},
                "message": "discriminator domination (d_real 0.01): try lsgan"},
               {"step": 20, "d_real": 0.5},
               {"step": 20, "event": "health_end", "diagnostic": "discriminator_domination", "since": 10,
                "values": {}, "message": "over"},
               {"step": 25, "event": "health_start", "diagnostic": "flat_generator", "values": {}, "message": "flat"},
               {"step": 30, "d_real": 0.4}]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    desc = describe(run)
    assert desc["run"]["last_log"] == {"step": 30, "d_real": 0.4}
    assert [(h["diagnostic"], h["start"], h["end"]) for h in desc["run"]["health"]] == [
        ("discriminator_domination", 10, 20), ("flat_generator", 25, None)]
    text = format_description(desc)
    assert "health:     discriminator domination, steps 10-20: discriminator domination (d_real 0.01)" in text
    assert "health:     flat generator, since step 25 (ongoing): flat" in text
    assert loss_keys([r for r in records if "event" not in r]) == ["d_real"]
    fig = loss_figure(records)
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 2  # one shaded span per finding


def test_unpaired_runs_judge_translation_on_both_sides(unpaired_data, tmp_path):
    """Every check of a CycleGAN run measures how much each generator changes its input and, as
    the scale to compare with, an image already in its output domain (log.jsonl health_check)."""
    cfg = tiny_cfg("cyclegan", unpaired_data, tmp_path / "ck", max_steps=4, health_every=2, log_every=2)
    lines = [json.loads(x) for x in (train(cfg).run_dir / "log.jsonl").read_text().splitlines()]
    checks = [r for r in lines if r.get("event") == "health_check"]
    assert [r["step"] for r in checks] == [2, 4]
    assert {"mad", "ssim", "idt_mad", "output_spread", "input_spread"} <= set(checks[0]["values"])
    assert "change" in checks[1]["values"]
    assert all(0 < r["values"]["mad"] < 1 for r in checks)
