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
