"""Folder conversion: sizes, formats, bit depth, bad files, safety rules, interruption."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from translate import Translator
from translate.convert import ConvertError
from translate.data.io import read_image

from conftest import make_translator, repo_root, write_image_file

RNG = np.random.default_rng(0)


def _img(h, w, c=3, dtype=np.uint8):
    hi = 256 if dtype == np.uint8 else 65536
    shape = (h, w) if c == 1 else (h, w, c)
    return RNG.integers(0, hi, shape, dtype=np.int64).astype(dtype)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_translator(tmp_path_factory.mktemp("ck"))


@pytest.fixture(scope="module")
def translator(ckpt):
    return Translator.load(ckpt, device="cpu")


def cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(repo_root()))
    return subprocess.run([sys.executable, "-m", "translate", *map(str, args)], input=stdin, capture_output=True,
                          text=True, env=env, timeout=300)


def test_mixed_folder_keeps_sizes_paths_and_depth(translator, tmp_path):
    src = tmp_path / "in"
    files = {
        "a.png": _img(200, 300), "big.jpg": _img(750, 1000), "tiny.png": _img(17, 31),
        "gray.png": _img(40, 50, 1), "rgba.png": _img(33, 44, 4), "deep16.png": _img(30, 20, 3, np.uint16),
        "gray16.tif": _img(25, 35, 1, np.uint16),
        "sub dir/ünïcode name.png": _img(64, 64), "sub dir/nested/x.webp": _img(48, 80),
    }
    for rel, img in files.items():
        write_image_file(src / rel, img)
    summary = translator.translate_folder(src, tmp_path / "out", batch_size=3, progress=False)
    assert (summary.converted, summary.failed, summary.skipped) == (len(files), 0, 0)
    for rel, img in files.items():
        out = read_image(tmp_path / "out" / rel)
        assert out.shape[:2] == img.shape[:2], rel
        assert out.dtype == img.dtype, rel  # 16-bit in, 16-bit out
    rgba_out = read_image(tmp_path / "out" / "rgba.png")
    assert np.array_equal(rgba_out[:, :, 3], files["rgba.png"][:, :, 3])  # alpha carried over
    assert not (tmp_path / "out" / "failed.jsonl").exists()


def test_bad_files_are_listed_and_the_rest_converted(ckpt, tmp_path):
    src = tmp_path / "in"
    for k in range(3):
        write_image_file(src / f"good{k}.png", _img(32, 32))
    good_jpg = write_image_file(tmp_path / "g.jpg", _img(64, 64)).read_bytes()
    (src / "empty.jpg").write_bytes(b"")
    (src / "truncated.jpg").write_bytes(good_jpg[: len(good_jpg) // 2])
    (src / "text.png").write_text("not an image at all")
    r = cli("convert", ckpt, src, tmp_path / "out", "--device", "cpu")
    assert r.returncode == 1, r.stderr
    for name in ("empty.jpg", "truncated.jpg", "text.png"):
        assert name in r.stderr
    failed = [json.loads(x) for x in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()]
    assert sorted(os.path.basename(f["path"]) for f in failed) == ["empty.jpg", "text.png", "truncated.jpg"]
    assert all(f["reason"] for f in failed)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["good0.png", "good1.png", "good2.png"]
    assert "converted 3" in r.stderr and "failed 3" in r.stderr


def test_output_inside_input_is_refused_and_inputs_never_replaced(translator, tmp_path):
    src = tmp_path / "in"
    write_image_file(src / "a.png", _img(32, 32))
    before = (src / "a.png").read_bytes()
    with pytest.raises(ConvertError, match="inside the input folder"):
        translator.translate_folder(src, src / "out", progress=False)
    with pytest.raises(ConvertError, match="the input folder"):
        translator.translate_folder(src, src, progress=False)
    s = translator.translate_folder(src, src, in_place_ok=True, progress=False)
    assert s.failed == 1 and "overwrite an input" in s.failures[0][1]
    assert (src / "a.png").read_bytes() == before
    s = translator.translate_folder(src, src, in_place_ok=True, ext="jpg", progress=False)
    assert s.converted == 1 and (src / "a.jpg").exists() and (src / "a.png").read_bytes() == before


def test_existing_outputs_are_kept_unless_overwrite(translator, tmp_path):
    src = tmp_path / "in"
    write_image_file(src / "a.png", _img(32, 32))
    write_image_file(src / "b.png", _img(32, 32))
    out = tmp_path / "out"
    (out).mkdir()
    (out / "a.png").write_bytes(b"user's own file")
    s = translator.translate_folder(src, out, progress=False)
    assert (s.converted, s.skipped) == (1, 1) and (out / "a.png").read_bytes() == b"user's own file"
    s = translator.translate_folder(src, out, overwrite=True, progress=False)
    assert s.converted == 2 and read_image(out / "a.png").shape == (32, 32, 3)


def test_ext_and_quality_and_stdin_list(ckpt, tmp_path):
    src = tmp_path / "in"
    paths = [write_image_file(src / "x" / "a.png", _img(32, 48, 4)),
             write_image_file(src / "y" / "b c.png", _img(20, 20, 3, np.uint16))]
    r = cli("convert", ckpt, "-", tmp_path / "out", "--ext", "jpg", "--quality", "80", "--device", "cpu",
            stdin="\n".join(map(str, paths)) + "\n")
    assert r.returncode == 0, r.stderr
    a, b = read_image(tmp_path / "out" / "x" / "a.jpg"), read_image(tmp_path / "out" / "y" / "b c.jpg")
    assert a.shape == (32, 48, 3) and b.shape == (20, 20, 3) and b.dtype == np.uint8


def test_single_file_input(ckpt, tmp_path):
    f = write_image_file(tmp_path / "one.png", _img(30, 30))
    r = cli("convert", ckpt, f, tmp_path / "out", "--device", "cpu")
    assert r.returncode == 0 and read_image(tmp_path / "out" / "one.png").shape == (30, 30, 3)


def test_cyclegan_direction_required(tmp_path):
    ck = make_translator(tmp_path / "cg", method="cyclegan")
    write_image_file(tmp_path / "in" / "a.png", _img(16, 16))
    r = cli("convert", ck, tmp_path / "in", tmp_path / "out", "--device", "cpu")
    assert r.returncode == 2 and "a2b, b2a" in r.stderr and "Traceback" not in r.stderr
    assert "pass --direction a2b|b2a" in r.stderr and "direction=" not in r.stderr  # the option, not the API
    r = cli("convert", ck, tmp_path / "in", tmp_path / "out", "--direction", "b2a", "--device", "cpu")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_kill_midway_then_rerun_finishes_with_valid_outputs(ckpt, tmp_path):
    src = tmp_path / "in"
    n = 40
    for k in range(n):
        write_image_file(src / f"{k:03d}.png", _img(256, 256))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(repo_root()))
    proc = subprocess.Popen([sys.executable, "-m", "translate", "convert", str(ckpt), str(src), str(out),
                             "--batch-size", "1", "--device", "cpu", "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 120 and len(list(out.glob("*.png"))) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("*.png")))
    assert 0 < done < n, "the kill should land midway"
    r = cli("convert", ckpt, src, out, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert f"skipped {done}" in r.stderr
    outs = sorted(out.glob("*.png"))
    assert len(outs) == n and all(read_image(p).shape == (256, 256, 3) for p in outs)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_symlinked_inputs_mirror_their_own_names(translator, tmp_path):
    real = write_image_file(tmp_path / "store" / "deep" / "real name.png", _img(24, 24))
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "link.png").symlink_to(real)
    s = translator.translate_folder(tmp_path / "links", tmp_path / "out", progress=False)
    assert s.converted == 1 and (tmp_path / "out" / "link.png").is_file()
    assert real.read_bytes() == (tmp_path / "links" / "link.png").read_bytes()  # input untouched


def test_convert_folder_is_the_whole_job(ckpt, tmp_path):
    """The job behind `translate convert`: load, convert, summarise (one process here)."""
    from translate.convert import ConvertJob, convert_folder
    from translate.errors import DirectionError

    write_image_file(tmp_path / "in" / "x" / "a.png", _img(20, 24))
    job = convert_folder(ckpt, tmp_path / "in", tmp_path / "out", device="cpu", progress=False, batch_size=2)
    assert isinstance(job, ConvertJob) and job.processes == 1 and job.is_main
    assert job.summary.converted == 1 and job.line().startswith("converted 1")
    assert read_image(tmp_path / "out" / "x" / "a.png").shape == (20, 24, 3)
    with pytest.raises(DirectionError, match="direction='a2b'"):
        convert_folder(make_translator(tmp_path / "cg", method="cyclegan"), tmp_path / "in", tmp_path / "o2",
                       device="cpu", progress=False)
