"""Every TORCH_CHECK of the attention ops: bad input must raise a RuntimeError whose
message names the argument and the offending value, never crash or write garbage."""

import pytest
import torch

from tests.utils import make_paged_batch

# The CPU launchers' messages (the main tensor must be on the CPU; value checks read CPU
# memory). On CUDA the same prepare_* checks run, minus the value checks.
pytestmark = pytest.mark.cpu_only

paged_attention = torch.ops.vllm_forge.paged_attention.default
reshape_and_cache = torch.ops.vllm_forge.reshape_and_cache.default
CPU_ONLY = torch._C.DispatchKeySet("CPU")


def attention_args():
    b = make_paged_batch(
        [(1, 20), (3, 3)],
        num_heads=4,
        num_kv_heads=2,
        head_size=64,
        block_size=16,
        dtype=torch.float32,
        poison=False,
    )
    return dict(
        out=torch.empty_like(b.query),
        query=b.query,
        key_cache=b.key_cache,
        value_cache=b.value_cache,
        query_start_loc=b.query_start_loc,
        seq_lens=b.seq_lens,
        block_table=b.block_table,
        scale=0.125,
        sliding_window=-1,
        softcap=0.0,
    )


def with_(name, fn):
    """A mutation that replaces argument `name` by fn(old value)."""

    def mutate(args):
        args[name] = fn(args[name])

    return mutate


def with_both(names, fn):
    def mutate(args):
        for name in names:
            args[name] = fn(args[name])

    return mutate


def set_item(name, index, value):
    def mutate(args):
        args[name] = args[name].clone()
        args[name][index] = value

    return mutate


def every_last_dim_other(t):
    """Same shape, last-dim stride 2."""
    return torch.repeat_interleave(t, 2, dim=-1)[..., ::2]


