"""tools/quality_study.py: seeds x recipe -> per-seed evaluations and mean ± std."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_ab_dataset

TOOL = Path(__file__).resolve().parents[1] / "tools" / "quality_study.py"


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_study_over_two_seeds_reports_mean_and_std_and_resumes(tmp_path):
    data = make_ab_dataset(tmp_path / "d", n=8)
    out = tmp_path / "study"
    args = ["run", "--out", out, "--data", data, "--seeds", "0", "1", "--steps", "2",
            "--split", "val", "--val-from-train", "2", "--no-fid", "--also-last-step", "--",
            "--preset", "tiny", "--ema-decay", "0.9"]
    first = _run(*args)
    assert first.returncode == 0, first.stderr
    doc = json.loads((out / "study.json").read_text())
    assert [r["seed"] for r in doc["results"]] == [0, 1]
    # the held-out split: 2 files in val, 6 trained on
    assert len(list((out / "data" / "val").iterdir())) == 2
    assert len(list((out / "data" / "train").iterdir())) == 6
    for m in ("l1", "psnr", "ssim"):
        s = doc["summary"][m]
        assert len(s["values"]) == 2 and s["std"] is not None and s["std"] >= 0
        assert s["mean"] == pytest.approx(sum(s["values"]) / 2)
    # different seeds train different models; the average differs from the last step
    assert doc["summary"]["l1"]["values"][0] != doc["summary"]["l1"]["values"][1]
    assert doc["summary_last_step"]["l1"]["values"] != doc["summary"]["l1"]["values"]
    assert "| study |" in first.stdout and "last-step weights" in first.stdout

    # A second call reuses the finished runs and evaluations (nothing retrained).
    stamp = (out / "runs" / "seed0" / "train_state" / "latest.pt").stat().st_mtime_ns
    again = _run(*args)
    assert again.returncode == 0, again.stderr
    assert (out / "runs" / "seed0" / "train_state" / "latest.pt").stat().st_mtime_ns == stamp
    report = _run("report", out)
    assert report.returncode == 0 and doc["label"] in report.stdout


def test_failed_training_is_reported_and_exit_status_is_nonzero(tmp_path):
    out = tmp_path / "study"
    res = _run("run", "--out", out, "--data", tmp_path / "missing", "--seeds", "0", "--steps", "1",
               "--no-fid", "--", "--preset", "tiny")
    assert res.returncode != 0
    assert "seed 0" in res.stderr and "failed" in res.stderr
