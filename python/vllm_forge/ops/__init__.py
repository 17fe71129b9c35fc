"""The one Python entry for every op.

Each op is served by the first available provider of an order, per device type:
  native: torch.ops.vllm_forge.<op>, the compiled kernels (csrc/)
  triton: vllm_forge.triton.<family>.<op>, on GPUs (on CPU only under TRITON_INTERPRET=1)
  torch:  vllm_forge.ops.reference.<op>, pure torch, always available
The order is native, triton, torch unless FORGE_KERNELS (for every op) or
FORGE_KERNELS_<OP> (one op) say otherwise, e.g. FORGE_KERNELS=triton,torch. The choice
is made once per (op, device type) and reported, with why each earlier provider was
skipped, by `providers()`, `summary()` (a startup log line) and `python -m vllm_forge.info`.
"""

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from vllm_forge import envs, extension
from vllm_forge import triton as forge_triton
from vllm_forge.ops import python_ops, reference

OPS = ("reshape_and_cache", "paged_attention", "rms_norm", "fused_add_rms_norm", "silu_and_mul",
       "gelu_and_mul", "rotary_embedding", "softmax", "log_softmax", "topk_softmax", "quant_gemm")

# The module of vllm_forge.triton that holds each op's launcher.
TRITON_MODULES = {
    "reshape_and_cache": "reshape_and_cache", "paged_attention": "paged_attention",
    "rms_norm": "norms", "fused_add_rms_norm": "norms", "silu_and_mul": "activation",
    "gelu_and_mul": "activation", "rotary_embedding": "rotary_embedding",
    "softmax": "softmax", "log_softmax": "softmax", "topk_softmax": "softmax",
    "quant_gemm": "quant_gemm",
}


@dataclass(frozen=True)
class Choice:
    provider: str
    fn: Callable
    skipped: tuple[str, ...]  # "provider: why" for each provider passed over
    source: str = "default"   # the variable that set the order, or "default"


def _native(op: str, device_type: str) -> tuple[Callable | None, str]:
    status = extension.load()
    if not status.loaded:
        return None, status.reason
    dispatch_key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if dispatch_key is None or not torch._C._dispatch_has_kernel_for_dispatch_key(
            f"vllm_forge::{op}", dispatch_key):
        return None, f"no compiled {device_type} kernel"
    return getattr(torch.ops.vllm_forge, op).default, ""


def _triton(op: str, device_type: str) -> tuple[Callable | None, str]:
    why = forge_triton.unavailable_reason(device_type)
    if why:
        return None, why
    try:
        module = importlib.import_module(f"vllm_forge.triton.{TRITON_MODULES[op]}")
    except Exception as e:  # a broken Triton install must not take the plugin down
        return None, f"importing the Triton kernels failed: {type(e).__name__}: {e}"
    return python_ops.register("triton", op, getattr(module, op)), ""


def _torch(op: str, device_type: str) -> tuple[Callable | None, str]:
    return python_ops.register("torch", op, getattr(reference, op)), ""


_PROVIDERS = {"native": _native, "triton": _triton, "torch": _torch}


# (op, device type) -> the chosen callable: a plain dict, so torch.compile can trace a
# public op below once its choice has been made (it cannot trace choose() itself).
_KERNELS: dict[tuple[str, str], Callable] = {}


def _kernel(op: str, device_type: str) -> Callable:
    fn = _KERNELS.get((op, device_type))
    return fn if fn is not None else choose(op, device_type).fn