ATTENTION_CASES = {
    "query_dim": (
        with_("query", lambda t: t[0]),
        r"query must be a 3-D tensor, got shape \[4, 64\]",
    ),
    "out_dim": (
        with_("out", lambda t: t.flatten(1)),
        r"out must be a 3-D tensor, got shape \[4, 256\]",
    ),
    "key_cache_dim": (with_("key_cache", lambda t: t[0]), r"key_cache must be a 4-D tensor"),
    "value_cache_dim": (with_("value_cache", lambda t: t[0]), r"value_cache must be a 4-D tensor"),
    "qsl_dim": (
        with_("query_start_loc", lambda t: t.view(1, -1)),
        r"query_start_loc must be a 1-D tensor, got shape \[1, 3\]",
    ),
    "seq_lens_dim": (with_("seq_lens", lambda t: t.view(1, -1)), r"seq_lens must be a 1-D tensor"),
    "block_table_dim": (
        with_("block_table", lambda t: t.flatten()),
        r"block_table must be a 2-D tensor",
    ),
    "out_dtype": (
        with_("out", lambda t: t.half()),
        r"out must have the dtype of query \(Float\), got Half",
    ),
    "key_cache_dtype": (
        with_("key_cache", lambda t: t.bfloat16()),
        r"key_cache must have the dtype of query \(Float\), got BFloat16",
    ),
    "value_cache_dtype": (
        with_("value_cache", lambda t: t.double()),
        r"value_cache must have the dtype of query \(Float\), got Double",
    ),
    "qsl_dtype": (
        with_("query_start_loc", lambda t: t.long()),
        r"query_start_loc must have dtype Int, got Long",
    ),
    "seq_lens_dtype": (
        with_("seq_lens", lambda t: t.long()),
        r"seq_lens must have dtype Int, got Long",
    ),
    "block_table_dtype": (
        with_("block_table", lambda t: t.long()),
        r"block_table must have dtype Int, got Long",
    ),
    "out_shape": (
        with_("out", lambda t: t[:3]),
        r"out must have the shape of query \[4, 4, 64\], got \[3, 4, 64\]",
    ),
    "value_cache_shape": (
        with_("value_cache", lambda t: t[:-1]),
        r"value_cache must have the shape of key_cache",
    ),
    "cache_head_size": (
        with_both(("key_cache", "value_cache"), lambda t: t[..., :32]),
        r"key_cache.size\(3\) must be 64 \(head_size\), got 32",
    ),
    "qsl_size": (
        with_("query_start_loc", lambda t: t[:2]),
        r"query_start_loc.size\(0\) must be 3 \(num_seqs \+ 1\), got 2",
    ),
    "block_table_rows": (
        with_("block_table", lambda t: t[:1]),
        r"block_table.size\(0\) must be 2 \(num_seqs\), got 1",
    ),
    "out_stride": (
        with_("out", every_last_dim_other),
        r"out must have a contiguous last dimension",
    ),
    "query_stride": (
        with_("query", every_last_dim_other),
        r"query must have a contiguous last dimension \(stride 1\), got strides \[512, 128, 2\]",
    ),
    "key_cache_not_transposed": (
        with_("key_cache", lambda t: t.contiguous()),
        r"key_cache must store each block's keys transposed \(strides \[..., ..., 1, block_size = 16\], a transposed view of \[num_blocks, num_kv_heads, head_size, block_size\]\), got strides \[2048, 1024, 64, 1\]",
    ),
    "value_cache_stride": (
        with_("value_cache", every_last_dim_other),
        r"value_cache must have contiguous \[block_size, head_size\] tiles \(strides \[..., ..., 64, 1\]\), got strides",
    ),
    "block_size_not_16": (
        with_both(("key_cache", "value_cache"), lambda t: t[:, :, :8]),
        r"block size \(key_cache.size\(2\)\) must be a positive multiple of 16, got 8",
    ),
    "qsl_contiguous": (
        with_("query_start_loc", lambda t: torch.repeat_interleave(t, 2)[::2]),
        r"query_start_loc must be contiguous, got strides \[2\]",
    ),
    "seq_lens_contiguous": (
        with_("seq_lens", lambda t: torch.repeat_interleave(t, 2)[::2]),
        r"seq_lens must be contiguous",
    ),
    "block_table_stride": (
        with_("block_table", every_last_dim_other),
        r"block_table must have a contiguous last dimension",
    ),
    "scale_nan": (with_("scale", lambda _: float("nan")), r"scale must be finite and > 0, got nan"),
    "scale_negative": (with_("scale", lambda _: -1.0), r"scale must be finite and > 0, got -1"),
    "softcap_negative": (
        with_("softcap", lambda _: -2.0),
        r"softcap must be finite and >= 0 \(0 disables it\), got -2",
    ),
    "softcap_inf": (
        with_("softcap", lambda _: float("inf")),
        r"softcap must be finite and >= 0 \(0 disables it\), got inf",
    ),
    "window_zero": (
        with_("sliding_window", lambda _: 0),
        r"sliding_window must be -1 \(none\) or > 0, got 0",
    ),
    "window_too_large": (
        with_("sliding_window", lambda _: 2**40),
        r"sliding_window too large: 1099511627776",
    ),
    "qsl_first": (set_item("query_start_loc", 0, 1), r"query_start_loc\[0\] must be 0, got 1"),
    "qsl_last": (
        set_item("query_start_loc", 2, 3),
        r"query_start_loc\[2\] must equal the number of query tokens \(4\), got 3",
    ),
    "qsl_decreasing": (
        set_item("query_start_loc", 1, 5),
        r"query_start_loc must be non-decreasing, got query_start_loc\[1\] = 5 > query_start_loc\[2\] = 4",
    ),
    "seq_len_short": (
        set_item("seq_lens", 1, 2),
        r"seq_lens\[1\] = 2 is shorter than the sequence's 3 query tokens",
    ),
    "seq_len_long": (
        set_item("seq_lens", 0, 1000),
        r"seq_lens\[0\] = 1000 needs 63 blocks of 16 but block_table has only 3 columns",
    ),
    "block_id_high": (
        set_item("block_table", (0, 1), 99),
        r"block_table\[0\]\[1\] = 99 is out of range for a cache of 6 blocks",
    ),
    "block_id_negative": (
        set_item("block_table", (1, 0), -1),
        r"block_table\[1\]\[0\] = -1 is out of range",
    ),
}


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=str)
def test_paged_attention_rejects(case):
    mutate, message = ATTENTION_CASES[case]
    args = attention_args()
    mutate(args)
    with pytest.raises(RuntimeError, match=message):
        paged_attention(**args)


