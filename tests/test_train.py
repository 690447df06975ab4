"""The training loop: outputs, resume equality, refusals, graceful stops, crash safety."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from translate.checkpoint import load_generator, read_translator_json
from translate.config import RunConfig
from translate.presets import get_preset
from translate import train
from translate.training.loop import TrainingError
from translate.training.state import ResumeError, load_state

from conftest import repo_root


def tiny_cfg(method, data, ckpt, name="run", **loop):
    """A tiny run; fp32 unless ``precision`` is given (``auto`` would pick bf16 on machines that
    run it natively, and the tests' expected values are fp32's)."""
    preset = get_preset("tiny", method)
    d = {"method": method, "name": name, "checkpoints_dir": str(ckpt),
         "data": {**preset["data"], "root": str(data)}, "model": dict(preset["model"]),
         "loop": {**preset["loop"], "batch_size": 2, "precision": "fp32", **loop}}
    return RunConfig.from_dict(d)


def test_pix2pix_writes_a_complete_run(ab_data, tmp_path):
    result = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=4))
    run = result.run_dir
    assert result.step == 4 and result.stopped_by_signal is None
    assert (run / "run.json").is_file() and (run / "train_state" / "latest.pt").is_file()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"g_gan", "g_l1", "d_real", "d_fake", "lr", "images_per_s"} <= set(log[-1])
    assert (run / "samples" / "epoch_0001.png").is_file()  # 6 images / batch 2 = 3 steps per epoch
    doc = read_translator_json(run)
    assert doc["method"] == "pix2pix" and set(doc["generators"]) == {"a2b"}
    gen = load_generator(run, "a2b")
    state = load_state(run)  # loads with weights_only=True
    for k, v in gen.state_dict().items():  # by default the translator holds the weight average
        assert torch.equal(v, state["ema"]["gen_a2b"][k])
    assert not list(run.glob(".*tmp*")) and not list((run / "train_state").glob(".*tmp*"))


def _weights(run_dir):
    return load_state(run_dir)["nets"]


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
@pytest.mark.parametrize("first_steps", [3, 2])  # 3 = end of epoch 1, 2 = mid-epoch
def test_resume_gives_identical_weights(method, first_steps, tmp_path):
    from conftest import make_ab_dataset, make_unpaired_dataset

    data = make_ab_dataset(tmp_path / "d") if method == "pix2pix" else make_unpaired_dataset(tmp_path / "d", 5, 6)
    # 6 items (max of A/B for CycleGAN) at batch 2: 3 steps per epoch, 2 epochs (1 + 1 decay).
    full = train(tiny_cfg(method, data, tmp_path / "ck", name="full"))
    assert full.step == 6
    part = train(tiny_cfg(method, data, tmp_path / "ck", name="part", max_steps=first_steps))
    assert part.step == first_steps
    resumed = train(tiny_cfg(method, data, tmp_path / "ck", name="part"), resume=True)
    assert resumed.step == 6
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    # the log holds each step once
    steps = [json.loads(x)["step"] for x in (resumed.run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_existing_run_is_not_overwritten(ab_data, tmp_path):
    train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=1))
    before = (tmp_path / "ck" / "run" / "train_state" / "latest.pt").read_bytes()
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=1))
    assert (tmp_path / "ck" / "run" / "train_state" / "latest.pt").read_bytes() == before


def test_resume_with_other_architecture_is_refused(ab_data, tmp_path):
    train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=1))
    cfg = tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=2)
    cfg.model.ngf = 16
    with pytest.raises(ResumeError, match="ngf: saved 8, now 16"):
        train(cfg, resume=True)


def test_crop_size_must_fit_the_generator(ab_data, tmp_path):
    cfg = tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=1)
    cfg.data.crop_size = 30
    with pytest.raises(TrainingError, match="multiples of 32"):
        train(cfg)


@pytest.mark.parametrize("gan_mode", ["lsgan", "hinge", "wgan-gp"])
def test_gan_modes_train(gan_mode, ab_data, tmp_path):
    cfg = tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=2)
    cfg.model.gan_mode = gan_mode
    train(cfg)
    log = [json.loads(x) for x in (tmp_path / "ck" / "run" / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(v)) for v in log[-1].values())
    if gan_mode == "wgan-gp":
        assert log[-1]["gp"] > 0


def test_bf16_training_runs(ab_data, tmp_path):
    """bf16 autocast trains: the weights move, and the losses are finite and close to fp32's
    (same seed, same data, same initial weights)."""
    from translate.methods import build_method

    runs = {p: train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name=p, max_steps=3, precision=p))
            for p in ("fp32", "bf16")}
    cfg = tiny_cfg("pix2pix", ab_data, tmp_path / "ck")
    torch.manual_seed(cfg.loop.seed)  # what the loop does before building the nets
    initial = build_method("pix2pix", cfg.model, 3, 3, torch.device("cpu")).nets.state_dict()
    trained = {p: _weights(r.run_dir) for p, r in runs.items()}
    for p in runs:
        assert runs[p].step == 3
        moved = [k for k, v in trained[p]["gen_a2b"].items()
                 if v.is_floating_point() and not torch.equal(v, initial[f"gen_a2b.{k}"])]
        assert moved, f"{p} training did not change the generator"
    logs = {p: [json.loads(x) for x in (r.run_dir / "log.jsonl").read_text().splitlines()] for p, r in runs.items()}
    assert [r["step"] for r in logs["bf16"]] == [1, 2, 3]
    for a, b in zip(logs["fp32"], logs["bf16"]):
        for k in ("g_gan", "g_l1", "d_real", "d_fake"):
            assert torch.isfinite(torch.tensor(b[k])), (k, b)
            assert abs(a[k] - b[k]) <= 0.01 + 0.01 * abs(a[k]), (k, a[k], b[k])  # measured: <= 1e-3
    losses = ("g_gan", "g_l1", "d_real", "d_fake")
    assert any(a[k] != b[k] for a, b in zip(logs["fp32"], logs["bf16"]) for k in losses)  # autocast was on


def _spawn_training(data, ckpt, extra=()):
    cmd = [sys.executable, "-m", "translate", "train", "pix2pix", "--data", str(data), "--name", "sig",
           "--checkpoints-dir", str(ckpt), "--preset", "tiny", "--batch-size", "1", "--epochs", "1000",
           "--save-every", "1", "--log-every", "1", *extra]
    env = dict(os.environ, PYTHONPATH=str(repo_root()))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_steps(log: Path, n: int, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("training did not reach the expected step in time")


@pytest.mark.slow
def test_sigterm_saves_and_resume_continues(ab_data, tmp_path):
    ckpt = tmp_path / "ck"
    proc = _spawn_training(ab_data, ckpt)
    _wait_for_steps(ckpt / "sig" / "log.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err and "Traceback" not in err
    step = load_state(ckpt / "sig")["step"]
    assert step >= 3 and read_translator_json(ckpt / "sig")["provenance"]["step"] == step
    proc = _spawn_training(ab_data, ckpt, ["--resume", "--max-steps", str(step + 2)])
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert load_state(ckpt / "sig")["step"] == step + 2


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_never_corrupts(ab_data, tmp_path):
    """Checkpoints are written every step; kill -9 at arbitrary moments, then everything loads."""
    ckpt = tmp_path / "ck"
    for i, delay in enumerate((0.0, 0.13, 0.29)):
        extra = ["--resume"] if i else []
        proc = _spawn_training(ab_data, ckpt, extra)
        _wait_for_steps(ckpt / "sig" / "log.jsonl", 2 + 2 * i, proc)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        state = load_state(ckpt / "sig")
        assert state["step"] >= 1
        load_generator(ckpt / "sig", "a2b")


def test_eval_every_keeps_latest_and_best_and_plots_losses(tmp_path):
    from conftest import make_ab_dataset

    data = make_ab_dataset(tmp_path / "d", n=6)
    make_ab_dataset(tmp_path / "d", n=3, split="test", seed=1)
    cfg = tiny_cfg("pix2pix", data, tmp_path / "ck", max_steps=4, eval_every=2)
    run = train(cfg).run_dir
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "l1" and best["split"] == "test" and best["step"] in (2, 4)
    assert read_translator_json(run / "translator")["provenance"]["step"] == 4
    assert read_translator_json(run / "translator_best")["provenance"]["step"] == best["step"]
    evals = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if "eval_l1" in x]
    assert [e["step"] for e in evals] == [2, 4]
    assert best["value"] == min(e["eval_l1"] for e in evals)
    assert (run / "losses.png").stat().st_size > 1000


def test_eval_every_without_held_out_split_is_refused(ab_data, tmp_path):
    with pytest.raises(TrainingError, match="held-out split"):
        train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=2, eval_every=1))


def test_btoa_run_names_nets_by_domain_and_resumes_a_version_1_state(tmp_path):
    """A BtoA pix2pix run trains gen_b2a and disc_a, exports b2a, and resumes from a state saved
    when its nets were still called gen_a2b and disc_b."""
    from conftest import make_ab_dataset

    data = make_ab_dataset(tmp_path / "d")

    def cfg(name, **loop):
        c = tiny_cfg("pix2pix", data, tmp_path / "ck", name=name, **loop)
        c.data.direction = "BtoA"
        return c

    full = train(cfg("full", max_steps=4))
    assert list(read_translator_json(full.run_dir)["generators"]) == ["b2a"]
    assert set(load_state(full.run_dir)["nets"]) == {"gen_b2a", "disc_a"}
    part = train(cfg("part", max_steps=2))
    path = part.run_dir / "train_state" / "latest.pt"
    old = torch.load(path, weights_only=True)
    old["version"] = 1
    old["nets"] = {{"gen_b2a": "gen_a2b", "disc_a": "disc_b"}[k]: v for k, v in old["nets"].items()}
    old["ema"] = {"gen_a2b": old["ema"]["gen_b2a"]}  # version 1 named the average the same way
    torch.save(old, path)
    resumed = train(cfg("part", max_steps=4), resume=True)
    a, b = _weights(full.run_dir), _weights(resumed.run_dir)
    assert set(a) == set(b) == {"gen_b2a", "disc_a"}
    assert all(torch.equal(a[net][k], b[net][k]) for net in a for k in a[net])


def test_cyclegan_b2a_names_nets_and_losses_by_domain():
    from translate.methods.cyclegan import CycleGANConfig
    from translate.methods.cyclegan import CycleGAN

    m = CycleGAN(CycleGANConfig(netG="resnet_6blocks", ngf=4, ndf=4), 1, 3, torch.device("cpu"), direction="b2a")
    # the loader's input ("a") images are domain B with 1 channel here
    assert m.nets["gen_b2a"].config["input_nc"] == 1 and m.nets["gen_a2b"].config["input_nc"] == 3
    assert m.generators == {"a2b": "gen_a2b", "b2a": "gen_b2a"}


def test_precision_is_recorded_and_resuming_in_another_one_says_so(ab_data, tmp_path, capsys):
    """run.json and the start line say which precision runs and why; the weights and optimizer state
    stay fp32 in bf16 (autocast); a resume in another precision is allowed and says so."""
    from translate.runtime import resolve_device, resolve_precision

    run = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="p", max_steps=2, precision="bf16")).run_dir
    doc = json.loads((run / "run.json").read_text())
    assert doc["config"]["loop"]["precision"] == "bf16"
    assert (doc["precision"]["precision"], doc["precision"]["reason"]) == ("bf16", "asked for")
    state = load_state(run)
    assert state["precision"] == "bf16"
    weights = [v for net in state["nets"].values() for v in net.values() if v.is_floating_point()]
    assert all(v.dtype == torch.float32 for v in weights)
    adam = state["optimizers"]["gen"]["state"]
    assert adam and all(s["exp_avg"].dtype == torch.float32 for s in adam.values())
    assert "in bf16 (asked for)" in capsys.readouterr().err
    train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="p", max_steps=3, precision="fp32"), resume=True)
    assert "trained in bf16 and now continues in fp32" in capsys.readouterr().err
    doc = json.loads((run / "run.json").read_text())
    assert doc["resumes"][-1]["precision"]["precision"] == "fp32" and load_state(run)["precision"] == "fp32"

    auto = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="a", max_steps=1, precision="auto")).run_dir
    chosen = json.loads((auto / "run.json").read_text())["precision"]
    expected = resolve_precision("auto", resolve_device("auto"), work="train", arch="unet")
    assert chosen["requested"] == "auto" and chosen["precision"] == expected.precision
    assert f"in {expected.describe()}" in capsys.readouterr().err
