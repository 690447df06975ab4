"""translate export: ONNX / TorchScript files that compute what the PyTorch generator computes."""

import argparse
import json
import sys

import pytest
import torch

from translate.checkpoint import load_generator, save_translator
from translate.errors import DirectionError, UserError
from translate.export import (
    TOLERANCE,
    ExportError,
    add_export_parser,
    export_translator,
    format_report,
    load_torchscript,
)
from translate.models import build_generator
from translate.nn import init_weights
from translate.nn.inference import for_inference

# name -> (registry name, constructor args); tiny nets, one per normalisation.
NETS = {
    "unet": ("unet", {"num_downs": 5, "ngf": 8}),  # batch norm (per-image at inference), dropout
    "resnet": ("resnet_6blocks", {"ngf": 8}),  # instance norm, reflect padding
}


def _net(key, seed=0):
    torch.manual_seed(seed)
    name, cfg = NETS[key]
    return init_weights(build_generator(name, **cfg))


def _save(folder, method, nets):
    net = next(iter(nets.values()))
    return save_translator(folder, method, nets, {
        "input_nc": 3, "output_nc": 3, "size_multiple": net.size_multiple, "batchnorm": "per_image"})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    return {
        "unet": _save(root / "unet" / "translator", "pix2pix", {"a2b": _net("unet")}),
        "resnet": _save(root / "resnet" / "translator", "pix2pix", {"a2b": _net("resnet")}),
        "cyclegan": _save(root / "cyc" / "translator", "cyclegan",
                          {"a2b": _net("resnet", 1), "b2a": _net("resnet", 2)}),
    }


def _reference(folder, direction="a2b"):
    return for_inference(load_generator(folder, direction), batchnorm="per_image", copy_net=False)


def _odd_input(net, batch=2):
    """A batch whose size was used neither at export time (s x s, 2s x 2s) nor by the parity check."""
    m = net.size_multiple
    height, width = (3 * m, 5 * m) if m >= 32 else (36, 20)  # ResNets need sides >= 8
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(7)) * 2 - 1


def _check_report(report, path, fmt):
    assert report["ok"] and report["checked"] and report["format"] == fmt
    assert report["path"] == str(path) and report["bytes"] == path.stat().st_size
    assert report["tolerance"] == TOLERANCE
    assert [p["shape"][0] for p in report["parity"]] == [1, 2]
    assert all(p["max_abs_diff"] <= TOLERANCE for p in report["parity"])


@pytest.mark.parametrize("key", list(NETS))
def test_torchscript_matches_pytorch_at_new_sizes(checkpoints, tmp_path, key):
    out = tmp_path / "gen.pt"
    report = export_translator(checkpoints[key], "torchscript", out)
    _check_report(report, out, "torchscript")
    text = format_report(report)  # what `translate export` prints
    assert f"wrote {out}" in text and text.count("max |diff|") == 2 and "FAILED" not in text
    module, meta = load_torchscript(out)
    net = _reference(checkpoints[key])
    assert meta["size_multiple"] == net.size_multiple == report["size_multiple"]
    assert (meta["input_nc"], meta["output_nc"], meta["value_range"]) == (3, 3, [-1.0, 1.0])
    assert meta["direction"] == "a2b" and meta["method"] == "pix2pix"
    x = _odd_input(net)
    with torch.inference_mode():
        diff = (module(x) - net(x)).abs().max().item()
    assert diff <= TOLERANCE
    # The file checks its input shape itself (tracing alone would drop the generator's check).
    bad = torch.zeros(1, 3, net.size_multiple + 2, net.size_multiple)
    with pytest.raises(Exception, match=f"multiples of {net.size_multiple}"):
        module(bad)


@pytest.mark.slow  # the torch.export-based exporter takes a few seconds even for tiny nets
@pytest.mark.parametrize("key", list(NETS))
def test_onnx_matches_pytorch_at_new_sizes(checkpoints, tmp_path, key):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "gen.onnx"
    report = export_translator(checkpoints[key], "onnx", out)
    _check_report(report, out, "onnx")
    assert report["opset"] >= 18
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, outp.name) == ("input", "output")
    assert isinstance(inp.shape[0], str) and inp.shape[1] == 3  # dynamic batch, fixed channels
    assert all(isinstance(d, str) and d.startswith(f"{report['size_multiple']}*") for d in inp.shape[2:])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["size_multiple"]) == report["size_multiple"]
    assert meta["direction"] == "a2b" and json.loads(meta["value_range"]) == [-1.0, 1.0]
    assert "translate_version" in meta and meta["layout"] == "NCHW"
    net = _reference(checkpoints[key])
    x = _odd_input(net)
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.inference_mode():
        assert (got - net(x)).abs().max().item() <= TOLERANCE


