"""MoE routing through our topk_softmax (vllm_forge/moe.py), end to end: a tiny random
Qwen2-MoE (top-2 of 4 experts, weights not renormalised, plus a gated shared expert)
through the plugin, token for token against vLLM's builtin CPU platform, fp32, eager and
compiled (Dynamo traces the router into the graph, so our op runs inside it). Three
engine starts (about a minute each here): both of ours are compared with one builtin
eager run; in fp32 the compiled builtin run gives the same tokens. The renormalised case
(Mixtral) is covered router by router in tests/platform/test_moe_router.py."""

import pytest

from tests.e2e.test_generation import PROMPTS, compare, generate
from vllm_forge.tiny_model import make_tiny_model

pytestmark = pytest.mark.e2e

ARCH = "qwen2_moe"
MAX_TOKENS = 16
NUM_MOE_LAYERS = 2


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models") / ARCH, ARCH)


@pytest.fixture(scope="module")
def builtin(model, tmp_path_factory):
    run = generate(
        tmp_path_factory.mktemp("builtin"),
        model,
        "float32",
        True,
        plugin=False,
        prompts=PROMPTS,
        max_tokens=MAX_TOKENS,
    )
    assert run["platform"] == "CpuPlatform"
    assert not run["counts"]
    return run


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "compiled"])
def test_moe_routing_matches_builtin_platform(model, builtin, tmp_path, eager):
    ours = generate(
        tmp_path, model, "float32", eager, plugin=True, prompts=PROMPTS, max_tokens=MAX_TOKENS
    )
    assert ours["platform"] == "ForgeCpuPlatform"
    native = ours["counts"].get("native", {})
    # Every MoE layer routed through our kernel in every forward pass (at least one
    # pass per generated token), in the engine's own processes.
    assert native.get("topk_softmax", 0) >= NUM_MOE_LAYERS * MAX_TOKENS, dict(native)
    assert native.get("paged_attention", 0) > 0, dict(native)
    problems = compare(ours, builtin, "float32")
    assert not problems, "\n".join(problems)
