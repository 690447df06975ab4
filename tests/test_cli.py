"""The command line: help for every option, strict parsing, clean errors, train -> info."""

import json
import os
import subprocess
import sys

import pytest

from translate.cli import build_parser, main

from conftest import make_ab_dataset, repo_root


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(repo_root()))
    return subprocess.run([sys.executable, "-m", "translate", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _all_actions(parser):
    for action in parser._actions:
        yield action
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for sub in action.choices.values():
                yield from _all_actions(sub)


def test_every_option_has_help():
    missing = [a.option_strings or a.dest for a in _all_actions(build_parser())
               if not a.help and a.dest not in ("help",)]
    assert missing == []


def test_unknown_option_is_an_error(capsys, ab_data, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "pix2pix", "--data", str(ab_data), "--name", "x", "--lambda-L1", "5"])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_train_then_info_then_resume(tmp_path, capsys):
    data = make_ab_dataset(tmp_path / "d")
    ck = tmp_path / "ck"
    common = ["--data", str(data), "--name", "r", "--checkpoints-dir", str(ck)]
    assert main(["train", "pix2pix", *common, "--preset", "tiny", "--direction", "BtoA", "--max-steps", "2",
                 "--set", "model.lambda_l1=50"]) == 0
    cfg = json.loads((ck / "r" / "run.json").read_text())["config"]
    assert cfg["data"]["direction"] == "BtoA" and cfg["model"]["lambda_l1"] == 50.0 and cfg["model"]["ngf"] == 8
    assert main(["info", str(ck / "r")]) == 0
    out = capsys.readouterr().out
    assert "pix2pix" in out and "a2b" in out and "step 2" in out
    assert main(["info", str(ck / "r" / "translator"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["step"] == 2
    # resume takes every training flag from run.json: only --max-steps changes
    assert main(["train", "pix2pix", *common, "--resume", "--max-steps", "3"]) == 0
    assert json.loads((ck / "r" / "log.jsonl").read_text().splitlines()[-1])["step"] == 3
    # an architecture change on resume is refused with a clear message
    assert main(["train", "pix2pix", *common, "--resume", "--ngf", "16", "--max-steps", "4"]) == 2
    assert "different model" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["empty", "missing", "unmatched", "corrupt"])
def test_bad_dataset_gives_one_paragraph_without_traceback(kind, tmp_path):
    data = tmp_path / "data"
    if kind == "empty":
        (data / "train").mkdir(parents=True)
    elif kind == "unmatched":
        make_ab_dataset(tmp_path / "src", n=2)
        for side in "AB":
            (data / "train" / side).mkdir(parents=True)
        (data / "train" / "A" / "one.png").write_bytes((tmp_path / "src/train/000.png").read_bytes())
        (data / "train" / "B" / "two.png").write_bytes((tmp_path / "src/train/001.png").read_bytes())
    elif kind == "corrupt":
        make_ab_dataset(data, n=3)
        (data / "train" / "001.png").write_bytes(b"this is not a png")
    r = run_cli("train", "pix2pix", "--data", data, "--name", "x", "--checkpoints-dir", tmp_path / "ck",
                "--preset", "tiny", "--max-steps", "1")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    if kind == "unmatched":
        assert "one.png" in r.stderr and "two.png" in r.stderr
    if kind == "corrupt":
        assert "001.png" in r.stderr and "--skip-bad-images" in r.stderr
    if kind in ("empty", "missing"):
        assert str(data) in r.stderr
    assert not (tmp_path / "ck" / "x" / "train_state").exists()


def test_check_data_reports(tmp_path):
    data = make_ab_dataset(tmp_path / "d", n=3)
    r = run_cli("check-data", data)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "layout ab" in r.stdout and "3 images" in r.stdout
    (data / "train" / "002.png").write_bytes(b"")
    r = run_cli("check-data", data)
    assert r.returncode == 1 and "002.png" in r.stdout


def test_python_dash_m_and_version():
    r = run_cli("--version")
    assert r.returncode == 0 and "translate" in r.stdout
