"""The pieces training and the benchmark share: translate.training.pipeline."""

import pytest
import torch

from translate.config import RunConfig
from translate.presets import get_preset
from translate.training.pipeline import (EpochSampler, TrainingError, build_trainables, build_training_dataset,
                                         check_sizes, fixed_batch, make_loader, preprocessing_record)


def tiny_cfg(method, root, **loop):
    preset = get_preset("tiny", method)
    return RunConfig.from_dict({"method": method, "data": {**preset["data"], "root": str(root)},
                                "model": preset["model"], "loop": {**preset["loop"], "batch_size": 2, **loop}})


def test_sampler_resumes_inside_an_epoch():
    s = EpochSampler(7, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert sorted(i for _e, i in full) == list(range(7)) and {e for e, _i in full} == {2}
    s.set_epoch(2, start=3)
    assert list(s) == full[3:] and len(s) == 4
    s.set_epoch(3)
    assert [i for _e, i in s] != [i for _e, i in full]  # a new order each epoch


def test_loader_and_step_as_the_loop_runs_them(ab_data):
    cfg = tiny_cfg("pix2pix", ab_data)
    parts = build_trainables(cfg, torch.device("cpu"))
    dataset = build_training_dataset(cfg, parts.method.size_multiple)
    sampler = EpochSampler(len(dataset), cfg.loop.seed)
    batches = list(make_loader(dataset, sampler, 2, 0, torch.device("cpu")))
    assert [b["a"].shape for b in batches] == [torch.Size([2, 3, 32, 32])] * 3
    losses = parts.step(batches[0])
    assert {"g_gan", "g_l1", "d_real", "d_fake"} <= set(losses)
    fixed = fixed_batch(dataset, 4, torch.device("cpu"))
    assert fixed["a"].shape[0] == 4 and torch.equal(fixed["b"], fixed_batch(dataset, 4, torch.device("cpu"))["b"])
    record = preprocessing_record(cfg, parts.method.size_multiple)
    assert record["size_multiple"] == parts.method.size_multiple and record["crop_size"] == 32


def test_unpaired_method_gets_an_unpaired_dataset(unpaired_data):
    cfg = tiny_cfg("cyclegan", unpaired_data)
    dataset = build_training_dataset(cfg, 4)
    assert type(dataset).__name__ == "UnpairedDataset" and len(dataset) == 6


def test_crop_must_fit_the_generator(ab_data):
    d = tiny_cfg("pix2pix", ab_data).to_dict()
    d["data"].update(load_size=52, crop_size=48)
    with pytest.raises(TrainingError, match="multiples of 32, but crop_size is 48. Use --crop-size 32"):
        check_sizes(RunConfig.from_dict(d), 32)
    check_sizes(RunConfig.from_dict(d), 16)
