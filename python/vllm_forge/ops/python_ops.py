"""The Python providers (Triton kernels, torch references) as torch custom ops.

Each is defined in its own namespace (vllm_forge_triton::<op>, vllm_forge_torch::<op>)
with the schema of the native op, inferred from the reference's annotations and the
table's mutated arguments (vllm_forge.ops.spec; tests/platform/test_providers.py checks it
against the C++ schemas), and the table's fake.
As opaque ops with fake implementations they trace cleanly under torch.compile, and the
call counter for the kernel report ticks at run time, inside the op.
"""

import functools
from collections.abc import Callable

import torch

from vllm_forge.ops import spec
from vllm_forge.report import python_counters


def schema(op: str) -> str:
    return torch.library.infer_schema(spec.reference_of(op), mutates_args=spec.BY_NAME[op].mutates)


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
    lib._register_fake(op, spec.fake(op))
    return getattr(getattr(torch.ops, f"vllm_forge_{provider}"), op).default
