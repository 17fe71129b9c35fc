"""The provider chain of vllm_forge.ops: order, FORGE_KERNELS / FORGE_KERNELS_<OP>,
errors for bad values, the report of what was skipped and why, and the Python
providers as custom ops (results, call counters, torch.compile)."""

import struct

import pytest
import torch

from vllm_forge import info, ops
from vllm_forge.ops import python_ops, reference
from vllm_forge.report import NAME_BYTES, SLOT_BYTES, python_counters

# Every test starts with the default provider order (conftest.fresh_choice).
pytestmark = pytest.mark.usefixtures("fresh_choice")


def test_default_order_picks_native_everywhere():
    for op, choice in ops.providers("cpu").items():
        assert (choice.provider, choice.skipped, choice.source) == ("native", (), "default"), op
        assert choice.fn is getattr(torch.ops.vllm_forge, op).default


def test_global_order(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS", "torch")
    for op, choice in ops.providers("cpu").items():
        assert choice.provider == "torch" and choice.source == "FORGE_KERNELS"
        assert choice.fn is getattr(torch.ops.vllm_forge_torch, op).default


def test_per_op_order_wins_over_global(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS", "torch")
    fresh_choice.setenv("FORGE_KERNELS_PAGED_ATTENTION", " Native , torch ")
    assert ops.choose("paged_attention", "cpu").provider == "native"
    assert ops.choose("paged_attention", "cpu").source == "FORGE_KERNELS_PAGED_ATTENTION"
    assert ops.choose("rms_norm", "cpu").provider == "torch"


def test_skipped_providers_say_why(fresh_choice):
    fresh_choice.setenv("TRITON_INTERPRET", "0")
    fresh_choice.setenv("FORGE_KERNELS", "triton,torch")
    choice = ops.choose("softmax", "cpu")
    assert choice.provider == "torch"
    assert choice.skipped == ("triton: Triton runs CPU tensors only under TRITON_INTERPRET=1",)
    line = ops.summary("cpu")
    assert line.startswith("vllm-forge kernels on cpu: ")
    assert "softmax=torch (skipped triton: Triton runs CPU tensors only" in line


def test_triton_under_the_interpreter(fresh_choice):
    fresh_choice.setenv("TRITON_INTERPRET", "1")
    fresh_choice.setenv("FORGE_KERNELS", "triton")
    assert ops.choose("rms_norm", "cpu").fn is torch.ops.vllm_forge_triton.rms_norm.default


def test_native_missing_for_a_device(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS", "native,torch")
    choice = ops.choose("rms_norm", "meta")
    assert choice.provider == "torch"
    assert choice.skipped == ("native: no compiled meta kernel",)


def test_no_provider_left_is_an_error(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS_RMS_NORM", "native")
    with pytest.raises(
        ValueError,
        match=r"no provider can serve rms_norm on meta with the "
        r"order native \(FORGE_KERNELS_RMS_NORM\): native: no compiled meta kernel",
    ):
        ops.choose("rms_norm", "meta")


@pytest.mark.parametrize(
    "var,value,message",
    [
        (
            "FORGE_KERNELS",
            "cuda",
            r"FORGE_KERNELS='cuda': unknown provider 'cuda'; valid providers: "
            r"native, triton, torch",
        ),
        ("FORGE_KERNELS", " , ", r"unknown provider '\(empty\)'"),
        (
            "FORGE_KERNELS_SOFTMAX",
            "torch,torch",
            r"FORGE_KERNELS_SOFTMAX='torch,torch' lists a provider twice",
        ),
        (
            "FORGE_KERNELS_SOFTMAXX",
            "torch",
            r"FORGE_KERNELS_SOFTMAXX names no op; per-op variables are "
            r"FORGE_KERNELS_FUSED_ADD_RMS_NORM, .*FORGE_KERNELS_TOPK_SOFTMAX",
        ),
    ],
)
def test_bad_values_are_errors_listing_the_valid_ones(fresh_choice, var, value, message):
    fresh_choice.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        ops.choose("softmax", "cpu")


def test_unknown_op():
    with pytest.raises(ValueError, match="unknown op 'gemm'; known ops: reshape_and_cache"):
        ops.choose("gemm", "cpu")


def test_info_reports_provider_order_and_reasons(fresh_choice):
    fresh_choice.setenv("TRITON_INTERPRET", "0")
    fresh_choice.setenv("FORGE_KERNELS_SOFTMAX", "triton,torch")
    data = info.collect()
    assert data["ops"]["softmax"] == {
        "provider": "torch",
        "order_from": "FORGE_KERNELS_SOFTMAX",
        "skipped": ["triton: Triton runs CPU tensors only under TRITON_INTERPRET=1"],
        "serves": "library only: vLLM's sampler has no extension point for its softmax",
    }
    assert data["ops"]["rms_norm"]["provider"] == "native"
    text = info.format_text(data)
    assert (
        "softmax              torch (order from FORGE_KERNELS_SOFTMAX)   [skipped triton:" in text
    )
    assert "used by: the attention backend" in text  # where vLLM calls each op


def test_info_reports_the_wna16_kernel_choice(fresh_choice):
    fresh_choice.delenv("VLLM_DISABLED_KERNELS", raising=False)
    fresh_choice.setenv("FORGE_WNA16", "vllm")
    data = info.collect()
    assert data["wna16_linear"]["kernel"] == "CPUWNA16LinearKernel"
    assert (
        "int4/int8 checkpoints (GPTQ, AWQ, compressed-tensors W4A16/W8A16) on cpu: "
        "CPUWNA16LinearKernel (FORGE_WNA16=vllm" in info.format_text(data)
    )


def test_python_providers_have_the_native_schemas():
    """The table's mutated arguments and the references' annotations give the C++ schemas
    exactly."""
    for op in ops.OPS:
        native = getattr(torch.ops.vllm_forge, op).default._schema
        ours = torch._C.parse_schema(f"vllm_forge::{op}{python_ops.schema(op)}")
        assert [
            (
                a.name,
                a.type.annotation_str if hasattr(a.type, "annotation_str") else str(a.type),
                bool(a.alias_info and a.alias_info.is_write),
            )
            for a in ours.arguments
        ] == [
            (
                a.name,
                a.type.annotation_str if hasattr(a.type, "annotation_str") else str(a.type),
                bool(a.alias_info and a.alias_info.is_write),
            )
            for a in native.arguments
        ], op
        assert len(ours.returns) == len(native.returns) == 0


def test_torch_provider_computes_counts_and_compiles(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS", "torch")
    x, w = torch.randn(3, 40), torch.randn(40)
    expected = torch.empty(3, 40)
    reference.rms_norm(expected, x, w, 1e-6)
    python_counters.add("torch:rms_norm")  # make sure the slot exists before reading it
    before = _count("torch:rms_norm")

    def f(x, w):
        out = torch.empty_like(x)
        ops.rms_norm(out, x, w, 1e-6)
        return out

    torch.testing.assert_close(f(x, w), expected)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, w), expected)
    assert _count("torch:rms_norm") == before + 2  # it ran, inside the compiled graph too
    torch.library.opcheck(
        torch.ops.vllm_forge_torch.rms_norm.default, (torch.empty(3, 40), x, w, 1e-6)
    )


def _count(key: str) -> int:
    slot = python_counters._slots[key]
    return struct.unpack_from("<q", python_counters._buf, slot * SLOT_BYTES + NAME_BYTES)[0]
