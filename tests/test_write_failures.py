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
