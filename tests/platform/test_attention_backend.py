"""FORGE_ATTN: registration in vLLM's enum, selection, and declining what it cannot do."""

import pytest
import torch
from vllm.v1.attention.backends.registry import AttentionBackendEnum
from vllm.v1.attention.selector import AttentionSelectorConfig

from vllm_forge.attention import registration
from vllm_forge.attention.registration import BACKEND_PATH
from vllm_forge.platform.cpu import ForgeCpuPlatform  # importing registers FORGE_ATTN


def config(**overrides):
    base = dict(head_size=64, dtype=torch.bfloat16, kv_cache_dtype="auto", block_size=128)
    base.update(overrides)
    return AttentionSelectorConfig(**base)


def test_registered_in_enum_and_idempotent():
    registration.register_attention_backend()
    registration.register_attention_backend()
    member = AttentionBackendEnum["FORGE_ATTN"]
    assert member.get_path() == BACKEND_PATH
    assert member.get_class().get_name() == "FORGE_ATTN"


@pytest.mark.parametrize("selected", [None, "FORGE_ATTN"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_size", [32, 64, 80, 128, 256])
def test_selected_by_default_and_by_name(selected, dtype, head_size):
    backend = AttentionBackendEnum[selected] if selected else None
    path = ForgeCpuPlatform.get_attn_backend_cls(backend, config(dtype=dtype, head_size=head_size))
    assert path == BACKEND_PATH


def test_sliding_window_supported():
    assert (
        ForgeCpuPlatform.get_attn_backend_cls(None, config(has_sliding_window=True)) == BACKEND_PATH
    )


def test_other_backend_by_name_is_respected():
    path = ForgeCpuPlatform.get_attn_backend_cls(AttentionBackendEnum.CPU_ATTN, config())
    assert path == AttentionBackendEnum.CPU_ATTN.get_path()


@pytest.mark.parametrize(
    "overrides,reason",
    [
        (dict(kv_cache_dtype="fp8"), "kv_cache_dtype not supported"),
        (dict(head_size=40), "head_size not supported"),
        (dict(head_size=512), "head_size not supported"),
        (dict(has_sink=True), "attention sinks not supported"),
        (dict(use_non_causal=True), "non-causal attention not supported"),
        (dict(attn_type="encoder_only"), "attention type encoder_only not supported"),
        (dict(attn_type="encoder_decoder"), "attention type encoder_decoder not supported"),
    ],
)
def test_unsupported_falls_back_to_cpu_attn_with_one_log_line(overrides, reason, caplog):
    registration._logged_declines.clear()
    with caplog.at_level("WARNING", logger="vllm.forge"):
        for _ in range(3):
            path = ForgeCpuPlatform.get_attn_backend_cls(None, config(**overrides))
            assert path == AttentionBackendEnum.CPU_ATTN.get_path()
    lines = [
        r.getMessage() for r in caplog.records if "FORGE_ATTN does not support" in r.getMessage()
    ]
    assert len(lines) == 1 and reason in lines[0]


def test_mla_falls_back_to_vllm_mla_backend():
    path = ForgeCpuPlatform.get_attn_backend_cls(None, config(use_mla=True, head_size=576))
    assert path in (
        AttentionBackendEnum.CPU_MLA.get_path(),
        AttentionBackendEnum.AMX_MLA.get_path(),
    )


def test_impl_refuses_what_the_selector_cannot_see():
    from vllm_forge.attention.backend import ForgeAttentionImpl

    with pytest.raises(NotImplementedError, match="ALiBi"):
        ForgeAttentionImpl(4, 64, 0.125, 2, alibi_slopes=[0.5] * 4)
    with pytest.raises(NotImplementedError, match="sinks"):
        ForgeAttentionImpl(4, 64, 0.125, 2, sinks=torch.zeros(4))