@pytest.mark.parametrize("dtype", [torch.int32, torch.float64])
def test_paged_attention_unsupported_dtype(dtype):
    args = attention_args()
    for name in ("out", "query", "key_cache", "value_cache"):
        args[name] = args[name].to(dtype)
    with pytest.raises(
        RuntimeError,
        match=r"paged_attention: unsupported dtype (Int|Double); supported: float32, bfloat16, float16",
    ):
        paged_attention(**args)


@pytest.mark.parametrize(
    "head_size,message",
    [
        (40, r"head_size \(query.size\(2\)\) must be a multiple of 16 in \[32, 256\], got 40"),
        (16, r"must be a multiple of 16 in \[32, 256\], got 16"),
        (272, r"must be a multiple of 16 in \[32, 256\], got 272"),
    ],
)
def test_paged_attention_head_size(head_size, message):
    b = make_paged_batch(
        [(2, 9)],
        num_heads=2,
        num_kv_heads=1,
        head_size=head_size,
        block_size=16,
        dtype=torch.float32,
        poison=False,
    )
    with pytest.raises(RuntimeError, match=message):
        paged_attention(*b.args(torch.empty_like(b.query), 0.1))


def test_paged_attention_head_ratio():
    b = make_paged_batch(
        [(2, 9)],
        num_heads=3,
        num_kv_heads=2,
        head_size=32,
        block_size=16,
        dtype=torch.float32,
        poison=False,
    )
    with pytest.raises(
        RuntimeError,
        match=r"number of query heads \(3\) must be a multiple of the number of KV heads \(key_cache.size\(1\) = 2\)",
    ):
        paged_attention(*b.args(torch.empty_like(b.query), 0.1))


def test_paged_attention_zero_block_size():
    args = attention_args()
    args["key_cache"] = args["key_cache"][:, :, :0]
    args["value_cache"] = args["value_cache"][:, :, :0]
    with pytest.raises(
        RuntimeError,
        match=r"block size \(key_cache.size\(2\)\) must be a positive multiple of 16, got 0",
    ):
        paged_attention(**args)


@pytest.mark.parametrize(
    "name",
    ["out", "query", "key_cache", "value_cache", "query_start_loc", "seq_lens", "block_table"],
)
def test_paged_attention_device(name):
    # Only CPU tensors reach the CPU kernel through the dispatcher; redispatching
    # straight to it with a meta tensor checks the launcher's own device check.
    args = attention_args()
    args[name] = args[name].to("meta")
    # query is checked against the CPU, the others against query's device.
    with pytest.raises(
        RuntimeError,
        match=rf"paged_attention: {name} must be on (cpu|the device of query \(cpu\)), got meta",
    ):
        paged_attention.redispatch(CPU_ONLY, **args)


def cache_args():
    kv = torch.zeros(3, 2, 32, 64)
    return dict(
        key_cache=kv[:, :, :16],
        value_cache=kv[:, :, 16:],
        key=torch.randn(5, 2, 64),
        value=torch.randn(5, 2, 64),
        slot_mapping=torch.tensor([0, 17, -1, 47, 3]),
    )


