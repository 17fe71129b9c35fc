"""Every TORCH_CHECK of the norm, activation, rotary and softmax ops: a RuntimeError
whose message names the argument and the value."""

import pytest
import torch

from tests.kernels.test_bad_inputs import CPU_ONLY, every_last_dim_other, set_item, with_, with_both

# The CPU launchers' messages (the main tensor must be on the CPU; value checks read CPU
# memory). On CUDA the same prepare_* checks run, minus the value checks.
pytestmark = pytest.mark.cpu_only

OPS = torch.ops.vllm_forge


def norm_args():
    return dict(
        out=torch.empty(4, 64), input=torch.randn(4, 64), weight=torch.ones(64), epsilon=1e-6
    )


def fused_args():
    return dict(
        input=torch.randn(4, 64), residual=torch.randn(4, 64), weight=torch.ones(64), epsilon=1e-6
    )


def act_args():
    return dict(out=torch.empty(3, 8), input=torch.randn(3, 16))


def rope_args():
    return dict(
        positions=torch.tensor([0, 5, 9]),
        query=torch.randn(3, 4 * 64),
        key=torch.randn(3, 64),
        head_size=64,
        cos_sin_cache=torch.randn(10, 32),
        is_neox=True,
    )


def softmax_args():
    return dict(out=torch.empty(3, 10), input=torch.randn(3, 10), temperature=torch.ones(3))


def topk_args():
    return dict(
        topk_weights=torch.empty(4, 2),
        topk_ids=torch.empty(4, 2, dtype=torch.int32),
        gating_output=torch.randn(4, 8),
        renormalize=True,
    )


def overlapping_rows(args):
    base = torch.randn(5, 64)
    args.update(input=base[:4], residual=base[1:])


THREE_LEVELS = lambda t: torch.randn(2, 3, 5, 64 * 2)[:, :, :, :64][:, :2, :2]  # noqa: E731

