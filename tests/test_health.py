"""The non-finite guard: a poisoned batch (TRANSLATE_INJECT_NAN) goes through the real step."""

import json
import os
import subprocess
import sys

import pytest
import torch

from translate import train
from translate.training.health import NonFiniteError, injected_nan_steps
from translate.training.state import load_state

from conftest import repo_root
from test_train import tiny_cfg


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_inject_steps_parse(monkeypatch):
    monkeypatch.setenv("TRANSLATE_INJECT_NAN", "3, 7-9")
    assert injected_nan_steps() == {3, 7, 8, 9}
    monkeypatch.delenv("TRANSLATE_INJECT_NAN")
    assert injected_nan_steps() == frozenset()


@pytest.mark.parametrize("method", ["pix2pix", "cyclegan"])
def test_a_nan_step_is_skipped_and_changes_nothing(method, ab_data, unpaired_data, tmp_path, monkeypatch):
    data = ab_data if method == "pix2pix" else unpaired_data
    clean = train(tiny_cfg(method, data, tmp_path / "ck", name="clean", max_steps=2))
    monkeypatch.setenv("TRANSLATE_INJECT_NAN", "3")
    result = train(tiny_cfg(method, data, tmp_path / "ck", name="nan", max_steps=3))
    assert result.step == 3
    # Step 3 was skipped: weights, optimizer moments, batch-norm statistics and the weight
    # average are exactly those after step 2.
    a, b = load_state(clean.run_dir), load_state(result.run_dir)
    for key in ("nets", "ema"):
        for net in a[key]:
            for k, v in a[key][net].items():
                assert torch.equal(v, b[key][net][k]), f"{key}.{net}.{k} changed by a skipped step"
    log = _log(result.run_dir)
    assert {"step": 3, "event": "nonfinite_skipped"}.items() <= log[-2].items()
    assert log[-1]["step"] == 3 and log[-1]["skipped_steps"] == 1


@pytest.mark.slow
def test_nan_steps_in_a_row_stop_with_the_last_good_state_then_resume(ab_data, tmp_path):
    args = ["train", "pix2pix", "--data", str(ab_data), "--name", "run", "--checkpoints-dir", str(tmp_path / "ck"),
            "--preset", "tiny", "--batch-size", "2", "--save-every", "2", "--max-steps", "8", "--epochs", "10",
            "--nonfinite-patience", "3"]
    env = {"TRANSLATE_INJECT_NAN": "5-7", "PYTHONPATH": str(repo_root())}
    proc = subprocess.run([sys.executable, "-m", "translate", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step 7: 3 steps in a row (from step 5)"), proc.stderr
    assert "non-finite" in last and "checkpoint (step 6" in last and "--resume" in last and "--lr" in last
    assert "Traceback" not in proc.stderr
    run = tmp_path / "ck" / "run"
    assert load_state(run)["step"] == 6  # the last checkpoint (steps 5, 6 skipped), untouched
    log = _log(run)
    assert log[-1] == {"step": 7, "event": "nonfinite_stop", "loss": log[-1]["loss"], "restored_step": 6}
    resumed = subprocess.run([sys.executable, "-m", "translate", *args, "--resume"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(repo_root())}, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    state = load_state(run)
    assert state["step"] == 8
    assert all(torch.isfinite(v).all() for net in state["nets"].values() for v in net.values() if v.is_floating_point())


def test_stop_before_any_checkpoint_says_so(ab_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATE_INJECT_NAN", "1-2")
    with pytest.raises(NonFiniteError, match="No checkpoint had been saved yet"):
        train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", max_steps=5, nonfinite_patience=2))


def _children(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        return [int(x) for x in open(path).read().split()]
    except OSError:
        return []


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known race: in about 2 of 10 runs the resumed run ends at the saved step "
                   "instead of two steps later; the stop itself (message, exit status, no hang) holds")
def test_a_killed_loader_worker_stops_the_run_resumably(ab_data, tmp_path):
    import signal
    import time

    args = ["train", "pix2pix", "--data", str(ab_data), "--name", "run", "--checkpoints-dir", str(tmp_path / "ck"),
            "--preset", "tiny", "--batch-size", "1", "--epochs", "1000", "--max-steps", "3000", "--num-workers", "2",
            "--log-every", "1"]
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    proc = subprocess.Popen([sys.executable, "-m", "translate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    log = tmp_path / "ck" / "run" / "log.jsonl"
    try:
        deadline = time.monotonic() + 120
        latest = tmp_path / "ck" / "run" / "train_state" / "latest.pt"  # saved at the end of each 6-step epoch
        while time.monotonic() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3
                                                   and latest.exists()):
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert workers, "no loader worker processes found"
        os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
        _, err = proc.communicate(timeout=120)  # not a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step ") and "data-loader worker" in last, err
    assert "out-of-memory" in last and "--num-workers" in last and "--resume" in last
    step = load_state(tmp_path / "ck" / "run")["step"]
    # Usually the death is seen between two steps and the state of that step is saved; when PyTorch
    # reports it from elsewhere (e.g. while an epoch's iterator starts), the last checkpoint (saved
    # every epoch here) is the one to resume from. Either way the run resumes.
    assert f"a checkpoint of step {step} is saved" in last or "the last saved checkpoint, if any, is kept" in last
    assert step >= 6
    resumed = subprocess.run([sys.executable, "-m", "translate", *args[:-8], "--max-steps", str(step + 2),
                              "--num-workers", "2", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_state(tmp_path / "ck" / "run")["step"] == step + 2
