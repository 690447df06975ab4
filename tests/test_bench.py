"""``translate bench``: every measurement runs (tiny settings) and the result is well formed."""

import argparse
import importlib.util
import json
import math
import shutil

import numpy as np
import pytest
import torch

from translate.bench import BenchError, add_bench_parser, all_what, format_table, run_bench
from translate.bench.measure import convert_what

from conftest import make_translator, write_image_file

PRECISIONS = ("fp32", "bf16")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_result():
    return run_bench(device="cpu", precisions="fp32,bf16", quick=True, windows=2, window_seconds=0.25,
                     warmup=0.1, log=lambda msg: None, argv=["translate", "bench", "--quick"])


def test_every_requested_row_is_present_and_positive(quick_result):
    r = json.loads(json.dumps(quick_result))  # JSON-serialisable as it is
    rows = {(row["measurement"], row["precision"]): row for row in r["rows"]}
    assert set(rows) == {(w, p) for w in all_what() for p in PRECISIONS}
    assert len(r["rows"]) == len(rows)
    for (what, prec), row in rows.items():
        assert _positive(row["value"]), (what, prec, row)
        assert row["windows"] and all(_positive(v) for v in row["windows"])
        assert _positive(row["achieved_flops_per_s"])
        assert _positive(row["pct_of_peak"]) and row["pct_of_peak"] < 1e5  # above 100 is possible (see docs)
        if what != "peak":
            assert _positive(row["flops_per_item"])
            assert isinstance(row["peak_memory_bytes"], int) and row["peak_memory_bytes"] >= 0
            assert row["peak_memory_kind"]
    assert rows[("train-pix2pix", "fp32")]["unit"] == "img/s"
    assert rows[("train-cyclegan", "fp32")]["unit"] == "it/s"
    for prec in PRECISIONS:
        assert _positive(r["peak"][prec]["flops_per_s"])


def test_flops_are_counted(quick_result):
    flops = quick_result["flops"]
    for method in ("pix2pix", "cyclegan"):
        f = flops[method]
        assert _positive(f["generator_forward_flops_per_image"])
        # a training step runs the generator forward and backward, and the discriminators
        assert f["train_step_flops"] > 2 * f["generator_forward_flops_per_image"]


def test_quality_guard_reports_psnr(quick_result):
    quality = {(q["measurement"], q["precision"]): q for q in quick_result["quality"]}
    assert set(quality) == {("convert-pix2pix", "bf16"), ("convert-cyclegan", "bf16")}
    for q in quality.values():
        assert q["psnr_db"] is not None and math.isfinite(q["psnr_db"]) and q["psnr_db"] > 20
        assert q["images"] > 0 and q["weights"].startswith("random-init")
    for row in quick_result["rows"]:
        if row["measurement"].startswith("convert") and row["precision"] == "bf16":
            assert row["psnr_vs_fp32_db"] == quality[(row["measurement"], "bf16")]["psnr_db"]


def test_machine_description_and_table(quick_result):
    m = quick_result["machine"]
    for key in ("device", "device_name", "cpu_model", "torch", "torch_threads"):
        assert m[key] not in (None, "")
    assert quick_result["command"] == "translate bench --quick"
    table = format_table(quick_result)
    for what in all_what():
        assert what in table
    assert "random-init" in table


def test_checkpoint_and_real_folder(tmp_path):
    ckpt = make_translator(tmp_path / "run", "pix2pix")
    rng = np.random.default_rng(0)
    for k in range(3):
        write_image_file(tmp_path / "imgs" / f"{k}.jpg", rng.integers(0, 256, (40, 72, 3), dtype=np.uint8))
    r = run_bench(device="cpu", precisions=["fp32", "bf16", "auto"], what="convert", quick=True, windows=1,
                  window_seconds=0.2, warmup=0, checkpoint=ckpt, data=tmp_path / "imgs", log=lambda msg: None)
    # "convert" names every conversion row; the peaks of fp32 and bf16 are always probed
    assert [(row["measurement"], row["precision"]) for row in r["rows"]] == [
        ("peak", "fp32"), ("peak", "bf16"), *((w, p) for w in convert_what() for p in ("fp32", "bf16", "auto"))]
    row = next(x for x in r["rows"] if x["measurement"] == "convert-pix2pix" and x["precision"] == "fp32")
    assert row["weights"].startswith("checkpoint") and _positive(row["value"])
    assert _positive(row["pct_of_fp32_peak"]) and _positive(row["pct_of_bf16_peak"])
    assert _positive(row["flops_per_item"])
    auto = r["rows"][4]
    assert auto["computed_in"] in ("fp32", "bf16") and auto["precision_reason"]
    assert _positive(auto["pct_of_peak"]) and _positive(auto["pct_of_bf16_peak"])
    quality = {q["precision"]: q for q in r["quality"] if q["measurement"] == "convert-pix2pix"}
    assert quality["bf16"]["images"] == 3 and quality["bf16"]["psnr_db"] > 20
    table = format_table(r)
    assert f"auto:{auto['computed_in']}" in table and "% bf16 pk" in table and "instruction set:" in table