CASES = {
    # rms_norm
    "rms_out_dtype": (
        "rms_norm",
        norm_args,
        with_("out", lambda t: t.half()),
        r"rms_norm: out must have the dtype of input \(Float\), got Half",
    ),
    "rms_input_dtype": (
        "rms_norm",
        norm_args,
        with_both(("out", "input"), lambda t: t.int()),
        r"rms_norm: input must have dtype float32, bfloat16 or float16, got Int",
    ),
    "rms_out_shape": (
        "rms_norm",
        norm_args,
        with_("out", lambda t: t[:3]),
        r"rms_norm: out must have the shape of input \[4, 64\], got \[3, 64\]",
    ),
    "rms_weight_shape": (
        "rms_norm",
        norm_args,
        with_("weight", lambda t: t[:32]),
        r"rms_norm: weight must have shape \[64\] \(input's last dimension\), got \[32\]",
    ),
    "rms_weight_dtype": (
        "rms_norm",
        norm_args,
        with_("weight", lambda t: t.bfloat16()),
        r"rms_norm: weight must have the dtype of input \(Float\), got BFloat16",
    ),
    "rms_weight_stride": (
        "rms_norm",
        norm_args,
        with_("weight", lambda t: t.repeat_interleave(2)[::2]),
        r"rms_norm: weight must be contiguous, got strides \[2\]",
    ),
    "rms_eps_negative": (
        "rms_norm",
        norm_args,
        with_("epsilon", lambda _: -1.0),
        r"rms_norm: epsilon must be finite and >= 0, got -1",
    ),
    "rms_eps_nan": (
        "rms_norm",
        norm_args,
        with_("epsilon", lambda _: float("nan")),
        r"epsilon must be finite and >= 0, got nan",
    ),
    "rms_input_stride": (
        "rms_norm",
        norm_args,
        with_("input", every_last_dim_other),
        r"rms_norm: input must have a contiguous last dimension",
    ),
    "rms_out_stride": (
        "rms_norm",
        norm_args,
        with_("out", every_last_dim_other),
        r"rms_norm: out must have a contiguous last dimension",
    ),
    "rms_rows": (
        "rms_norm",
        norm_args,
        lambda a: a.update(input=THREE_LEVELS(None), out=torch.empty(2, 2, 2, 64)),
        r"rms_norm: the leading dimensions of input must form at most two levels of evenly spaced rows, got shape \[2, 2, 2, 64\]",
    ),
    "rms_scalar": (
        "rms_norm",
        norm_args,
        lambda a: a.update(input=torch.tensor(1.0), out=torch.tensor(1.0), weight=None),
        r"rms_norm: input must have at least 1 dimension",
    ),
    # fused_add_rms_norm
    "fused_residual_dtype": (
        "fused_add_rms_norm",
        fused_args,
        with_("residual", lambda t: t.half()),
        r"fused_add_rms_norm: residual must have the dtype of input \(Float\), got Half",
    ),
    "fused_residual_shape": (
        "fused_add_rms_norm",
        fused_args,
        with_("residual", lambda t: t[:2]),
        r"fused_add_rms_norm: residual must have the shape of input \[4, 64\], got \[2, 64\]",
    ),
    "fused_same_memory": (
        "fused_add_rms_norm",
        fused_args,
        lambda a: a.update(residual=a["input"]),
        r"fused_add_rms_norm: input and residual must not share memory",
    ),
    "fused_overlap": (
        "fused_add_rms_norm",
        fused_args,
        overlapping_rows,
        r"fused_add_rms_norm: input and residual must not share memory",
    ),
    "fused_weight_shape": (
        "fused_add_rms_norm",
        fused_args,
        with_("weight", lambda t: t[:10]),
        r"fused_add_rms_norm: weight must have shape \[64\]",
    ),
    # silu_and_mul / gelu_and_mul
    "silu_odd": (
        "silu_and_mul",
        act_args,
        with_("input", lambda t: t[:, :15]),
        r"silu_and_mul: the last dimension of input must be even \(gate and up halves\), got 15",
    ),
    "silu_out_shape": (
        "silu_and_mul",
        act_args,
        with_("out", lambda t: t[:, :7]),
        r"silu_and_mul: out must have shape \[3, 8\] \(input's with the last dimension halved\), got \[3, 7\]",
    ),
    "silu_dtype": (
        "silu_and_mul",
        act_args,
        with_both(("out", "input"), lambda t: t.double()),
        r"silu_and_mul: input must have dtype float32, bfloat16 or float16, got Double",
    ),
    "silu_out_dtype": (
        "silu_and_mul",
        act_args,
        with_("out", lambda t: t.bfloat16()),
        r"silu_and_mul: out must have the dtype of input \(Float\), got BFloat16",
    ),
    "silu_input_stride": (
        "silu_and_mul",
        act_args,
        with_("input", every_last_dim_other),
        r"silu_and_mul: input must have a contiguous last dimension",
    ),
    "silu_out_stride": (
        "silu_and_mul",
        act_args,
        with_("out", every_last_dim_other),
        r"silu_and_mul: out must have a contiguous last dimension",
    ),
    "gelu_approximate": (
        "gelu_and_mul",
        lambda: {**act_args(), "approximate": "fast"},
        lambda a: None,
        r"gelu_and_mul: approximate must be 'none' or 'tanh', got 'fast'",
    ),
    # rotary_embedding
    "rope_positions_dtype": (
        "rotary_embedding",
        rope_args,
        with_("positions", lambda t: t.int()),
        r"rotary_embedding: positions must have dtype Long, got Int",
    ),
    "rope_positions_dim": (
        "rotary_embedding",
        rope_args,
        with_("positions", lambda t: t.view(1, 3)),
        r"rotary_embedding: positions must be a 1-D tensor",
    ),
    "rope_position_high": (
        "rotary_embedding",
        rope_args,
        set_item("positions", 2, 10),
        r"rotary_embedding: positions\[2\] = 10 is out of range for a cos_sin_cache of 10 positions",
    ),
    "rope_position_negative": (
        "rotary_embedding",
        rope_args,
        set_item("positions", 0, -1),
        r"rotary_embedding: positions\[0\] = -1 is out of range",
    ),
    "rope_query_dtype": (
        "rotary_embedding",
        rope_args,
        lambda a: a.update(
            query=a["query"].double(), key=None, cos_sin_cache=a["cos_sin_cache"].double()
        ),
        r"rotary_embedding: query must have dtype float32, bfloat16 or float16, got Double",
    ),
    "rope_key_dtype": (
        "rotary_embedding",
        rope_args,
        with_("key", lambda t: t.half()),
        r"rotary_embedding: key must have the dtype of query \(Float\), got Half",
    ),
    "rope_cache_dtype": (
        "rotary_embedding",
        rope_args,
        with_("cos_sin_cache", lambda t: t.half()),
        r"rotary_embedding: cos_sin_cache must have the dtype of query \(Float\), got Half",
    ),
    "rope_query_tokens": (
        "rotary_embedding",
        rope_args,
        with_("query", lambda t: t[:2]),
        r"rotary_embedding: query.size\(0\) must be 3 \(positions.size\(0\)\), got 2",
    ),
    "rope_query_width": (
        "rotary_embedding",
        rope_args,
        with_("query", lambda t: t[:, :100]),
        r"rotary_embedding: query.size\(1\) = 100 is not a multiple of head_size = 64",
    ),
    "rope_query_3d": (
        "rotary_embedding",
        rope_args,
        with_("query", lambda t: t.view(3, 8, 32)),
        r"rotary_embedding: query.size\(2\) must be head_size = 64, got 32",
    ),
    "rope_query_1d": (
        "rotary_embedding",
        rope_args,
        with_("query", lambda t: t.flatten()),
        r"rotary_embedding: query must be \[num_tokens, heads \* head_size\]",
    ),
    "rope_query_stride": (
        "rotary_embedding",
        rope_args,
        with_("query", every_last_dim_other),
        r"rotary_embedding: query must have a contiguous last dimension",
    ),
    "rope_rot_dim_odd": (
        "rotary_embedding",
        rope_args,
        with_("cos_sin_cache", lambda t: torch.randn(10, 31)),
        r"rotary_embedding: rotary dim \(cos_sin_cache.size\(1\)\) must be even, in \(0, head_size = 64\] and at most 1024, got 31",
    ),
    "rope_rot_dim_large": (
        "rotary_embedding",
        rope_args,
        with_("cos_sin_cache", lambda t: torch.randn(10, 128)),
        r"got 128",
    ),
    "rope_head_size": (
        "rotary_embedding",
        rope_args,
        with_("head_size", lambda _: 0),
        r"rotary_embedding: head_size must be > 0, got 0",
    ),
    "rope_cache_dim": (
        "rotary_embedding",
        rope_args,
        with_("cos_sin_cache", lambda t: t.flatten()),
        r"rotary_embedding: cos_sin_cache must be a 2-D tensor",
    ),
    "rope_positions_contiguous": (
        "rotary_embedding",
        rope_args,
        with_("positions", lambda t: t.repeat_interleave(2)[::2]),
        r"rotary_embedding: positions must be contiguous, got strides \[2\]",
    ),
    "fused_scalar": (
        "fused_add_rms_norm",
        fused_args,
        lambda a: a.update(input=torch.tensor(1.0), residual=torch.tensor(2.0), weight=None),
        r"fused_add_rms_norm: input must have at least 1 dimension",
    ),
    "silu_scalar": (
        "silu_and_mul",
        act_args,
        lambda a: a.update(input=torch.tensor(1.0), out=torch.tensor(1.0)),
        r"silu_and_mul: input must have at least 1 dimension",
    ),
    # softmax / log_softmax
    "softmax_dim": (
        "softmax",
        softmax_args,
        lambda a: a.update(input=torch.randn(10), out=torch.empty(10), temperature=None),
        r"softmax: input must be a 2-D tensor \[rows, cols\], got shape \[10\]",
    ),
    "softmax_out_shape": (
        "softmax",
        softmax_args,
        with_("out", lambda t: t[:, :9]),
        r"softmax: out must have the shape of input \[3, 10\], got \[3, 9\]",
    ),
    "softmax_out_dtype": (
        "softmax",
        softmax_args,
        with_("out", lambda t: t.half()),
        r"softmax: out must have the dtype of input \(Float\), got Half",
    ),
    "softmax_dtype": (
        "softmax",
        softmax_args,
        with_both(("out", "input"), lambda t: t.long()),
        r"softmax: input must have dtype float32, bfloat16 or float16, got Long",
    ),
    "softmax_temp_dtype": (
        "softmax",
        softmax_args,
        with_("temperature", lambda t: t.half()),
        r"softmax: temperature must have dtype Float, got Half",
    ),
    "softmax_temp_shape": (
        "softmax",
        softmax_args,
        with_("temperature", lambda t: t[:2]),
        r"softmax: temperature must have shape \[3\] \(one per row\), got \[2\]",
    ),
    "softmax_temp_zero": (
        "softmax",
        softmax_args,
        set_item("temperature", 1, 0.0),
        r"softmax: temperature\[1\] must be finite and > 0, got 0",
    ),
    "softmax_temp_stride": (
        "softmax",
        softmax_args,
        with_("temperature", lambda t: t.repeat_interleave(2)[::2]),
        r"softmax: temperature must be contiguous",
    ),
    "softmax_input_stride": (
        "softmax",
        softmax_args,
        with_("input", every_last_dim_other),
        r"softmax: input must have a contiguous last dimension",
    ),
    "softmax_no_columns": (
        "softmax",
        softmax_args,
        lambda a: a.update(input=torch.empty(3, 0), out=torch.empty(3, 0)),
        r"softmax: input must have at least one column, got shape \[3, 0\]",
    ),
    "log_softmax_temp_negative": (
        "log_softmax",
        softmax_args,
        set_item("temperature", 0, -2.0),
        r"log_softmax: temperature\[0\] must be finite and > 0, got -2",
    ),
    # topk_softmax
    "topk_k_large": (
        "topk_softmax",
        topk_args,
        lambda a: a.update(
            topk_weights=torch.empty(4, 9), topk_ids=torch.empty(4, 9, dtype=torch.int32)
        ),
        r"topk_softmax: k \(topk_weights.size\(1\)\) must be in \[1, 8\] \(the number of experts\), got 9",
    ),
    "topk_k_zero": (
        "topk_softmax",
        topk_args,
        lambda a: a.update(
            topk_weights=torch.empty(4, 0), topk_ids=torch.empty(4, 0, dtype=torch.int32)
        ),
        r"got 0",
    ),
    "topk_ids_dtype": (
        "topk_softmax",
        topk_args,
        with_("topk_ids", lambda t: t.long()),
        r"topk_softmax: topk_ids must have dtype Int, got Long",
    ),
    "topk_weights_dtype": (
        "topk_softmax",
        topk_args,
        with_("topk_weights", lambda t: t.half()),
        r"topk_softmax: topk_weights must have dtype Float, got Half",
    ),
    "topk_ids_shape": (
        "topk_softmax",
        topk_args,
        with_("topk_ids", lambda t: torch.empty(4, 1, dtype=torch.int32)),
        r"topk_softmax: topk_ids must have the shape of topk_weights \[4, 2\], got \[4, 1\]",
    ),
    "topk_rows": (
        "topk_softmax",
        topk_args,
        with_("gating_output", lambda t: t[:3]),
        r"topk_softmax: topk_weights.size\(0\) must be 3 \(rows\), got 4",
    ),
    "topk_gating_dtype": (
        "topk_softmax",
        topk_args,
        with_("gating_output", lambda t: t.double()),
        r"topk_softmax: gating_output must have dtype float32, bfloat16 or float16, got Double",
    ),
    "topk_gating_dim": (
        "topk_softmax",
        topk_args,
        with_("gating_output", lambda t: t.flatten()),
        r"topk_softmax: gating_output must be a 2-D tensor",
    ),
    "topk_weights_dim": (
        "topk_softmax",
        topk_args,
        with_("topk_weights", lambda t: t.flatten()),
        r"topk_softmax: topk_weights must be a 2-D tensor",
    ),
    "topk_ids_dim": (
        "topk_softmax",
        topk_args,
        with_("topk_ids", lambda t: t.flatten()),
        r"topk_softmax: topk_ids must be a 2-D tensor",
    ),
    "topk_gating_stride": (
        "topk_softmax",
        topk_args,
        with_("gating_output", every_last_dim_other),
        r"topk_softmax: gating_output must have a contiguous last dimension",
    ),
    "topk_weights_contiguous": (
        "topk_softmax",
        topk_args,
        with_("topk_weights", lambda t: torch.empty(2, 4).t()),
        r"topk_softmax: topk_weights must be contiguous",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rejects(case):
    op_name, make_args, mutate, message = CASES[case]
    args = make_args()
    mutate(args)
    with pytest.raises(RuntimeError, match=message):
        getattr(OPS, op_name)(**args)


@pytest.mark.parametrize(
    "op_name,make_args,name",
    [
        ("rms_norm", norm_args, "input"),
        ("rms_norm", norm_args, "out"),
        ("fused_add_rms_norm", fused_args, "residual"),
        ("silu_and_mul", act_args, "out"),
        ("rotary_embedding", rope_args, "positions"),
        ("rotary_embedding", rope_args, "cos_sin_cache"),
        ("softmax", softmax_args, "input"),
        ("softmax", softmax_args, "temperature"),
        ("topk_softmax", topk_args, "topk_ids"),
    ],
)
def test_device(op_name, make_args, name):
    args = make_args()
    args[name] = args[name].to("meta")
    # The main tensor (input, query, gating_output) is checked against the CPU, the others
    # against its device.
    with pytest.raises(
        RuntimeError,
        match=rf"{op_name}: {name} must be on (cpu|the device of \w+ \(cpu\)), got meta",
    ):
        getattr(OPS, op_name).default.redispatch(CPU_ONLY, **args)
