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
    assert "pix2pix" in out and "b2a" in out and "a2b" not in out and "step 2" in out  # BtoA: the b2a generator
    assert "converts in" in out and "trained in:" in out and "(auto: " in out  # the default precision, and why
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


def _train_flags(method):
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    sub = train._subparsers._group_actions[0].choices[method]
    return {s for a in sub._actions for s in a.option_strings}


def test_every_config_field_has_a_train_option():
    import dataclasses

    from translate.cli import train_option_fields
    from translate.config import RunConfig, option_flag, section_classes

    for method in ("pix2pix", "cyclegan"):
        flags = _train_flags(method)
        keys = {key for key, _f, _h in train_option_fields(method)}
        for section, cls in section_classes(method).items():
            for f in dataclasses.fields(cls):
                assert f"{section}.{f.name}" in keys
                assert "--" + option_flag(f) in flags, (method, section, f.name)
        assert {"--name", "--checkpoints-dir", "--data"} <= flags
        assert not {f.name for f in dataclasses.fields(RunConfig)} - {"method", "data", "model", "loop"} - keys
    # the names scripts rely on
    p2p = _train_flags("pix2pix")
    for flag in ("--no-flip", "--no-dropout", "--netG", "--netD", "--ngf", "--ndf", "--norm", "--gan-mode",
                 "--load-size", "--crop-size", "--preprocess", "--batch-size", "--epochs", "--epochs-decay",
                 "--max-steps", "--lr", "--seed", "--device", "--precision", "--ema-decay", "--n-layers-D",
                 "--skip-bad-images", "--sync-bn", "--tensorboard", "--direction", "--checkpoints-dir"):
        assert flag in p2p, flag


def test_options_come_from_config_metadata(monkeypatch, tmp_path):
    """A new configuration field gets its option, type, choices and help without another edit."""
    import dataclasses

    from translate import cli, config
    from translate.methods import get_method
    from translate.methods.pix2pix import Pix2PixConfig

    @dataclasses.dataclass
    class WithNewField(Pix2PixConfig):
        lambda_new: float = config.option(1.0, help="a new loss weight")
        new_mode: str = config.option("x", choices=("x", "y"), help="a new choice")

    monkeypatch.setattr(get_method("pix2pix"), "config_class", WithNewField)
    args = build_parser().parse_args(["train", "pix2pix", "--data", str(tmp_path), "--name", "n",
                                      "--lambda-new", "2.5", "--new-mode", "y", "--no-flip", "--netG", "unet_128"])
    cfg = cli._train_config(args)
    assert cfg.model.lambda_new == 2.5 and cfg.model.new_mode == "y"
    assert cfg.data.flip is False and cfg.model.netG == "unet_128" and cfg.data.root == str(tmp_path)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "pix2pix", "--data", "d", "--name", "n", "--new-mode", "z"])
    with pytest.raises(config.ConfigError, match="new_mode.*choose one of: x, y"):
        config.RunConfig.from_dict({"method": "pix2pix", "model": {"new_mode": "z"}})


def test_options_not_given_keep_preset_and_defaults(tmp_path):
    from translate import cli

    args = build_parser().parse_args(["train", "cyclegan", "--data", "d", "--name", "n", "--preset", "tiny",
                                      "--max-steps", "none", "--lambda-identity", "0", "--dropout"])
    cfg = cli._train_config(args)
    assert cfg.model.netG == "resnet_6blocks" and cfg.model.ngf == 8  # from the preset
    assert cfg.model.lambda_identity == 0.0 and cfg.model.use_dropout is True and cfg.loop.max_steps is None
    assert cfg.model.gan_mode == "lsgan" and cfg.checkpoints_dir == "checkpoints"
    # an explicit `none` clears an optional value that a preset or a resumed run set
    args = build_parser().parse_args(["train", "pix2pix", "--data", "d", "--name", "n", "--set", "loop.max_steps=5",
                                      "--max-steps", "none", "--eval-max-images", "none"])
    cfg = cli._train_config(args)
    assert cfg.loop.max_steps == 5  # --set comes last
    args = build_parser().parse_args(["train", "pix2pix", "--data", "d", "--name", "n", "--preset", "tiny",
                                      "--eval-max-images", "none"])
    assert cli._train_config(args).loop.eval_max_images is None


def test_user_errors_are_one_line_but_bugs_keep_their_traceback(monkeypatch, capsys, tmp_path):
    from translate import cli
    from translate.errors import UserError

    def user_error(args, argv):
        raise UserError("something the user can fix")

    def bug(args, argv):
        raise ValueError("a bug")

    for func, expected in ((user_error, 2), (bug, None)):
        monkeypatch.setattr(cli, "_cmd_info", func)
        if expected is None:
            with pytest.raises(ValueError, match="a bug"):
                main(["info", str(tmp_path)])
        else:
            assert main(["info", str(tmp_path)]) == expected
            assert capsys.readouterr().err == "error: something the user can fix\n"