def test_cli_options_json_and_errors(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="translate")
    add_bench_parser(parser.add_subparsers(dest="command"))
    sub = parser._subparsers._group_actions[0].choices["bench"]
    assert all(a.help for a in sub._actions)
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--what", "peak", "--precision", "fp32", "--json", str(out)]
    args = parser.parse_args(argv)
    assert args.func(args, ["translate", *argv]) == 0
    doc = json.loads(out.read_text())
    assert doc["rows"][0]["measurement"] == "peak" and doc["command"].startswith("translate bench --quick")
    assert "matmul" in capsys.readouterr().out
    assert doc["settings"]["batch_size"] == 1 and doc["settings"]["convert_batch_size"] == 4  # as translate convert
    with pytest.raises(BenchError, match="fp16 needs a CUDA device"):
        run_bench(device="cpu", precisions="fp16", quick=True)
    with pytest.raises(BenchError, match="conversion batch size must be >= 1"):
        run_bench(device="cpu", convert_batch_size=0, quick=True)
    with pytest.raises(BenchError, match="unknown measurement"):
        run_bench(device="cpu", what="train-foo", quick=True)


def _student(tmp_path):
    """A teacher translator and a slim_unet student whose provenance names it."""
    import torch

    from translate.checkpoint import save_translator
    from translate.models import build_generator

    teacher = make_translator(tmp_path / "teacher", "pix2pix")
    torch.manual_seed(1)
    gen = build_generator("slim_unet", input_nc=3, output_nc=3, num_downs=5, ngf=4)
    pre = {"input_nc": 3, "output_nc": 3, "size_multiple": gen.size_multiple, "batchnorm": "per_image",
           "crop_size": 32, "value_range": [-1.0, 1.0], "pad_mode": "reflect"}
    prov = {"step": 2, "teacher": str((teacher / "translator").resolve()), "teacher_direction": "a2b",
            "teacher_arch": "unet"}
    save_translator(tmp_path / "student" / "translator", "distill", {"a2b": gen}, pre, prov)
    return tmp_path / "student"


def _fast(**kw):
    """A quick run; its ``rows`` without the matmul peaks (always probed, in fp32 and bf16), which
    stay in ``peak``."""
    kw = {"precisions": "fp32", **kw}
    r = run_bench(device="cpu", quick=True, windows=1, window_seconds=0.1, warmup=0, images=2,
                  log=lambda msg: None, **kw)
    assert set(r["peak"]) >= {"fp32", "bf16"}
    r["rows"] = [row for row in r["rows"] if row["measurement"] != "peak"]
    return r


def test_opt_in_rows_are_not_in_the_default_run(quick_result):
    assert {r["measurement"] for r in quick_result["rows"]} == set(all_what())


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_convert_backends_rows_have_speed_and_psnr_against_torch(tmp_path):
    r = _fast(what="convert-backends", precisions="fp32,bf16")
    rows = {row["backend"]: row for row in r["rows"] if row["precision"] != "bf16"}
    expected = {"torch", "onnxruntime", "onnxruntime int8"}
    if importlib.util.find_spec("openvino") is not None:
        expected.add("openvino")
    else:
        assert any("openvino is not installed" in n for n in r["notes"])
    assert set(rows) == expected
    assert any("fp32 only" in n for n in r["notes"])  # bf16 asked: skipped, and said so
    for name, row in rows.items():
        assert row["measurement"] == "convert-backends" and _positive(row["value"]), name
        if name != "torch":
            assert row["psnr_identical"] or row["psnr_vs_ref_db"] > 20, name
    assert rows["onnxruntime int8"]["precision"] == "int8" and rows["onnxruntime int8"]["quantize"]["images"] == 2
    assert rows["torch"]["psnr_reference"] == "fp32 torch"
    from translate.runtime import has_native_precision

    hinted = [row for row in r["rows"] if row["precision"] == "bf16"]  # OpenVINO's bf16 inference hint
    if importlib.util.find_spec("openvino") is not None and has_native_precision(torch.device("cpu"), "bf16"):
        assert [row["backend"] for row in hinted] == ["openvino"] and hinted[0]["psnr_vs_ref_db"] > 20
    else:
        assert not hinted
    table = format_table(r)
    assert "[onnxruntime int8]" in table and "PSNR/ref" in table


