"""The one table of ops. Everything Python knows about an op is its entry here, its
pure-torch reference (vllm_forge.ops.reference.<name>, whose annotated signature is the
op's signature) and its Triton launcher; from them are made:

- the public op vllm_forge.ops.<name> (vllm_forge.ops),
- the provider registration and the Triton/torch custom ops (vllm_forge.ops.python_ops),
- the fake implementation of the native op and of both Python ops (vllm_forge.ops.fake),
- the schema of the Python ops (tests/platform/test_providers.py checks it against the C++
  schema in csrc/torch_bindings.cpp).

A fake runs while torch.compile traces, on tensors with no data and possibly symbolic
sizes: its rule checks ranks, dtypes and how the shapes relate, through torch._check (a
symbolic size becomes a run-time assertion, never a guard that would specialise it). The
full argument checks, values included, are vllm_forge.ops.checks, run by the real op.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from vllm_forge.ops.checks import FLOAT_DTYPES

Rule = Callable[[str, dict[str, Any]], None]  # (op, arguments by name) -> None or raise


@dataclass(frozen=True)
class OpSpec:
    name: str
    mutates: tuple[str, ...]  # the Tensor! arguments: outputs and in-place operands
    device_arg: str  # the argument whose device picks the provider
    triton_module: str  # vllm_forge.triton.<module>.<name> is the Triton launcher
    rules: tuple[Rule, ...]  # the fake's shape and dtype rules
    serves: str  # where vLLM calls it, or "library only: <why>"
    defaults: dict[str, Any] = field(default_factory=dict)  # of the public op


# --- the rules a fake applies ------------------------------------------------------------
# Each names the op, the argument and the value in its message, like the real checks.


def _check(ok, op: str, message: Callable[[], str]) -> None:
    torch._check(ok, lambda: f"{op}: {message()}")


def rank(name: str, *ranks: int) -> Rule:
    """args[name] has one of `ranks` dimensions (absent optional arguments pass)."""

    def rule(op, args):
        t = args[name]
        if t is not None:
            _check(
                t.dim() in ranks,
                op,
                lambda: (
                    f"{name} must be a "
                    f"{' or '.join(map(str, ranks))}-D tensor, got shape {list(t.shape)}"
                ),
            )

    return rule


def dtype(name: str, *dtypes: torch.dtype) -> Rule:
    """args[name] has one of `dtypes`."""

    def rule(op, args):
        t = args[name]
        if t is not None:
            _check(
                t.dtype in dtypes,
                op,
                lambda: (
                    f"{name} must have dtype {' or '.join(str(d) for d in dtypes)}, got {t.dtype}"
                ),
            )

    return rule


def floating(name: str) -> Rule:
    return dtype(name, *FLOAT_DTYPES)


def same_dtype(ref: str, *names: str) -> Rule:
    """Each of `names` has the dtype of args[ref]."""

    def rule(op, args):
        for name in names:
            t = args[name]
            if t is not None:
                _check(
                    t.dtype == args[ref].dtype,
                    op,
                    lambda: (
                        f"{name} must have the dtype of {ref} ({args[ref].dtype}), got {t.dtype}"
                    ),
                )

    return rule


def _sizes_equal(op: str, name: str, t: torch.Tensor, expected: list, why: str) -> None:
    _check(
        t.dim() == len(expected),
        op,
        lambda: f"{name} must have shape {expected}{why}, got {list(t.shape)}",
    )
    for actual, want in zip(t.shape, expected):
        _check(
            actual == want,
            op,
            lambda: f"{name} must have shape {expected}{why}, got {list(t.shape)}",
        )


def shape(name: str, expected: Callable[[dict[str, Any]], list], why: str = "") -> Rule:
    """args[name] has the shape expected(args) (absent optional arguments pass)."""

    def rule(op, args):
        t = args[name]
        if t is not None:
            _sizes_equal(op, name, t, list(expected(args)), f" ({why})" if why else "")

    return rule


def same_shape(ref: str, *names: str) -> Rule:
    """Each of `names` has the shape of args[ref]."""
    return _all(*(shape(name, lambda a: a[ref].shape, f"the shape of {ref}") for name in names))


def _all(*rules: Rule) -> Rule:
    def rule(op, args):
        for r in rules:
            r(op, args)

    return rule


def halved_last(ref: str) -> Callable[[dict[str, Any]], list]:
    """args[ref]'s shape with its last dimension halved (gated activations)."""
    return lambda a: [*a[ref].shape[:-1], a[ref].shape[-1] // 2]


def _rotary_heads(name: str) -> Rule:
    def rule(op, args):
        t, positions = args[name], args["positions"]
        if t is None:
            return
        _check(
            t.dim() in (2, 3),
            op,
            lambda: (
                f"{name} must be [num_tokens, heads * head_size] "
                f"or [num_tokens, heads, head_size], got shape {list(t.shape)}"
            ),
        )
        _check(
            t.shape[0] == positions.shape[0],
            op,
            lambda: (
                f"{name}.size(0) must be {positions.shape[0]} (positions.size(0)), got {t.shape[0]}"
            ),
        )

    return rule


def _quant_gemm_weights(op, args):
    from vllm_forge.quant.format import TILE_N, num_groups, tiled_columns

    x, qweight, bits = args["x"], args["qweight"], args["bits"]
    _check(bits in (4, 8), op, lambda: f"bits must be 4 or 8, got {bits}")
    tiles = (args["out"].shape[1] + TILE_N - 1) // TILE_N
    _sizes_equal(
        op,
        "qweight",
        qweight,
        [tiles, tiled_columns(x.shape[1], bits)],
        f" (tiles of 16 of N = out.size(1), bytes per tile for K={x.shape[1]}, bits={bits})",
    )
    groups = [tiles, num_groups(x.shape[1], args["group_size"]), TILE_N]
    for name in ("scales", "mins"):
        if args[name] is not None:
            _sizes_equal(op, name, args[name], groups, " (tiles, groups, 16)")


# softmax and log_softmax: [rows, cols] in, the same out, an fp32 temperature per row.
_ROW_SOFTMAX_RULES = (
    rank("input", 2),
    floating("input"),
    same_shape("input", "out"),
    same_dtype("input", "out"),
    dtype("temperature", torch.float32),
    shape("temperature", lambda a: [a["input"].shape[0]], "one per row"),
)

# --- the table ----------------------------------------------------------------------------

SPECS = (
    OpSpec(
        "reshape_and_cache",
        ("key_cache", "value_cache"),
        "key",
        "reshape_and_cache",
        (
            rank("key_cache", 4),
            rank("key", 3),
            floating("key"),
            same_shape("key", "value"),
            same_shape("key_cache", "value_cache"),
            same_dtype("key", "value", "key_cache", "value_cache"),
            shape("slot_mapping", lambda a: [a["key"].shape[0]], "num_tokens"),
            dtype("slot_mapping", torch.int64),
        ),
        "the attention backend's KV-cache update (vllm_forge.attention)",
    ),
    OpSpec(
        "paged_attention",
        ("out",),
        "query",
        "paged_attention",
        (
            rank("query", 3),
            floating("query"),
            rank("key_cache", 4),
            same_shape("query", "out"),
            same_shape("key_cache", "value_cache"),
            same_dtype("query", "out", "key_cache", "value_cache"),
            rank("seq_lens", 1),
            rank("block_table", 2),
            shape("query_start_loc", lambda a: [a["seq_lens"].shape[0] + 1], "num_seqs + 1"),
            dtype("query_start_loc", torch.int32),
            dtype("seq_lens", torch.int32),
            dtype("block_table", torch.int32),
        ),
        "the attention backend (vllm_forge.attention)",
        defaults={"sliding_window": -1, "softcap": 0.0},
    ),
    OpSpec(
        "rms_norm",
        ("out",),
        "input",
        "norms",
        (
            floating("input"),
            same_shape("input", "out"),
            same_dtype("input", "out", "weight"),
            shape("weight", lambda a: [a["input"].shape[-1]], "input's last dimension"),
        ),
        "vLLM's RMSNorm IR op, eager mode (platform/hooks.py)",
    ),
    OpSpec(
        "fused_add_rms_norm",
        ("input", "residual"),
        "input",
        "norms",
        (
            floating("input"),
            same_shape("input", "residual"),
            same_dtype("input", "residual", "weight"),
            shape("weight", lambda a: [a["input"].shape[-1]], "input's last dimension"),
        ),
        "vLLM's fused add + RMSNorm IR op, eager mode (platform/hooks.py)",
    ),
    OpSpec(
        "silu_and_mul",
        ("out",),
        "input",
        "activation",
        (
            floating("input"),
            same_dtype("input", "out"),
            shape("out", halved_last("input"), "input's with the last dimension halved"),
        ),
        "vLLM's SiluAndMul CustomOp (vllm_forge.layers)",
    ),
    OpSpec(
        "gelu_and_mul",
        ("out",),
        "input",
        "activation",
        (
            floating("input"),
            same_dtype("input", "out"),
            shape("out", halved_last("input"), "input's with the last dimension halved"),
        ),
        "vLLM's GeluAndMul CustomOp (vllm_forge.layers)",
        defaults={"approximate": "none"},
    ),
    OpSpec(
        "rotary_embedding",
        ("query", "key"),
        "query",
        "rotary_embedding",
        (
            rank("positions", 1),
            dtype("positions", torch.int64),
            floating("query"),
            _rotary_heads("query"),
            _rotary_heads("key"),
            same_dtype("query", "key", "cos_sin_cache"),
            rank("cos_sin_cache", 2),
        ),
        "vLLM's RotaryEmbedding CustomOp (vllm_forge.layers)",
    ),
    OpSpec(
        "softmax",
        ("out",),
        "input",
        "softmax",
        _ROW_SOFTMAX_RULES,
        "library only: vLLM's sampler has no extension point for its softmax",
        defaults={"temperature": None},
    ),
    OpSpec(
        "log_softmax",
        ("out",),
        "input",
        "softmax",
        _ROW_SOFTMAX_RULES,
        "library only: vLLM's logprobs have no extension point for their log-softmax",
        defaults={"temperature": None},
    ),
    OpSpec(
        "topk_softmax",
        ("topk_weights", "topk_ids"),
        "gating_output",
        "softmax",
        (
            rank("gating_output", 2),
            floating("gating_output"),
            rank("topk_weights", 2),
            dtype("topk_weights", torch.float32),
            dtype("topk_ids", torch.int32),
            same_shape("topk_weights", "topk_ids"),
            shape(
                "topk_weights",
                lambda a: [a["gating_output"].shape[0], a["topk_weights"].shape[1]],
                "rows, k",
            ),
        ),
        "MoE routing on the CPU: vLLM's MoERunner/CPURouter (vllm_forge.moe)",
        defaults={"renormalize": False},
    ),
    OpSpec(
        "quant_gemm",
        ("out",),
        "x",
        "quant_gemm",
        (
            rank("x", 2),
            floating("x"),
            rank("out", 2),
            shape("out", lambda a: [a["x"].shape[0], a["out"].shape[1]], "x.size(0), N"),
            rank("qweight", 2),
            rank("scales", 3),
            _quant_gemm_weights,
            same_dtype("x", "out", "bias"),
            shape("bias", lambda a: [a["out"].shape[1]], "N = out.size(1)"),
        ),
        "GGUF and GPTQ/AWQ/compressed-tensors linear layers (vllm_forge.quant, .gguf)",
        defaults={"quantize_x": False},
    ),
)

BY_NAME = {spec.name: spec for spec in SPECS}
OPS = tuple(BY_NAME)


def reference_of(op: str) -> Callable:
    from vllm_forge.ops import reference

    return getattr(reference, op)


def arg_names(op: str) -> list[str]:
    import inspect

    return list(inspect.signature(reference_of(op)).parameters)


def fake(op: str) -> Callable[..., None]:
    """The fake implementation of `op`: its rules on the bound arguments, nothing written."""
    spec, names = BY_NAME[op], arg_names(op)

    def fake_impl(*args, **kwargs) -> None:
        bound = dict(zip(names, args), **kwargs)
        for rule in spec.rules:
            rule(op, bound)

    fake_impl.__name__ = f"{op}_fake"
    return fake_impl
