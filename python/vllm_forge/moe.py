"""vLLM's MoE routing on the CPU through our topk_softmax, by vLLM's extension points.

On the CPU every FusedMoE layer routes through a CPURouter (router_factory.py) whose plain
softmax top-k is torch code (cpu_router._softmax_topk). vLLM has no hook to pick a router,
but its MoERunner (which holds the router) is a PluggableLayer: `MoERunner.register_oot`
makes the factory instantiate our subclass, ForgeMoERunner, which swaps a plain CPURouter
for a ForgeCPURouter before MoERunner.__init__ stores it. ForgeCPURouter serves the
routing vLLM's _softmax_topk computes (softmax scoring, no grouped top-k, no custom routing
function, no correction bias, no hash table) with one call of our op; every other scheme
stays vLLM's (super()). Everything else about the layer (experts, shared experts, EPLB
capture, dtype conversion of the ids in BaseRouter._select_experts) is unchanged.

Same result as vLLM's: top-k of the logits is top-k of their softmax (softmax is
monotonic), softmax over the top-k logits is the renormalised top-k of the full softmax,
and exp(logit - logsumexp) is the full softmax. Weights float32, ids int32, as vLLM's.
Differences: our weights are computed in fp32 whatever the logits' dtype (vLLM rounds them
to bf16/fp16 first for such logits), and ids come sorted by weight (vLLM's are in
torch.topk(sorted=False) order).

Registered in each worker before the model is built (ForgeCpuWorker), like layers.py.
Opt out with "-topk_softmax" in compilation_config.custom_ops (as for our other layers);
FORGE_KERNELS_TOPK_SOFTMAX picks the provider, as for every op. Not covered: models that
pass their own runner_cls (a subclass of MoERunner under another name, e.g. the
Transformers backend's) and the monolithic CPU experts (zentorch, Arm W4A8), which route
through cpu_router.select_experts themselves.
"""

import functools
import logging

import torch

from vllm_forge import ops

logger = logging.getLogger("vllm.forge.moe")

OP = "topk_softmax"  # our op, and the name to opt out with in custom_ops
RUNNER = "MoERunner"  # vLLM's class name, the key of its PluggableLayer registry
_registered = False


def forge_routing_enabled() -> bool:
    """False when the user put "-topk_softmax" in compilation_config.custom_ops. Records
    the name in vLLM's enabled/disabled sets, so its check of custom_ops knows it."""
    from vllm.config import get_current_vllm_config

    cc = get_current_vllm_config().compilation_config
    enabled = f"-{OP}" not in cc.custom_ops
    (cc.enabled_custom_ops if enabled else cc.disabled_custom_ops).update([OP])
    return enabled


def _serves(router) -> bool:
    """Whether `router` is a CPURouter computing plain softmax top-k (_softmax_topk)."""
    from vllm.model_executor.layers.fused_moe.router.cpu_router import CPURouter

    return (
        type(router) is CPURouter
        and not router.use_grouped_topk
        and router.scoring_func == "softmax"
        and router.custom_routing_function is None
        and router.e_score_correction_bias is None
        and getattr(router, "_hash_indices_table", None) is None
    )


@functools.cache
def router_class():
    """ForgeCPURouter, made once (vLLM's router module is imported on first use)."""
    from vllm.model_executor.layers.fused_moe.router.cpu_router import CPURouter

    class ForgeCPURouter(CPURouter):
        """CPURouter whose plain softmax top-k is our topk_softmax. Made from a CPURouter
        by forge_router() (its state copied), never constructed directly by vLLM."""

        _forge_topk_softmax = None  # the provider's callable, resolved once

        def _compute_routing(
            self,
            hidden_states: torch.Tensor,
            router_logits: torch.Tensor,
            indices_type: torch.dtype | None,
            *,
            input_ids: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if router_logits.dim() != 2 or not router_logits.is_floating_point():
                return super()._compute_routing(
                    hidden_states, router_logits, indices_type, input_ids=input_ids
                )
            if router_logits.stride(-1) != 1:
                router_logits = router_logits.contiguous()
            shape = (router_logits.shape[0], self.top_k)
            weights = torch.empty(shape, dtype=torch.float32, device=router_logits.device)
            ids = torch.empty(shape, dtype=torch.int32, device=router_logits.device)
            self._forge_topk_softmax(weights, ids, router_logits, self.renormalize)
            # ids stay int32 (as vLLM's CPURouter returns them): BaseRouter._select_experts
            # converts them to indices_type after EPLB mapping.
            return weights, ids

    return ForgeCPURouter


def forge_router(router):
    """A ForgeCPURouter with `router`'s state when we serve its routing scheme (and the
    user has not opted out); else `router` itself."""
    if not _serves(router) or not forge_routing_enabled():
        return router
    from vllm.platforms import current_platform

    cls = router_class()
    ours = cls.__new__(cls)
    ours.__dict__.update(router.__dict__)
    ours._forge_topk_softmax = ops.choose(OP, current_platform.device_type).fn
    return ours


def register_moe_runner() -> None:
    """Register ForgeMoERunner in place of vLLM's MoERunner; idempotent."""
    global _registered
    if _registered:
        return
    from vllm.model_executor.custom_op import op_registry_oot
    from vllm.model_executor.layers.fused_moe.runner.moe_runner import MoERunner

    if RUNNER in op_registry_oot:  # someone else's replacement: leave it be
        if not getattr(op_registry_oot[RUNNER], "_forge", False):
            logger.warning(
                "vllm-forge: %s already replaced by %s; MoE routing stays on it",
                RUNNER,
                op_registry_oot[RUNNER].__qualname__,
            )
        _registered = True
        return

    @MoERunner.register_oot
    class ForgeMoERunner(MoERunner):
        """vLLM's MoERunner, holding a ForgeCPURouter where vLLM built a plain CPURouter."""

        _forge = True

        def __init__(self, layer_name, moe_config, router, *args, **kwargs):
            super().__init__(layer_name, moe_config, forge_router(router), *args, **kwargs)

    _registered = True