def test_student_and_teacher_rows(tmp_path):
    student = _student(tmp_path)
    r = _fast(what="convert-student", checkpoint=student)
    teacher, stud = r["rows"]
    assert (teacher["role"], stud["role"]) == ("teacher", "student")
    assert teacher["generator"] == "unet" and stud["generator"] == "slim_unet"
    assert stud["params"] < teacher["params"] and stud["gmacs_per_image"] < teacher["gmacs_per_image"]
    assert stud["speed_vs_teacher"] == pytest.approx(stud["value"] / teacher["value"])
    assert stud["psnr_reference"] == "teacher" and math.isfinite(stud["psnr_vs_ref_db"])
    table = format_table(r)
    assert "translate eval" in table and "x the teacher's images/s" in table
    with pytest.raises(BenchError, match="names no teacher"):
        _fast(what="convert-student", checkpoint=make_translator(tmp_path / "plain"))
    with pytest.raises(BenchError, match="needs --checkpoint"):
        _fast(what="convert-student")


def test_a_student_checkpoint_gets_its_teacher_and_runtime_rows_by_default(tmp_path):
    from translate import bench

    kw = dict(device="cpu", precisions="fp32", size=None, batch_size=1, netG_pix2pix="unet_256",
              netG_cyclegan="resnet_9blocks", data=None, images=None, warmup=None, windows=None,
              window_seconds=None, quick=True, num_workers=0, seed=0)
    student = bench._settings(what=None, checkpoint=_student(tmp_path), **kw)
    assert {"convert-student", "convert-backends"} <= set(student.what) and set(all_what()) <= set(student.what)
    plain = bench._settings(what=None, checkpoint=make_translator(tmp_path / "plain"), **kw)
    assert set(plain.what) == set(all_what())
    chosen = bench._settings(what="convert-pix2pix", checkpoint=_student(tmp_path / "again"), **kw)
    assert chosen.what == ["peak", "convert-pix2pix"]  # --what given: what was asked, and the peaks


def test_channels_last_row_matches_contiguous_outputs():
    r = _fast(what="convert-pix2pix,convert-pix2pix-channels-last")
    row = r["rows"][1]
    assert row["variant"] == "channels_last" and _positive(row["value"])
    assert row["psnr_identical"] or row["psnr_vs_ref_db"] > 40


@pytest.mark.slow  # ~15 s with a warm TorchInductor cache, longer cold
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="needs a C++ compiler")
def test_compile_flag_adds_compiled_training_rows():
    r = _fast(what="train-pix2pix", compile=True)
    plain, compiled = r["rows"]
    assert (plain["measurement"], compiled["measurement"]) == ("train-pix2pix", "train-pix2pix-compile")
    assert compiled["compile"] is True and plain["compile"] is False
    assert compiled["flops_per_item"] == plain["flops_per_item"]  # counted on the eager first step
    assert _positive(compiled["value"]) and compiled["first_step_seconds"] > 0



@pytest.mark.slow
def test_training_rates_and_flops_agree_with_what_a_step_counts():
    """With --batch-size 2 a CUT row in it/s counts steps (not images), so achieved FLOP/s is the
    per-step FLOPs times steps per second. The window is long next to a step, so a rate that
    counted two images per step would imply a window of half its real length."""
    batch, window = 2, 8.0
    r = run_bench(device="cpu", precisions="fp32", quick=True, size=32, what="train-cut", batch_size=batch,
                  windows=1, window_seconds=window, warmup=0, num_workers=0, log=lambda msg: None)
    (row,) = [x for x in r["rows"] if x["measurement"] != "peak"]  # the peaks are always probed
    per_step = {"it/s": 1, "img/s": batch}[row["unit"]]
    steps, rate = row["steps_per_window"][0], row["windows"][0]
    seconds = steps * per_step / rate  # the window's length as the rate implies it
    assert window <= seconds <= row["seconds"], seconds
    step_flops = r["flops"]["cut"]["train_step_flops"]
    assert row["achieved_flops_per_s"] == pytest.approx(step_flops * steps / seconds, rel=1e-6)


def test_guard_row_times_a_health_check():
    (row,) = _fast(what="train-cyclegan-guard")["rows"]  # unpaired: both generators, both sides
    assert row["measurement"] == "train-cyclegan-guard" and row["variant"] == "guard" and _positive(row["value"])
    assert _positive(row["health_check_seconds"])
