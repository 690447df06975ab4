"""--grad-checkpoint: the same training, with less activation memory."""

import pytest
import torch

from translate import train
from translate.models import build_generator
from translate.nn import set_grad_checkpoint
from translate.training.state import load_state

from test_train import tiny_cfg



@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_training_is_unchanged(method, ab_data, unpaired_data, tmp_path):
    data = ab_data if method == "pix2pix" else unpaired_data
    plain = train(tiny_cfg(method, data, tmp_path / "ck", name="plain", max_steps=3))
    ckpt = train(tiny_cfg(method, data, tmp_path / "ck", name="ckpt", max_steps=3, grad_checkpoint=True))
    a, b = load_state(plain.run_dir), load_state(ckpt.run_dir)
    for section in ("nets", "ema"):  # weights, batch-norm statistics and their counters, the average
        for net in a[section]:
            for k, v in a[section][net].items():
                assert torch.equal(v, b[section][net][k]), f"{section}.{net}.{k} differs with --grad-checkpoint"


@pytest.mark.parametrize("arch,kwargs,size", [
    ("unet", {"num_downs": 5, "ngf": 8}, 32),
    ("resnet_6blocks", {"ngf": 8}, 32),
    ("pix2pixhd", {"ngf": 8, "n_downsample_global": 2, "n_blocks_global": 2, "n_local_enhancers": 1}, 32),
])
@pytest.mark.parametrize("bf16", [False, True])
def test_gradients_are_unchanged(arch, kwargs, size, bf16):
    torch.manual_seed(0)
    net = build_generator(arch, input_nc=3, output_nc=3, **kwargs)
    x = torch.randn(2, 3, size, size)
    grads = []
    for on in (False, True):
        assert set_grad_checkpoint(net, on)
        net.zero_grad()
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = net(x)
        assert y.dtype == (torch.bfloat16 if bf16 else torch.float32)
        y.float().square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert torch.equal(grads[0][n], grads[1][n]), n


def test_dry_run_measures_and_writes_nothing(ab_data, tmp_path):
    import subprocess
    import sys

    from conftest import repo_root

    env = {**__import__("os").environ, "PYTHONPATH": str(repo_root())}
    proc = subprocess.run([sys.executable, "-m", "translate", "train", "pix2pix", "--data", str(ab_data), "--name",
                           "run", "--checkpoints-dir", str(tmp_path / "ck"), "--preset", "tiny", "--batch-size", "2",
                           "--max-steps", "40", "--epochs", "100", "--precision", "fp32", "--dry-run"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dry run of pix2pix: batch 2 of 3x32x32 inputs on cpu (fp32)" in out
    assert "gen_a2b 0.26M, disc_b 0.05M" in out and "peak memory:" in out and "seconds/step:" in out
    assert "to the end:      40 steps" in out
    assert not (tmp_path / "ck").exists()


def test_dry_run_api(ab_data, tmp_path):
    from translate.training.dryrun import dry_run

    report = dry_run(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=10, epochs=100))
    assert report.steps == 8 and len(report.step_times) == 8 and report.step_seconds > 0
    last = sorted(report.step_times[4:])  # the timed second half: its median
    assert report.step_seconds == (last[1] + last[2]) / 2
    assert report.peak_memory_bytes > 0 and report.total_steps == 10
    assert report.input_shape == [2, 3, 32, 32] and set(report.parameters) == {"gen_a2b", "disc_b"}
    assert not (tmp_path / "ck").exists()
