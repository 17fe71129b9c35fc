"""The Python providers (Triton kernels, torch references) as torch custom ops.

Each is defined in its own namespace (vllm_forge_triton::<op>, vllm_forge_torch::<op>)
with the schema of the native op, inferred from the reference's annotations and the
MUTATED_ARGS table below (tests/test_op_rules.py checks both against the C++ schemas).
As opaque ops with fake implementations they trace cleanly under torch.compile, and the
call counter for the kernel report ticks at run time, inside the op.
"""

import functools
from typing import Callable

import torch

from vllm_forge.ops import reference
from vllm_forge.report import python_counters

# Arguments every op writes (its outputs, or in-place operands): the Tensor! of the schemas.
MUTATED_ARGS = {
    "reshape_and_cache": ("key_cache", "value_cache"),
    "paged_attention": ("out",),
    "rms_norm": ("out",),
    "fused_add_rms_norm": ("input", "residual"),
    "silu_and_mul": ("out",),
    "gelu_and_mul": ("out",),
    "rotary_embedding": ("query", "key"),
    "softmax": ("out",),
    "log_softmax": ("out",),
    "topk_softmax": ("topk_weights", "topk_ids"),
    "quant_gemm": ("out",),
}


def schema(op: str) -> str:
    return torch.library.infer_schema(getattr(reference, op), mutates_args=MUTATED_ARGS[op])


@functools.cache
def _library(provider: str) -> torch.library.Library:
    return torch.library.Library(f"vllm_forge_{provider}", "FRAGMENT")


@functools.cache
def register(provider: str, op: str, impl: Callable) -> Callable:
    """Define vllm_forge_<provider>::<op> running `impl` and return its OpOverload."""
    lib = _library(provider)
    key = f"{provider}:{op}"

    def counted(*args):
        python_counters.add(key)
        impl(*args)

    lib.define(op + schema(op))
    lib.impl(op, counted, "CompositeExplicitAutograd")
    lib._register_fake(op, lambda *args: None)
    return getattr(getattr(torch.ops, f"vllm_forge_{provider}"), op).default
