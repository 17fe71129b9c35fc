"""The choice between our W4A16/W8A16 kernel and vLLM's for GPTQ/AWQ/compressed-tensors
layers: pure functions of the environment (quant/selection.py)."""

import pytest

from vllm_forge.quant import selection


@pytest.mark.parametrize(
    "env,kernel,reason",
    [
        ({}, "ForgeWNA16LinearKernel", "faster in bench_quant_gemm (the platform disables vLLM's)"),
        ({"FORGE_WNA16": "vllm"}, "CPUWNA16LinearKernel", "FORGE_WNA16=vllm"),
        (
            {"VLLM_DISABLED_KERNELS": "CPUWNA16LinearKernel,ZentorchWNA16LinearKernel"},
            "ForgeWNA16LinearKernel",
            "disables vLLM's",
        ),
        (
            {"VLLM_DISABLED_KERNELS": "CPUWNA16LinearKernel"},
            "CPUWNA16LinearKernel",
            "set by the user",
        ),
        ({"VLLM_DISABLED_KERNELS": ""}, "CPUWNA16LinearKernel", "set by the user"),
    ],
)
def test_choice(env, kernel, reason):
    got, why = selection.choice(env)
    assert got == kernel and reason in why


def test_apply_disables_vllms_kernels_by_default():
    env = {}
    selection.apply(env)
    assert env == {"VLLM_DISABLED_KERNELS": "CPUWNA16LinearKernel,ZentorchWNA16LinearKernel"}
    assert selection.choice(env)[0] == "ForgeWNA16LinearKernel"


@pytest.mark.parametrize(
    "env", [{"VLLM_DISABLED_KERNELS": "SomeOtherKernel"}, {"FORGE_WNA16": "vllm"}]
)
def test_apply_leaves_the_users_choice(env):
    before = dict(env)
    selection.apply(env)
    assert env == before


def test_bad_value_is_a_clear_error():
    with pytest.raises(ValueError, match="FORGE_WNA16='marlin': expected 'forge' or 'vllm'"):
        selection.choice({"FORGE_WNA16": "marlin"})
