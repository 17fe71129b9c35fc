"""MoE routing on our topk_softmax (vllm_forge/moe.py), without an engine: vLLM's own
FusedMoEFactory builds our runner and router once registered; the router gives vLLM's
CPURouter's results (renormalised or not), eager and traced by Dynamo; every other
routing scheme, and the "-topk_softmax" opt-out, leave vLLM's router in place.
(The engine itself, token for token: tests/e2e/test_moe_routing.py.)"""

import pytest
import torch
from vllm.config import CompilationConfig, VllmConfig, set_current_vllm_config
from vllm.model_executor.custom_op import op_registry_oot
from vllm.model_executor.layers.fused_moe.layer import FusedMoEFactory
from vllm.model_executor.layers.fused_moe.router.cpu_router import CPURouter
from vllm.model_executor.layers.fused_moe.runner.moe_runner import MoERunner

from vllm_forge import moe

E, K, H = 4, 2, 64


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Our runner registered for this module's tests only: vLLM's registry is global."""
    before = op_registry_oot.get(moe.RUNNER)
    moe.register_moe_runner()
    moe.register_moe_runner()  # idempotent
    yield op_registry_oot[moe.RUNNER]
    if before is None:
        op_registry_oot.pop(moe.RUNNER, None)
    else:
        op_registry_oot[moe.RUNNER] = before
    moe._registered = False


_layers = iter(range(10**6))


def build(vllm_config: VllmConfig | None = None, **kwargs) -> MoERunner:
    args = dict(
        num_experts=E,
        top_k=K,
        hidden_size=H,
        intermediate_size=H,
        params_dtype=torch.float32,
        tp_size=1,
        dp_size=1,
        pcp_size=1,
    )
    with set_current_vllm_config(vllm_config or VllmConfig()):
        return FusedMoEFactory(prefix=f"moe.{next(_layers)}", **{**args, **kwargs})


def by_id(weights: torch.Tensor, ids: torch.Tensor):
    """Each row's (ids, weights) in ascending id order: vLLM's ids come from
    topk(sorted=False), ours sorted by weight."""
    order = ids.argsort(dim=-1)
    return ids.gather(-1, order), weights.gather(-1, order)


def test_factory_builds_our_runner_and_router(registered):
    runner = build()
    assert type(runner) is registered and isinstance(runner, MoERunner)
    assert type(runner.router) is moe.router_class() and isinstance(runner.router, CPURouter)
    assert runner.router._forge_topk_softmax is torch.ops.vllm_forge.topk_softmax.default
    assert runner.router.routing_method_type == CPURouter(K, E).routing_method_type


@pytest.mark.parametrize("renormalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("indices_type", [None, torch.int64])
def test_matches_vllm_cpu_router(renormalize, dtype, indices_type):
    ours = build(renormalize=renormalize).router
    theirs = CPURouter(top_k=K, global_num_experts=E, renormalize=renormalize)
    torch.manual_seed(0)
    for tokens in (1, 7, 128):
        logits = (torch.randn(tokens, E) * 2).to(dtype)
        hidden = torch.randn(tokens, H)
        w, i = ours.select_experts(hidden, logits, indices_type)
        w_ref, i_ref = theirs.select_experts(hidden, logits, indices_type)
        assert w.dtype == w_ref.dtype == torch.float32 and w.shape == (tokens, K)
        assert i.dtype == i_ref.dtype == (indices_type or torch.int32)
        (i, w), (i_ref, w_ref) = by_id(w, i), by_id(w_ref, i_ref)
        if dtype == torch.float32:
            assert torch.equal(i, i_ref)
            torch.testing.assert_close(w, w_ref, rtol=1e-6, atol=1e-7)
        else:
            # The same choice up to ties (bf16 logits tie often; on a tie we take the
            # lower id, vLLM's topk(sorted=False) whichever): the same chosen logits.
            assert torch.equal(
                logits.gather(-1, i.long()).sort(-1).values,
                logits.gather(-1, i_ref.long()).sort(-1).values,
            )
            # vLLM rounds bf16 weights to bf16 (several times when not renormalising:
            # up to 2% off); ours are the fp32 values of the chosen experts' softmax.
            torch.testing.assert_close(
                w.sort(-1).values, w_ref.sort(-1).values, rtol=0.03, atol=0.01
            )
            exact = torch.softmax(logits.float(), -1).gather(-1, i.long())
            if renormalize:
                exact = exact / exact.sum(-1, keepdim=True)
            torch.testing.assert_close(w, exact, rtol=1e-6, atol=1e-7)
        if renormalize:
            torch.testing.assert_close(w.sum(-1), torch.ones(tokens))


def test_no_tokens():
    w, i = build().router.select_experts(torch.empty(0, H), torch.empty(0, E), torch.int64)
    assert w.shape == i.shape == (0, K) and i.dtype == torch.int64


@pytest.mark.parametrize("renormalize", [True, False])
def test_traced_by_dynamo(renormalize):
    """The engine's compiled mode traces the router into the model's graph: one graph,
    our op in it, the same results."""
    router = build(renormalize=renormalize).router
    logits = torch.randn(9, E)
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x: router.select_experts(None, x), fullgraph=True, backend="aot_eager", dynamic=True
    )
    w, i = compiled(logits)
    w_ref, i_ref = CPURouter(K, E, renormalize=renormalize).select_experts(None, logits)
    (i, w), (i_ref, w_ref) = by_id(w, i), by_id(w_ref, i_ref)
    assert torch.equal(i, i_ref)
    torch.testing.assert_close(w, w_ref, rtol=1e-6, atol=1e-7)
    explained = torch._dynamo.explain(lambda x: router.select_experts(None, x))(logits)
    assert explained.graph_break_count == 0
    assert "vllm_forge.topk_softmax" in str(explained.graphs[0].graph)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(use_grouped_topk=True, num_expert_group=2, topk_group=1),
        dict(
            custom_routing_function=lambda hidden_states, gating_output, topk, renormalize: (
                torch.topk(gating_output, topk)
            )
        ),
        dict(
            e_score_correction_bias=torch.zeros(E),
            use_grouped_topk=True,
            num_expert_group=2,
            topk_group=1,
            scoring_func="sigmoid",
        ),
    ],
    ids=["grouped", "custom_function", "sigmoid_bias"],
)
def test_other_schemes_stay_vllms(kwargs):
    runner = build(**kwargs)
    assert type(runner.router) is CPURouter


def test_opt_out_with_custom_ops():
    config = VllmConfig(compilation_config=CompilationConfig(custom_ops=["-topk_softmax"]))
    runner = build(config)
    assert type(runner.router) is CPURouter
    assert "topk_softmax" in config.compilation_config.disabled_custom_ops
    config = VllmConfig()
    assert type(build(config).router) is moe.router_class()
    assert "topk_softmax" in config.compilation_config.enabled_custom_ops
