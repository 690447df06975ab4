"""Devices, precisions, autocast and gradient scalers: translate.runtime."""

import contextlib

import pytest
import torch

from translate import runtime
from translate.runtime import (PRECISIONS, DeviceError, Scalers, autocast, check_precision, compute_dtype,
                               native_precisions, resolve_device, warn_if_slow_precision)

CPU = torch.device("cpu")


def test_resolve_device_names_and_errors(monkeypatch):
    assert resolve_device("cpu") == CPU and resolve_device(CPU) == CPU
    with pytest.raises(DeviceError, match="unknown device 'gpu0'; use cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == CPU and resolve_device("auto") == CPU
    with pytest.raises(DeviceError, match="'cuda:1' was asked for but CUDA is not available"):
        resolve_device("cuda:1")
    assert issubclass(DeviceError, ValueError)  # the CLI reports it as a usage error


def test_precision_table_and_checks():
    assert set(PRECISIONS) == {"fp32", "bf16", "fp16"}
    assert compute_dtype("fp32") == torch.float32 and compute_dtype("bf16") == torch.bfloat16
    with pytest.raises(DeviceError, match="unknown precision 'fp8'; valid: fp32, bf16, fp16"):
        check_precision("fp8")
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        check_precision("fp16", CPU)
    assert check_precision("bf16", CPU) == "bf16"


def test_autocast_is_a_no_op_for_fp32_only():
    assert isinstance(autocast(CPU, "fp32"), contextlib.nullcontext)
    with autocast(CPU, "bf16"):
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype == torch.bfloat16


def test_slow_precision_warning_follows_native_support(monkeypatch):
    monkeypatch.setattr(runtime, "has_native_precision", lambda device, precision: False)
    with pytest.warns(RuntimeWarning, match="no native bf16 support"):
        warn_if_slow_precision(CPU, "bf16")
    assert native_precisions(CPU) == ["fp32"]
    monkeypatch.setattr(runtime, "has_native_precision", lambda device, precision: True)
    assert native_precisions(CPU) == ["fp32", "bf16"]


def test_scalers_pass_through_without_fp16():
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    scalers = Scalers(["gen"], "fp32", CPU)
    assert not scalers.enabled
    before = net.weight.detach().clone()
    scalers.backward("gen", net(torch.ones(1, 3)).sum())
    assert torch.equal(net.weight.grad, torch.ones(1, 3))  # unscaled
    scalers.step("gen", opt)
    assert torch.equal(net.weight.detach(), before - 1.0)
    scalers.load_state_dict(scalers.state_dict())


def test_auto_precision_follows_the_instruction_set(monkeypatch):
    """auto: bf16 on CPUs with AMX or AVX-512 BF16 (as torch detects them), fp32 elsewhere; an
    explicit precision is kept and said to be asked for."""
    from translate.runtime import AUTO, PRECISION_CHOICES, resolve_precision

    assert PRECISION_CHOICES == (AUTO, *PRECISIONS)
    for isa, expected in (("amx", "bf16"), ("avx512_bf16", "bf16"), ("avx512", "fp32"), ("avx2", "fp32"),
                          ("default", "fp32")):
        monkeypatch.setattr(runtime, "cpu_isa", lambda isa=isa: isa)
        choice = resolve_precision(AUTO, CPU, work="train", arch="unet_256")
        assert (choice.precision, choice.requested, choice.machine) == (expected, AUTO, isa)
        assert choice.describe().startswith(f"{expected} (auto: ") and isa in choice.describe() + choice.machine
        assert runtime.has_native_precision(CPU, "bf16") == (expected == "bf16")
        assert resolve_precision(None, CPU).precision == expected  # None means auto
        explicit = resolve_precision("fp32", CPU)
        assert (explicit.precision, explicit.reason) == ("fp32", "asked for")
    with pytest.raises(DeviceError, match="valid: auto, fp32, bf16, fp16"):
        resolve_precision("fp8", CPU)
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)


def test_auto_keeps_fp32_where_bf16_was_measured_slower(monkeypatch):
    from translate.runtime import resolve_precision

    monkeypatch.setattr(runtime, "cpu_isa", lambda: "amx")
    monkeypatch.setitem(runtime.BF16_SLOWER, "amx", frozenset({("convert", "slim_unet")}))
    slow = resolve_precision("auto", CPU, work="convert", arch="slim_unet")
    assert slow.precision == "fp32" and "measured slower" in slow.reason
    assert resolve_precision("auto", CPU, work="train", arch="slim_unet").precision == "bf16"
    assert resolve_precision("auto", CPU, work="convert", arch="unet_256").precision == "bf16"
    assert resolve_precision("bf16", CPU, work="convert", arch="slim_unet").precision == "bf16"  # asked for
    # backends: onnxruntime runs its fp32 graph; OpenVINO has its own entries ("convert-openvino")
    assert resolve_precision("auto", CPU, arch="unet_256", backend="onnxruntime").precision == "fp32"
    assert resolve_precision("auto", CPU, arch="slim_unet", backend="openvino").precision == "bf16"


def test_cpu_isa_comes_from_torch():
    isa = runtime.cpu_isa()
    assert isa in ("amx", "avx512_bf16", "avx512", "avx2", "default")
    if hasattr(torch.cpu, "_is_amx_tile_supported"):
        assert (isa == "amx") == bool(torch.cpu._is_amx_tile_supported() and torch.cpu._is_avx512_bf16_supported())
