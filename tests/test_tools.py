"""tools/: combine_ab.py, split_ab.py, make_unpaired.py and the shell wrappers over the CLI.

The Python tools run in-process through their ``main(argv)`` (fast) and once each as a user
runs them (``python tools/x.py`` in a subprocess). The shell wrappers run against a fake
``translate`` placed first on PATH that records its argv and stdin, so these tests do not
depend on the real ``translate convert``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from translate.data.io import read_image, write_image

TOOLS = Path(__file__).resolve().parents[1] / "tools"
UNICODE_DIR = "sub dir ünï"
UNICODE_NAME = "café 1"
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def load_tool(name: str):
    if str(TOOLS) not in sys.path:  # what running the script does: its folder first (for _common)
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(f"tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def combine_ab():
    return load_tool("combine_ab")


@pytest.fixture(scope="module")
def split_ab():
    return load_tool("split_ab")


@pytest.fixture(scope="module")
def make_unpaired():
    return load_tool("make_unpaired")


def rand(shape, dtype=np.uint8, seed=0):
    high = np.iinfo(dtype).max + 1
    return np.random.default_rng(seed).integers(0, high, shape, dtype=dtype)


def make_pairs(root: Path, keys, ext_a=".png", ext_b=".png", shape=(5, 6, 3), dtype=np.uint8):
    """root/A/<key><ext_a> and root/B/<key><ext_b>; returns {key: (a, b)} arrays."""
    arrays = {}
    for i, key in enumerate(keys):
        a, b = rand(shape, dtype, seed=2 * i), rand(shape, dtype, seed=2 * i + 1)
        write_image(root / "A" / f"{key}{ext_a}", a)
        write_image(root / "B" / f"{key}{ext_b}", b)
        arrays[key] = (a, b)
    return arrays


def snapshot(folder: Path):
    """relative path -> bytes of every file under folder (symlinks read through)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs tools/<name>.py the way a user does, from the repository root."""
    return subprocess.run([sys.executable, str(TOOLS / f"{name}.py"), *map(str, args)],
                          cwd=TOOLS.parent, capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------- combine_ab / split_ab


def test_combine_then_split_round_trip_is_pixel_exact(tmp_path, split_ab):
    keys = ["plain", f"{UNICODE_DIR}/{UNICODE_NAME}"]
    arrays = make_pairs(tmp_path, keys)

    proc = run_tool("combine_ab", "--a", tmp_path / "A", "--b", tmp_path / "B",
                    "--out", tmp_path / "ab", "--ext", "png")
    assert proc.returncode == 0, proc.stderr
    assert "combined 2 pair(s)" in proc.stdout
    for key, (a, b) in arrays.items():
        np.testing.assert_array_equal(read_image(tmp_path / "ab" / f"{key}.png"),
                                      np.concatenate([a, b], axis=1))

    assert split_ab.main(["--src", str(tmp_path / "ab"), "--out", str(tmp_path / "split")]) == 0
    for key, (a, b) in arrays.items():
        np.testing.assert_array_equal(read_image(tmp_path / "split" / "A" / f"{key}.png"), a)
        np.testing.assert_array_equal(read_image(tmp_path / "split" / "B" / f"{key}.png"), b)


def test_combine_lists_unmatched_and_still_combines_the_rest(tmp_path, combine_ab, capsys):
    make_pairs(tmp_path, ["1", "2"], ext_b=".jpg")
    write_image(tmp_path / "A" / "lonely a.png", rand((5, 6, 3)))
    write_image(tmp_path / "B" / "deep" / "lonely b.png", rand((5, 6, 3)))

    rc = combine_ab.main(["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                          "--out", str(tmp_path / "ab")])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{tmp_path / 'A' / 'lonely a.png'}: only in A" in err
    assert f"{tmp_path / 'B' / 'deep' / 'lonely b.png'}: only in B" in err
    # --ext same keeps A's extension; matched pairs are written despite the failures.
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["1.png", "2.png"]


def test_16bit_is_preserved_through_combine_and_split(tmp_path, combine_ab, split_ab):
    arrays = make_pairs(tmp_path, ["g"], shape=(4, 5, 1), dtype=np.uint16)
    a, b = arrays["g"]
    assert combine_ab.main(["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                            "--out", str(tmp_path / "ab")]) == 0
    ab = read_image(tmp_path / "ab" / "g.png")
    assert ab.dtype == np.uint16 and ab.max() > 255
    np.testing.assert_array_equal(ab, np.concatenate([a, b], axis=1))

    assert split_ab.main(["--src", str(tmp_path / "ab"), "--out", str(tmp_path / "s"),
                          "--ext", "tif"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "s" / "A" / "g.tif"), a)
    np.testing.assert_array_equal(read_image(tmp_path / "s" / "B" / "g.tif"), b)


def test_combine_harmonises_size_channels_and_depth_with_warnings(tmp_path, combine_ab, capsys):
    write_image(tmp_path / "A" / "x.png", rand((8, 8, 1)))            # gray 8x8
    write_image(tmp_path / "B" / "x.png", rand((12, 16, 3), seed=1))  # RGB 16x12
    write_image(tmp_path / "A" / "y.png", rand((4, 4, 3), np.uint16))
    write_image(tmp_path / "B" / "y.png", rand((4, 4, 3), seed=2))
    rc = combine_ab.main(["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                          "--out", str(tmp_path / "ab")])
    err = capsys.readouterr().err
    assert rc == 0
    x = read_image(tmp_path / "ab" / "x.png")
    assert x.shape == (8, 16, 3) and x.dtype == np.uint8
    assert np.array_equal(x[:, :8, 0], x[:, :8, 1])  # gray replicated to RGB
    assert "B resized from 16x12 to A's size 8x8" in err and "both made RGB" in err
    assert read_image(tmp_path / "ab" / "y.png").dtype == np.uint8
    assert "reduced to 8 bits" in err

    rc = combine_ab.main(["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                          "--out", str(tmp_path / "strict"), "--no-resize"])
    assert rc == 1 and "sizes must match" in capsys.readouterr().err


def test_no_overwrite_without_flag_and_inputs_never_touched(tmp_path, combine_ab, split_ab,
                                                            capsys):
    make_pairs(tmp_path, [UNICODE_NAME, "b"])
    args = ["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"), "--out", str(tmp_path / "ab")]
    inputs = snapshot(tmp_path / "A"), snapshot(tmp_path / "B")
    assert combine_ab.main(args) == 0
    sentinel = tmp_path / "ab" / "b.png"
    sentinel.write_bytes(b"keep me")
    before = snapshot(tmp_path / "ab")
    capsys.readouterr()

    assert combine_ab.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("exists already (pass --overwrite") == 2
    assert snapshot(tmp_path / "ab") == before

    assert combine_ab.main(args + ["--overwrite"]) == 0
    assert sentinel.read_bytes() != b"keep me"
    assert (snapshot(tmp_path / "A"), snapshot(tmp_path / "B")) == inputs

    # An output folder overlapping an input is refused before anything is written.
    for out in (tmp_path / "A", tmp_path / "A" / "inner", tmp_path):
        with pytest.raises(SystemExit) as exc:
            combine_ab.main(["--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                             "--out", str(out), "--overwrite"])
        assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        split_ab.main(["--src", str(tmp_path / "ab"), "--out", str(tmp_path / "ab")])
    assert exc.value.code == 2
    assert "overlaps" in capsys.readouterr().err
    assert (snapshot(tmp_path / "A"), snapshot(tmp_path / "B")) == inputs

    # split: existing outputs are kept too.
    assert split_ab.main(["--src", str(tmp_path / "ab"), "--out", str(tmp_path / "s")]) == 0
    split_before = snapshot(tmp_path / "s")
    assert split_ab.main(["--src", str(tmp_path / "ab"), "--out", str(tmp_path / "s")]) == 1
    assert snapshot(tmp_path / "s") == split_before


def test_split_warns_on_odd_width_and_reports_bad_files(tmp_path, split_ab, capsys):
    img = rand((3, 7, 3))
    write_image(tmp_path / "src" / "odd.png", img)
    write_image(tmp_path / "src" / "thin.png", rand((3, 1, 3)))
    (tmp_path / "src" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    rc = split_ab.main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "odd.png: odd width 7" in err
    assert f"{tmp_path / 'src' / 'thin.png'}: is 1 pixel(s) wide" in err
    assert f"{tmp_path / 'src' / 'broken.jpg'}: " in err
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "A" / "odd.png"), img[:, :3])
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "B" / "odd.png"), img[:, 4:])


# ---------------------------------------------------------------------------- make_unpaired


def _unpaired_sources(tmp_path: Path):
    src_a, src_b = tmp_path / "photos", tmp_path / "paintings ünï"
    write_image(src_a / "a1.png", rand((4, 4, 3)))
    write_image(src_a / "sub dir" / f"{UNICODE_NAME}.jpg", rand((4, 4, 3), seed=1))
    (src_a / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (src_a / "notes.txt").write_text("not an image")
    write_image(src_a / ".hidden.png", rand((4, 4, 3)))
    write_image(src_b / "b1.png", rand((6, 5, 3), seed=2))
    return src_a, src_b


def test_make_unpaired_links_by_default_and_reports_bad_files(tmp_path, make_unpaired, capsys):
    src_a, src_b = _unpaired_sources(tmp_path)
    out = tmp_path / "data"
    rc = make_unpaired.main(["--a", str(src_a), "--b", str(src_b), "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 1  # the bad image
    assert f"{src_a / 'bad.png'}: truncated PNG" in cap.err
    assert f"{out / 'trainA'}: 2 linked + 0 copied" in cap.out
    assert "1 unreadable left out; 2 non-image or hidden file(s) skipped" in cap.out
    assert f"{out / 'trainB'}: 1 linked + 0 copied" in cap.out

    placed = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert placed == ["trainA/a1.png", f"trainA/sub dir/{UNICODE_NAME}.jpg", "trainB/b1.png"]
    link = out / "trainA" / "sub dir" / f"{UNICODE_NAME}.jpg"
    assert link.is_symlink()
    assert Path(os.readlink(link)) == (src_a / "sub dir" / f"{UNICODE_NAME}.jpg").resolve()

    # Without --overwrite nothing existing is replaced; the second run fails on each of them.
    (src_a / "bad.png").unlink()
    assert make_unpaired.main(["--a", str(src_a), "--b", str(src_b), "--out", str(out)]) == 1
    assert capsys.readouterr().err.count("exists already") == 3
    assert make_unpaired.main(["--a", str(src_a), "--b", str(src_b), "--out", str(out),
                               "--overwrite"]) == 0
    assert (src_a / "a1.png").is_file() and not (src_a / "a1.png").is_symlink()


def test_make_unpaired_copy_from_the_command_line(tmp_path):
    src_a, src_b = _unpaired_sources(tmp_path)
    (src_a / "bad.png").unlink()
    out = tmp_path / "data"
    proc = run_tool("make_unpaired", "--a", src_a, "--b", src_b, "--out", out,
                    "--split", "test", "--copy")
    assert proc.returncode == 0, proc.stderr
    assert "2 linked" not in proc.stdout and "0 linked + 2 copied" in proc.stdout
    copied = out / "testA" / "sub dir" / f"{UNICODE_NAME}.jpg"
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == (src_a / "sub dir" / f"{UNICODE_NAME}.jpg").read_bytes()
    assert (out / "testB" / "b1.png").is_file()

    proc = run_tool("make_unpaired", "--a", src_a, "--b", src_b, "--out", src_a)
    assert proc.returncode == 2 and "overlaps" in proc.stderr


def test_split_help_from_the_command_line():
    proc = run_tool("split_ab", "--help")
    assert proc.returncode == 0
    for option in ("--src", "--out", "--ext", "--overwrite"):
        assert option in proc.stdout


# --------------------------------------------------------------------------- shell wrappers


@pytest.fixture
def fake_translate(tmp_path):
    """A ``translate`` first on PATH that records argv (NUL-separated) and, for INPUT "-", stdin."""
    bin_dir = tmp_path / "fake bin"
    bin_dir.mkdir()
    script = bin_dir / "translate"
    script.write_text('#!/usr/bin/env bash\n'
                      'printf "%s\\0" "$@" > "$FAKE_ARGV"\n'
                      'if [ "${3:-}" = "-" ]; then cat > "$FAKE_STDIN"; fi\n'
                      'exit "${FAKE_RC:-0}"\n')
    script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               FAKE_ARGV=str(tmp_path / "argv"), FAKE_STDIN=str(tmp_path / "stdin"))

    class Fake:
        def run(self, script_name, *args, rc=0):
            return subprocess.run(["bash", str(TOOLS / script_name), *map(str, args)],
                                  env=dict(env, FAKE_RC=str(rc)), capture_output=True,
                                  text=True, timeout=60)

        @property
        def argv(self):
            return (tmp_path / "argv").read_bytes().decode().split("\0")[:-1]

        @property
        def stdin_lines(self):
            return (tmp_path / "stdin").read_text().splitlines()

    return Fake()


@needs_bash
@pytest.mark.parametrize("script", ["convert_folder.sh", "convert_tree.sh"])
def test_shell_wrappers_usage(script, fake_translate):
    proc = fake_translate.run(script, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {script}")
    proc = fake_translate.run(script, "ckpt", "in")
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = fake_translate.run(script, "--device", "cpu", "ckpt", "in", "out")
    assert proc.returncode == 2 and "looks like an option" in proc.stderr


@needs_bash
def test_convert_folder_passes_arguments_through(tmp_path, fake_translate):
    ckpt, src, dst = (str(tmp_path / f"my {name} ünï") for name in ("run", "in", "out"))
    proc = fake_translate.run("convert_folder.sh", ckpt, src, dst, "--device", "cpu",
                              "--set", "a b=c d")
    assert proc.returncode == 0, proc.stderr
    assert fake_translate.argv == ["convert", ckpt, src, dst, "--device", "cpu",
                                   "--set", "a b=c d"]
    assert fake_translate.run("convert_folder.sh", ckpt, src, dst, rc=3).returncode == 3


def _tree(root: Path):
    for rel in ("sub one/x.png", "sub one/deep dir/y.PNG", f"{UNICODE_DIR}/z.jpg",
                "top level.png", ".hidden/h.png", "sub one/.h.png", "sub one/readme.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"fake image")
    (root / "empty").mkdir()


@needs_bash
def test_convert_tree_lists_subfolder_images_in_one_process(tmp_path, fake_translate):
    root, out = tmp_path / "in root", tmp_path / "out root"
    _tree(root)
    proc = fake_translate.run("convert_tree.sh", "ckpt dir", root, out, "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    assert fake_translate.argv == ["convert", "ckpt dir", "-", str(out), "--batch-size", "2"]
    assert sorted(fake_translate.stdin_lines) == sorted(
        str(root / rel) for rel in ("sub one/x.png", "sub one/deep dir/y.PNG",
                                    f"{UNICODE_DIR}/z.jpg"))
    assert "sub one/: 2 image(s)" in proc.stdout and f"{UNICODE_DIR}/: 1 image(s)" in proc.stdout
    assert "empty/: no images" in proc.stdout and "1 image(s) directly in" in proc.stdout

    assert fake_translate.run("convert_tree.sh", "ckpt", root, out, rc=4).returncode == 4


@needs_bash
def test_convert_tree_single_subfolder_and_nothing_to_do(tmp_path, fake_translate):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "only sub" / "deeper").mkdir(parents=True)
    (root / "only sub" / "deeper" / "a.png").write_bytes(b"fake")
    proc = fake_translate.run("convert_tree.sh", "ckpt", f"{root}/", out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    # One subfolder: converted as a folder, so paths mirror from the subfolder, not "deeper/".
    assert fake_translate.argv == ["convert", "ckpt", str(root / "only sub"),
                                   str(out / "only sub"), "--device", "cpu"]

    (root / "only sub" / "deeper" / "a.png").unlink()
    proc = fake_translate.run("convert_tree.sh", "ckpt", root, out)
    assert proc.returncode == 1 and "no images found" in proc.stderr


def test_tools_import_the_installed_package_without_editing_sys_path():
    for script in sorted(TOOLS.glob("*.py")):
        assert "sys.path" not in script.read_text(encoding="utf-8").replace("``sys.path``", ""), script.name
