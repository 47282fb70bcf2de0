"""Tests of w2s_lens.models.devices: device and dtype resolution and their error messages."""

from __future__ import annotations

import pytest
import torch

from w2s_lens.models import devices
from w2s_lens.models import loading as models


def test_resolve_device(monkeypatch) -> None:
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(" CPU ") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda' was requested but CUDA is not available"):
        devices.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"'cuda:2'.*2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        devices.resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "meta", "", torch.device("meta")])
def test_resolve_device_names_accepted_values(bad) -> None:
    with pytest.raises(ValueError, match="unknown device .*accepted: 'auto', 'cpu', 'cuda'"):
        devices.resolve_device(bad)


def test_resolve_dtype(monkeypatch) -> None:
    assert devices.resolve_dtype("float32") == torch.float32
    assert devices.resolve_dtype("BFloat16 ") == torch.bfloat16
    assert devices.resolve_dtype("float16", "cpu") == torch.float16
    assert devices.resolve_dtype(torch.bfloat16) == torch.bfloat16
    assert devices.resolve_dtype("auto", "cpu") == torch.float32
    assert devices.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "_bf16_supported", lambda device: True)
    assert devices.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert devices.resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(devices, "_bf16_supported", lambda device: False)
    assert devices.resolve_dtype("auto", "cuda") == torch.float32


@pytest.mark.parametrize("bad", ["int8", "fp8", "", None, torch.int64])
def test_resolve_dtype_names_accepted_values(bad) -> None:
    with pytest.raises(ValueError, match="dtype .*accepted: 'auto', 'float32', 'bfloat16'"):
        devices.resolve_dtype(bad)


def test_the_resolvers_have_one_import_home() -> None:
    for name in ("resolve_device", "resolve_dtype", "DTYPES"):
        assert name in devices.__all__ and name not in models.__all__, name
