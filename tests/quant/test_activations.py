"""FORGE_QUANT_ACTIVATIONS: exact by default, int8 on request, a clear error otherwise;
the line the kernel report and `python -m vllm_forge.info` print."""

import pytest

from vllm_forge.quant import activations


def test_exact_by_default(monkeypatch):
    monkeypatch.delenv(activations.FORGE_QUANT_ACTIVATIONS, raising=False)
    assert activations.mode() == "exact" and not activations.quantize_x()
    assert "=exact: x as given" in activations.describe("cpu")


def test_int8_on_request(monkeypatch):
    monkeypatch.setenv(activations.FORGE_QUANT_ACTIVATIONS, " INT8 ")
    assert activations.quantize_x()
    line = activations.describe("cpu")
    assert line.startswith("FORGE_QUANT_ACTIVATIONS=int8: x rounded to int8 per block")
    kernel = "VNNI int8 dot products" if activations.has_int8_kernel("cpu") else "slower"
    assert kernel in line


def test_bad_value_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(activations.FORGE_QUANT_ACTIVATIONS, "fp8")
    with pytest.raises(
        ValueError, match=r"FORGE_QUANT_ACTIVATIONS='fp8': must be one of exact, int8"
    ):
        activations.quantize_x()