CACHE_CASES = {
    "key_cache_dim": (
        with_("key_cache", lambda t: t[0]),
        r"key_cache must be a 4-D tensor, got shape \[2, 16, 64\]",
    ),
    "value_cache_dim": (with_("value_cache", lambda t: t[0]), r"value_cache must be a 4-D tensor"),
    "key_dim": (
        with_("key", lambda t: t.flatten(1)),
        r"key must be a 3-D tensor, got shape \[5, 128\]",
    ),
    "value_dim": (with_("value", lambda t: t.flatten(1)), r"value must be a 3-D tensor"),
    "slot_dim": (
        with_("slot_mapping", lambda t: t.view(1, -1)),
        r"slot_mapping must be a 1-D tensor",
    ),
    "value_dtype": (
        with_("value", lambda t: t.half()),
        r"value must have the dtype of key \(Float\), got Half",
    ),
    "key_cache_dtype": (
        with_("key_cache", lambda t: t.bfloat16()),
        r"key_cache must have the dtype of key \(Float\), got BFloat16",
    ),
    "value_cache_dtype": (
        with_("value_cache", lambda t: t.half()),
        r"value_cache must have the dtype of key \(Float\), got Half",
    ),
    "slot_dtype": (
        with_("slot_mapping", lambda t: t.int()),
        r"slot_mapping must have dtype Long, got Int",
    ),
    "value_shape": (
        with_("value", lambda t: t[:4]),
        r"value must have the shape of key \[5, 2, 64\], got \[4, 2, 64\]",
    ),
    "value_cache_shape": (
        with_("value_cache", lambda t: t[:2]),
        r"value_cache must have the shape of key_cache",
    ),
    "cache_heads": (
        with_both(("key", "value"), lambda t: t[:, :1]),
        r"key_cache.size\(1\) must be 1 \(num_kv_heads\), got 2",
    ),
    "cache_head_size": (
        with_both(("key", "value"), lambda t: t[..., :32]),
        r"key_cache.size\(3\) must be 32 \(head_size\), got 64",
    ),
    "slot_count": (
        with_("slot_mapping", lambda t: t[:4]),
        r"slot_mapping.size\(0\) must be 5 \(num_tokens\), got 4",
    ),
    "key_stride": (
        with_("key", every_last_dim_other),
        r"key must have a contiguous last dimension",
    ),
    "value_stride": (
        with_("value", every_last_dim_other),
        r"value must have a contiguous last dimension",
    ),
    "slot_contiguous": (
        with_("slot_mapping", lambda t: torch.repeat_interleave(t, 2)[::2]),
        r"slot_mapping must be contiguous",
    ),
    "slot_out_of_range": (
        set_item("slot_mapping", 3, 48),
        r"slot_mapping\[3\] = 48 is out of range for a cache of 3 blocks of 16 slots",
    ),
}


@pytest.mark.parametrize("case", CACHE_CASES, ids=str)
def test_reshape_and_cache_rejects(case):
    mutate, message = CACHE_CASES[case]
    args = cache_args()
    mutate(args)
    before = [args["key_cache"].clone(), args["value_cache"].clone()]
    with pytest.raises(RuntimeError, match=message):
        reshape_and_cache(**args)
    # Checks run before any write.
    if args["key_cache"].shape == before[0].shape and args["key_cache"].dtype == before[0].dtype:
        assert torch.equal(args["key_cache"], before[0])


def test_reshape_and_cache_unsupported_dtype():
    args = cache_args()
    for name in ("key_cache", "value_cache", "key", "value"):
        args[name] = args[name].double()
    with pytest.raises(
        RuntimeError, match=r"key must have dtype float32, bfloat16 or float16, got Double"
    ):
        reshape_and_cache(**args)


@pytest.mark.parametrize("name", ["key_cache", "value_cache", "key", "value", "slot_mapping"])
def test_reshape_and_cache_device(name):
    args = cache_args()
    args[name] = args[name].to("meta")
    # key is checked against the CPU, the others against key's device.
    with pytest.raises(
        RuntimeError,
        match=rf"reshape_and_cache: {name} must be on (cpu|the device of key \(cpu\)), got meta",
    ):
        reshape_and_cache.redispatch(CPU_ONLY, **args)
