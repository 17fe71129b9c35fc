"""The three providers of every op, called directly (not through vllm_forge.ops, whose
choice of provider the fuzz tests must leave alone):
  native: torch.ops.vllm_forge.<op>, the compiled CPU kernel
  triton: vllm_forge.triton.<module>.<op>, under TRITON_INTERPRET=1 (tests/conftest.py)
  torch:  vllm_forge.ops.reference.<op>, the pure-torch reference
"""

import importlib
import importlib.util

import torch

from vllm_forge.ops import TRITON_MODULES, reference

# Without Triton installed there is no Triton provider to compare.
PROVIDERS = (
    ("native", "triton", "torch") if importlib.util.find_spec("triton") else ("native", "torch")
)
# Through the dispatcher a meta tensor anywhere routes a call to the fake (meta) kernel,
# which checks nothing; bad-input cases go straight to the CPU kernel, as
# tests/kernels/test_bad_inputs.py does.
CPU_ONLY = torch._C.DispatchKeySet("CPU")


def provider_fn(provider: str, op: str):
    if provider == "native":
        return getattr(torch.ops.vllm_forge, op).default
    if provider == "triton":
        return getattr(importlib.import_module(f"vllm_forge.triton.{TRITON_MODULES[op]}"), op)
    return getattr(reference, op)


def call(provider: str, op: str, args: list) -> None:
    provider_fn(provider, op)(*args)


def call_checked(provider: str, op: str, args: list) -> None:
    """As call, with the native op entered at its CPU kernel (its checks run even when an
    argument is a meta tensor)."""
    if provider == "native":
        provider_fn(provider, op).redispatch(CPU_ONLY, *args)
    else:
        call(provider, op, args)
