"""Writes on a full filesystem: a real size-limited tmpfs (mounting needs root; skipped otherwise)."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from translate.fsutil import describe_os_error, is_disk_full, is_write_failure
from translate.training.state import load_state

from conftest import repo_root


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of 16 MiB mounted at tmp_path/fs; unmounted afterwards."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount -t tmpfs refused: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs: Path, leave: int) -> Path:
    """Write a filler file until only about ``leave`` bytes are free on ``fs``."""
    filler = fs / "filler.bin"
    free = shutil.disk_usage(fs).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_error_classification():
    full = OSError(errno.ENOSPC, "No space left on device", "/x/y")
    assert is_disk_full(full) and is_write_failure(full)
    assert describe_os_error(full) == "/x/y: No space left on device (ENOSPC)"
    assert is_write_failure(OSError(errno.EIO, "I/O error")) and not is_disk_full(OSError(errno.EIO, "I/O error"))
    assert not is_write_failure(FileNotFoundError(errno.ENOENT, "no such file")) and not is_write_failure(ValueError())


def _train(args, extra_env=None):
    env = {**os.environ, "PYTHONPATH": str(repo_root()), **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "translate", "train", "pix2pix", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow
def test_training_on_a_full_disk_stops_cleanly_and_resumes(ab_data, small_fs):
    from translate import Translator

    args = ["--data", str(ab_data), "--name", "run", "--checkpoints-dir", str(small_fs / "ck"), "--preset", "tiny",
            "--batch-size", "2", "--epochs", "10", "--save-every", "2"]
    first = _train([*args, "--max-steps", "2"])
    assert first.returncode == 0, first.stderr
    run = small_fs / "ck" / "run"
    translator_before = (run / "translator" / "gen_a2b.safetensors").read_bytes()
    filler = fill(small_fs, leave=64 * 1024)  # room for log lines and a sample grid, not a checkpoint
    full = _train([*args, "--max-steps", "4", "--resume"])
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step ") and "No space left on device (ENOSPC)" in last, last
    assert "checkpoint (step 2)" in last and "--resume" in last
    assert load_state(run)["step"] == 2  # the previous checkpoint is intact and loads
    assert (run / "translator" / "gen_a2b.safetensors").read_bytes() == translator_before
    Translator.load(run / "translator")
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # no temp files left behind
    filler.unlink()
    again = _train([*args, "--max-steps", "4", "--resume"])
    assert again.returncode == 0, again.stderr
    assert load_state(run)["step"] == 4


def _convert(*args):
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    return subprocess.run([sys.executable, "-m", "translate", "convert", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_convert_on_a_full_disk_stops_once_and_a_rerun_finishes(tmp_path, small_fs):
    import numpy as np

    from conftest import make_translator, write_image_file
    from translate.data.io import read_image

    ckpt = make_translator(tmp_path / "ck")
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    for k in range(24):
        write_image_file(src / f"{k:02d}.png", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    probe = _convert(ckpt, src / "00.png", tmp_path / "probe")
    assert probe.returncode == 0, probe.stderr
    one = max(4096, (tmp_path / "probe" / "00.png").stat().st_size)
    out = small_fs / "out"
    filler = fill(small_fs, leave=6 * one)  # room for a few outputs, not 24
    full = _convert(ckpt, src, out, "--batch-size", "1")
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr and "failed:" not in full.stderr  # one error, not one per file
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device (ENOSPC)" in errors[0] and "run the same command again" \
        in errors[0], full.stderr
    written = sorted(out.glob("*.png"))
    assert 0 < len(written) < 24
    for p in written:  # what was written is complete
        assert read_image(p).shape == (96, 96, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    filler.unlink()
    again = _convert(ckpt, src, out)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*.png"))) == 24
    assert f"converted {24 - len(written)}, skipped {len(written)} (already done), failed 0 of 24" in again.stderr