@functools.cache
def choose(op: str, device_type: str) -> Choice:
    """The provider serving `op` on `device_type`. Raises ValueError for an unknown op, a
    bad FORGE_KERNELS* value, or when no provider of the order is available."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; known ops: {', '.join(OPS)}")
    order, source = envs.kernel_order(op, OPS)
    skipped = []
    for provider in order:
        fn, why = _PROVIDERS[provider](op, device_type)
        if fn is not None:
            _KERNELS[(op, device_type)] = fn
            return Choice(provider, fn, tuple(skipped), source)
        skipped.append(f"{provider}: {why}")
    raise ValueError(f"no provider can serve {op} on {device_type} with the order "
                     f"{','.join(order)} ({source}): {'; '.join(skipped)}")


def reset_choices() -> None:
    """Forget every choice (tests that change FORGE_KERNELS* or TRITON_INTERPRET)."""
    choose.cache_clear()
    _KERNELS.clear()


def providers(device_type: str = "cpu") -> dict[str, Choice]:
    return {op: choose(op, device_type) for op in OPS}


def summary(device_type: str = "cpu") -> str:
    """One line: the provider of every op, and why earlier ones were skipped."""
    parts = []
    for op, c in providers(device_type).items():
        why = f" (skipped {'; '.join(c.skipped)})" if c.skipped else ""
        parts.append(f"{op}={c.provider}{why}")
    return f"vllm-forge kernels on {device_type}: " + ", ".join(parts)


def reshape_and_cache(key_cache: torch.Tensor, value_cache: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Write key/value [num_tokens, num_kv_heads, head_size] into the caches
    [num_blocks, num_kv_heads, block_size, head_size] at slot_mapping (int64, < 0 skips)."""
    _kernel("reshape_and_cache", key.device.type)(key_cache, value_cache, key, value,
                                                    slot_mapping)


def paged_attention(out: torch.Tensor, query: torch.Tensor, key_cache: torch.Tensor,
                    value_cache: torch.Tensor, query_start_loc: torch.Tensor,
                    seq_lens: torch.Tensor, block_table: torch.Tensor, scale: float,
                    sliding_window: int = -1, softcap: float = 0.0) -> None:
    """Causal varlen paged attention; see vllm_forge.ops.reference.paged_attention."""
    _kernel("paged_attention", query.device.type)(out, query, key_cache, value_cache,
                                                    query_start_loc, seq_lens, block_table,
                                                    scale, sliding_window, softcap)


def rms_norm(out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor | None,
             epsilon: float) -> None:
    """out [..., hidden] = input / rms(input) * weight [hidden]."""
    _kernel("rms_norm", input.device.type)(out, input, weight, epsilon)


def fused_add_rms_norm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None,
                       epsilon: float) -> None:
    """In place: residual += input; input = rms_norm(residual) * weight."""
    _kernel("fused_add_rms_norm", input.device.type)(input, residual, weight, epsilon)


def silu_and_mul(out: torch.Tensor, input: torch.Tensor) -> None:
    """out [..., d] = silu(input[..., :d]) * input[..., d:]."""
    _kernel("silu_and_mul", input.device.type)(out, input)


def gelu_and_mul(out: torch.Tensor, input: torch.Tensor, approximate: str = "none") -> None:
    """out [..., d] = gelu(input[..., :d]) * input[..., d:]; approximate 'none' | 'tanh'."""
    _kernel("gelu_and_mul", input.device.type)(out, input, approximate)


def rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None,
                     head_size: int, cos_sin_cache: torch.Tensor, is_neox: bool) -> None:
    """Rotate query (and key) in place; see vllm_forge.ops.reference.rotary_embedding."""
    _kernel("rotary_embedding", query.device.type)(positions, query, key, head_size,
                                                     cos_sin_cache, is_neox)


def softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None = None) -> None:
    """out [rows, cols] = softmax(input / temperature[rows, None])."""
    _kernel("softmax", input.device.type)(out, input, temperature)


def log_softmax(out: torch.Tensor, input: torch.Tensor,
                temperature: torch.Tensor | None = None) -> None:
    """out [rows, cols] = log_softmax(input / temperature[rows, None])."""
    _kernel("log_softmax", input.device.type)(out, input, temperature)


def topk_softmax(topk_weights: torch.Tensor, topk_ids: torch.Tensor, gating_output: torch.Tensor,
                 renormalize: bool = False) -> None:
    """MoE routing: top-k of softmax(gating_output) into topk_weights / topk_ids [rows, k]."""
    _kernel("topk_softmax", gating_output.device.type)(topk_weights, topk_ids, gating_output,
                                                         renormalize)


def quant_gemm(out: torch.Tensor, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
               mins: torch.Tensor | None, bias: torch.Tensor | None, bits: int,
               group_size: int) -> None:
    """out [M, N] = x [M, K] @ W^T (+ bias), W weight-only quantised (quant/format.py)."""
    _kernel("quant_gemm", x.device.type)(out, x, qweight, scales, mins, bias, bits, group_size)
