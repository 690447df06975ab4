"""torchrun with 2 CPU processes (gloo): training and conversion."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from translate.config import RunConfig
from translate.presets import get_preset
from translate import train
from translate.training.pipeline import EpochSampler

from conftest import make_ab_dataset, make_translator, make_unpaired_dataset, repo_root, write_image_file

pytestmark = pytest.mark.slow


def torchrun(*args, nproc=2, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(repo_root()), OMP_NUM_THREADS="1")
    # the c10d rendezvous on localhost with port 0 picks a free port (tests may run side by side)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def tiny(method, data, ckpt, name, **over):
    p = get_preset("tiny", method)
    d = {"method": method, "name": name, "checkpoints_dir": str(ckpt), "data": {**p["data"], "root": str(data)},
         "model": dict(p["model"]), "loop": {**p["loop"], "log_every": 1, "precision": "fp32"}}  # machine-independent
    for section, values in over.items():
        d[section].update(values)
    return RunConfig.from_dict(d)


def test_sampler_shards_cover_the_epoch_once():
    shards = []
    for rank in range(2):
        s = EpochSampler(7, seed=3, rank=rank, world_size=2)
        s.set_epoch(1)
        shards.append([i for _e, i in s])
    single = EpochSampler(7, seed=3)
    single.set_epoch(1)
    order = [i for _e, i in single]
    assert len(shards[0]) == len(shards[1]) == 4
    assert shards[0][:3] == order[0::2][:3] and shards[1][:3] == order[1::2][:3]
    assert set(shards[0]) | set(shards[1]) == set(range(7))


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_two_processes_identical_weights_and_only_rank0_writes(method, tmp_path):
    data = make_ab_dataset(tmp_path / "d", n=8) if method == "pix2pix" else make_unpaired_dataset(tmp_path / "d", 6, 8)
    cfg = tiny(method, data, tmp_path / "ck", "ddp", loop={"batch_size": 1, "max_steps": 5})
    r = torchrun(repo_root() / "tests" / "ddp_worker.py", json.dumps(cfg.to_dict()), tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "out" / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert r0["step"] == r1["step"] == 5
    for net in r0["nets"]:
        for k, v in r0["nets"][net].items():
            assert torch.equal(v, r1["nets"][net][k]), f"{net}.{k} differs between ranks"
    assert r1["writes"] == [] and r0["writes"], "rank 1 must not write into the run folder"
    run = tmp_path / "ck" / "ddp"
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2, 3, 4, 5]  # one line per step, written once
    assert json.loads((run / "run.json").read_text())["processes"] == 2


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_two_processes_match_one_process_with_the_same_total_batch(method, tmp_path):
    """2 processes x batch 1 == 1 process x batch 2, up to float summation order. This holds when
    nothing couples the images of a batch or draws per-process randomness: instance norm (batch
    norm statistics are per process), no dropout, and no CycleGAN image pool (it is per process)."""
    data = make_ab_dataset(tmp_path / "d", n=8) if method == "pix2pix" else make_unpaired_dataset(tmp_path / "d", 6, 8)
    model = {"norm": "instance", "use_dropout": False}
    if method == "cyclegan":
        model["pool_size"] = 0
    cfg2 = tiny(method, data, tmp_path / "ck", "two", model=model, loop={"batch_size": 1, "max_steps": 4})
    r = torchrun(repo_root() / "tests" / "ddp_worker.py", json.dumps(cfg2.to_dict()), tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    two = torch.load(tmp_path / "out" / "rank0.pt", weights_only=True)["nets"]
    one = train(tiny(method, data, tmp_path / "ck", "one", model=model, loop={"batch_size": 2, "max_steps": 4})).method.nets
    # Compare what the nets compute, not raw parameters: a conv bias in front of instance norm has
    # no effect and a zero true gradient, so Adam turns its rounding noise into +-lr steps.
    x = torch.rand(2, 6 if method == "pix2pix" else 3, 32, 32) * 2 - 1
    worst = {}
    for name, net in one.items():
        other = copy.deepcopy(net)
        other.load_state_dict(two[name])
        inp = x if name.startswith("disc") and method == "pix2pix" else x[:, :3]
        with torch.no_grad():
            worst[name] = (net(inp) - other(inp)).abs().max().item()
    if method == "pix2pix":
        assert max(worst.values()) < 1e-4, worst  # measured ~1e-6: the same function up to rounding
    log1 = [json.loads(x) for x in (tmp_path / "ck" / "one" / "log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (tmp_path / "ck" / "two" / "log.jsonl").read_text().splitlines()]
    assert len(log1) == len(log2) == 4
    for step, (a, b) in enumerate(zip(log1, log2)):
        for key in a:
            if key not in ("images_per_s", "step", "epoch", "lr"):
                # step 1 is computed before any update: equal up to rounding. Later steps: Adam's
                # first updates are ~lr * sign(grad), so parameters whose true gradient is ~0
                # (e.g. a bias cancelled by the following instance norm) take +-lr steps decided by
                # rounding; CycleGAN's losses then drift apart by ~1e-3 relative (measured 4e-4).
                tol = 1e-5 if step == 0 else (1e-3 if method == "pix2pix" else 2e-2)
                assert a[key] == pytest.approx(b[key], rel=tol, abs=1e-5), (step + 1, key)

def test_two_process_convert_writes_each_output_once(tmp_path):
    ck = make_translator(tmp_path / "ck")
    src = tmp_path / "in"
    for k in range(50):
        write_image_file(src / f"{k:02d}.png", torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8).numpy())
    (src / "zz_bad.png").write_text("not an image")
    r = torchrun("-m", "translate", "convert", ck, src, tmp_path / "out", "--device", "cpu")
    assert r.returncode == 1, r.stderr[-3000:]  # the bad file makes the status non-zero
    assert "converted 50," in r.stderr and "failed 1 of 51" in r.stderr and r.stderr.count("converted ") == 1
    assert len(list((tmp_path / "out").glob("*.png"))) == 50
    failed = (tmp_path / "out" / "failed.jsonl").read_text().splitlines()
    assert len(failed) == 1 and "zz_bad.png" in failed[0]
    # re-running skips everything that is done, across ranks
    r = torchrun("-m", "translate", "convert", ck, src, tmp_path / "out", "--device", "cpu")
    assert "converted 0, skipped 50" in r.stderr