def test_onnx_old_opset_uses_legacy_exporter_and_failed_check_writes_nothing(checkpoints, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "gen17.onnx"
    report = export_translator(checkpoints["unet"], "onnx", out, opset=17)
    assert report["opset"] == 17 and report["ok"]
    assert next(o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")) == 17
    # ONNX Runtime's kernels differ from PyTorch's by ~1e-7 here, so a zero tolerance must fail.
    strict = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match="parity check failed") as err:
        export_translator(checkpoints["unet"], "onnx", strict, opset=17, tolerance=0.0)
    assert not strict.exists() and list(tmp_path.iterdir()) == [out]  # no temp leftovers either
    assert err.value.report["ok"] is False and err.value.report["parity"][0]["max_abs_diff"] > 0


def test_refuses_to_overwrite(checkpoints, tmp_path):
    out = tmp_path / "gen.pt"
    out.write_bytes(b"precious")
    with pytest.raises(ExportError, match=f"{out}.*already exists"):
        export_translator(checkpoints["resnet"], "torchscript", out, check=False)
    assert out.read_bytes() == b"precious"
    report = export_translator(checkpoints["resnet"], "torchscript", out, check=False, overwrite=True)
    assert report["parity"] == [] and not report["checked"]
    assert load_torchscript(out)[1]["arch"] == "resnet"


def test_cyclegan_needs_a_direction(checkpoints, tmp_path):
    out = tmp_path / "b2a.pt"
    with pytest.raises(DirectionError, match=r"pass direction='a2b' or direction='b2a'"):
        export_translator(checkpoints["cyclegan"], "torchscript", out)
    assert not out.exists()
    report = export_translator(checkpoints["cyclegan"], "torchscript", out, direction="b2a", check=False)
    module, meta = load_torchscript(out)
    assert report["direction"] == meta["direction"] == "b2a" and meta["method"] == "cyclegan"
    x = _odd_input(_reference(checkpoints["cyclegan"], "b2a"), batch=1)
    with torch.inference_mode():
        assert torch.allclose(module(x), _reference(checkpoints["cyclegan"], "b2a")(x), atol=TOLERANCE)
        assert not torch.allclose(module(x), _reference(checkpoints["cyclegan"], "a2b")(x), atol=TOLERANCE)


def test_missing_onnxruntime_gives_install_hint(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    out = tmp_path / "gen.onnx"
    with pytest.raises(ExportError, match=r"pip install 'translate-images\[export\]'.*onnxruntime"):
        export_translator(checkpoints["unet"], "onnx", out)
    assert not out.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "tflite"}, "unknown export format 'tflite'; valid: onnx, torchscript"),
    ({"fmt": "torchscript", "opset": 17}, "--opset applies to ONNX export only"),
    ({"fmt": "onnx", "opset": 3}, "opset must be an integer >= 7"),
    ({"fmt": "torchscript", "direction": "AtoB"}, "direction 'AtoB' is not in this pix2pix translator; it has: a2b"),
    ({"fmt": "torchscript", "direction": "b2a"}, "direction 'b2a' is not in this pix2pix translator; it has: a2b"),
    ({"fmt": "torchscript", "tolerance": -1.0}, "tolerance must be a number >= 0"),
])
def test_bad_arguments_are_explained(checkpoints, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message.replace("|", r"\|")):  # ExportError or DirectionError
        export_translator(checkpoints["unet"], out=tmp_path / "x", **kwargs)
    with pytest.raises(ExportError, match="is a folder"):
        export_translator(checkpoints["unet"], "torchscript", tmp_path)


def test_cli(checkpoints, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="translate")
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "gen.pt"
    # CHECKPOINT --format ... OUT: the positionals may sit on either side of the options.
    argv = ["export", str(checkpoints["unet"].parent), "--format", "torchscript", str(out), "--no-check"]
    args = parser.parse_args(argv)
    assert args.func(args, ["translate", *argv]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "multiples of 32" in text and "not checked" in text
    assert load_torchscript(out)[1]["size_multiple"] == 32
    with pytest.raises(SystemExit):
        parser.parse_args(["export", str(out)])  # --format and OUT are required


def test_import_is_light_and_directions_agree():
    import subprocess

    from translate import checkpoint, export

    assert export.DIRECTIONS == checkpoint.DIRECTIONS
    # `translate --help` builds every subparser; this module must not pull torch in for that.
    code = "import sys, translate.export; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
