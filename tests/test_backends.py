"""Inference runtimes: Translator.load(backend=...), convert --backend, export --quantize int8."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import make_translator, write_image_file

from translate import Translator
from translate.cli import main
from translate.export import TOLERANCE, ExportError, quantize_int8

RUNTIMES = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return make_translator(tmp_path_factory.mktemp("teacher"))


@pytest.mark.parametrize("backend", RUNTIMES)
def test_backend_matches_torch_at_any_size_and_in_tiles(teacher, backend):
    # fp32 is the parity reference (the default, auto, may pick bf16 on CPUs with AMX / AVX-512 BF16)
    ref = Translator.load(teacher, device="cpu", tile_pixels=48 * 48, tile_overlap=8, precision="fp32")
    t = Translator.load(teacher, device="cpu", tile_pixels=48 * 48, tile_overlap=8, backend=backend,
                        precision="fp32")
    assert t.backend == backend and all(p["max_abs_diff"] <= TOLERANCE for p in t.backend_parity["a2b"])
    g = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 37, 45), (2, 3, 90, 70)]:  # padded to the multiple; the second goes through tiles
        x = torch.rand(shape, generator=g) * 2 - 1
        assert (t.translate_tensor(x) - ref.translate_tensor(x)).abs().max() <= TOLERANCE


def test_convert_with_onnxruntime_matches_torch(teacher, tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        write_image_file(tmp_path / "in" / f"{k}.png", rng.integers(0, 256, (40, 52, 3), dtype=np.uint8))
    for backend in ("torch", "onnxruntime"):
        assert main(["convert", str(teacher), str(tmp_path / "in"), str(tmp_path / backend), "--backend", backend,
                     "--device", "cpu", "--no-progress", "--precision", "fp32"]) == 0
    from translate.data.io import read_image

    for k in range(3):
        a = read_image(tmp_path / "torch" / f"{k}.png").astype(int)
        b = read_image(tmp_path / "onnxruntime" / f"{k}.png").astype(int)
        assert np.abs(a - b).max() <= 1  # within one 8-bit level (rounding of 1e-6 differences)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino")
def test_openvino_bf16_hint_is_a_choice(teacher):
    """OpenVINO runs f32 when asked (the parity reference) and its bf16 inference hint on request;
    onnxruntime runs only its fp32 graph, which auto picks for it."""
    from translate.runtime import has_native_precision

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = Translator.load(teacher, device="cpu", precision="fp32").translate_tensor(x)
    if has_native_precision(torch.device("cpu"), "bf16"):
        t = Translator.load(teacher, device="cpu", backend="openvino", precision="bf16")
        assert t.precision == "bf16" and t.backend_parity["a2b"]  # recorded, not held to the fp32 tolerance
        mse = float(((t.translate_tensor(x) - ref) ** 2).mean())
        assert 10 * np.log10(4.0 / max(mse, 1e-12)) > 30  # PSNR on [-1, 1]
    with pytest.raises(ExportError, match="fp32 graph"):
        Translator.load(teacher, device="cpu", backend="onnxruntime", precision="bf16")
    assert Translator.load(teacher, device="cpu", backend="onnxruntime").precision == "fp32"  # auto


def test_bad_backend_arguments_are_clear_errors(teacher, tmp_path):
    with pytest.raises(ExportError, match="unknown backend 'tensorrt'"):
        Translator.load(teacher, device="cpu", backend="tensorrt")
    with pytest.raises(ExportError, match="no such ONNX file"):
        Translator.load(teacher, device="cpu", backend="onnxruntime", onnx=tmp_path / "missing.onnx")


def test_int8_is_calibrated_reported_and_refused_when_not_faster(teacher, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    for k in range(4):
        write_image_file(tmp_path / "cal" / f"{k}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    report = quantize_int8(teacher, tmp_path / "int8.onnx", tmp_path / "cal", force=True, repeats=1)
    assert report["written"] and report["images"] == 4 and 15 < report["psnr_db"] < 80
    t = Translator.load(teacher, device="cpu", backend="onnxruntime", onnx=tmp_path / "int8.onnx")
    assert t.translate_tensor(torch.zeros(1, 3, 40, 40)).shape == (1, 3, 40, 40)

    import translate.runtimes.int8 as int8

    times = iter([0.010, 0.020])  # fp32 10 ms, int8 20 ms: slower
    monkeypatch.setattr(int8, "median_seconds", lambda run, x, repeats: next(times))
    with pytest.raises(ExportError, match="int8 is not faster on this machine: 20.0 ms vs 10.0 ms"):
        quantize_int8(teacher, tmp_path / "refused.onnx", tmp_path / "cal", repeats=1)
    assert not (tmp_path / "refused.onnx").exists()
