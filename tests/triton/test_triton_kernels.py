"""Every Triton kernel against its pure-torch reference: small shapes on CPU (Triton's
interpreter is slow), larger ones on a GPU; plus opcheck of the registered custom ops."""

import math

import pytest
import torch

from tests.utils import DTYPES, TOLERANCES, make_paged_batch
from vllm_forge import ops
from vllm_forge.ops import reference
from vllm_forge.triton import paged_attention as triton_attention

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ON_GPU = DEVICE == "cuda"


def triton_op(op):
    fn, why = ops._triton(op, DEVICE)
    assert fn is not None, f"Triton cannot serve {op} here: {why}"
    return fn


def on_device(*tensors):
    return [t.to(DEVICE) if isinstance(t, torch.Tensor) else t for t in tensors]


def compare(op, make_args, dtype, opcheck=False):
    """Run the reference on CPU copies and the Triton op on DEVICE; compare every output."""
    ref_args = make_args()
    dev_args = on_device(*[a.clone() if isinstance(a, torch.Tensor) else a for a in ref_args])
    getattr(reference, op)(*ref_args)
    triton_op(op)(*dev_args)
    for ref, got in zip(ref_args, dev_args):
        if isinstance(ref, torch.Tensor):
            tol = TOLERANCES.get(ref.dtype, dict(atol=0, rtol=0))
            torch.testing.assert_close(got.cpu(), ref, **tol)
    if opcheck:
        torch.library.opcheck(triton_op(op), on_device(*make_args()))


def rows_input(rows, cols, dtype, strided):
    x = (torch.randn(rows, cols + (3 if strided else 0)) * 3).to(dtype)
    return x[:, :cols]


# --- norms ---------------------------------------------------------------------------------

HIDDEN = [1, 17, 512, 769] + ([5120, 8192] if ON_GPU else [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("strided", [False, True])
def test_rms_norm(dtype, hidden, strided):
    def args():
        torch.manual_seed(hidden)
        x = rows_input(5, hidden, dtype, strided)
        return [torch.empty(5, hidden, dtype=dtype), x, torch.randn(hidden).to(dtype), 1e-6]

    compare("rms_norm", args, dtype, opcheck=hidden == 17)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_fused_add_rms_norm(dtype, hidden):
    def args():
        torch.manual_seed(hidden)
        return [
            rows_input(3, hidden, dtype, False).contiguous(),
            rows_input(3, hidden, dtype, False),
            torch.randn(hidden).to(dtype),
            1e-5,
        ]

    compare("fused_add_rms_norm", args, dtype, opcheck=hidden == 17)


def test_rms_norm_without_weight_3d():
    def args():
        torch.manual_seed(0)
        return [torch.empty(2, 3, 40), torch.randn(2, 3, 40), None, 1e-6]

    compare("rms_norm", args, torch.float32, opcheck=True)


# --- activations ---------------------------------------------------------------------------

WIDTHS = [2, 34, 2050] + ([11008, 11010] if ON_GPU else [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "op,extra", [("silu_and_mul", ()), ("gelu_and_mul", ("none",)), ("gelu_and_mul", ("tanh",))]
)
def test_gated_activation(dtype, width, op, extra):
    def args():
        torch.manual_seed(width)
        return [torch.empty(4, width // 2, dtype=dtype), rows_input(4, width, dtype, True), *extra]

    compare(op, args, dtype, opcheck=width == 34)


# --- rotary embedding ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_neox", [True, False])
@pytest.mark.parametrize("head_size,rot_dim", [(64, 64), (128, 64), (80, 32)])
@pytest.mark.parametrize("three_d", [False, True])
def test_rotary_embedding(dtype, is_neox, head_size, rot_dim, three_d):
    tokens, heads, kv_heads = 7, 5, 1

    def args():
        torch.manual_seed(head_size + rot_dim)
        qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head_size).to(dtype)
        q = qkv[:, : heads * head_size]
        k = qkv[:, heads * head_size : (heads + kv_heads) * head_size]
        if three_d:
            q, k = q.view(tokens, heads, head_size), k.view(tokens, kv_heads, head_size)
        return [
            torch.randint(0, 50, (tokens,)),
            q,
            k,
            head_size,
            torch.randn(50, rot_dim).to(dtype),
            is_neox,
        ]

    compare("rotary_embedding", args, dtype, opcheck=head_size == 64 and not three_d)


def test_rotary_embedding_query_only():
    def args():
        torch.manual_seed(1)
        return [
            torch.tensor([3, 0, 9]),
            torch.randn(3, 2 * 64),
            None,
            64,
            torch.randn(10, 64),
            True,
        ]

    compare("rotary_embedding", args, torch.float32)


# --- softmax family ------------------------------------------------------------------------

SHAPES = [(1, 1), (3, 7), (5, 3000)] + ([(4, 32000), (2, 151936)] if ON_GPU else [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("temperature", [False, True])
def test_softmax(dtype, shape, op, temperature):
    rows, cols = shape

    def args():
        torch.manual_seed(cols)
        t = torch.rand(rows) * 2 + 0.1 if temperature else None
        return [torch.empty(rows, cols, dtype=dtype), rows_input(rows, cols, dtype, True), t]

    compare(op, args, dtype, opcheck=shape == (3, 7))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("experts,k", [(8, 2), (60, 4), (64, 64), (256, 8)])
@pytest.mark.parametrize("renormalize", [False, True])
def test_topk_softmax(dtype, experts, k, renormalize):
    def args():
        torch.manual_seed(experts)
        # Distinct logits, exact in every dtype (integers < 256, over 8): the top k is unique.
        logits = torch.stack([torch.randperm(experts) for _ in range(11)]).float() / 8
        return [
            torch.empty(11, k),
            torch.empty(11, k, dtype=torch.int32),
            logits.to(dtype),
            renormalize,
        ]

    compare("topk_softmax", args, dtype, opcheck=experts == 8)


# --- paged attention -----------------------------------------------------------------------


def mixed_batch(block_size):
    """Decodes at length 1 and around a block boundary, a prefill, chunked prefills."""
    return [(1, 1), (1, block_size), (1, block_size + 1), (5, 5), (7, 40), (3, 2 * block_size + 2)]


def run_attention(batch, scale, sliding_window=-1, softcap=0.0, num_splits=None):
    ref = torch.zeros_like(batch.query, memory_format=torch.contiguous_format)
    reference.paged_attention(*batch.args(ref, scale, sliding_window, softcap))
    args = on_device(
        *batch.args(torch.full_like(ref, float("nan")), scale, sliding_window, softcap)
    )
    if num_splits is None:
        triton_op("paged_attention")(*args)
    else:
        triton_attention.paged_attention(*args, num_splits=num_splits)
    return args[0].cpu(), ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (8, 2), (6, 2), (4, 1)])
@pytest.mark.parametrize("block_size", [16, 32])
def test_paged_attention_mixed_batch(dtype, num_heads, num_kv_heads, block_size):
    batch = make_paged_batch(
        mixed_batch(block_size),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_size=64,
        block_size=block_size,
        dtype=dtype,
        strided_query=True,
    )
    out, ref = run_attention(batch, scale=0.125)
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("head_size", [32, 80, 128, 256])
def test_paged_attention_head_sizes(head_size):
    batch = make_paged_batch(
        [(1, 19), (6, 6), (4, 37)],
        num_heads=4,
        num_kv_heads=2,
        head_size=head_size,
        block_size=16,
        dtype=torch.bfloat16,
    )
    out, ref = run_attention(batch, scale=1 / math.sqrt(head_size))
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.bfloat16])


@pytest.mark.parametrize("sliding_window", [1, 5, 33])
@pytest.mark.parametrize("softcap", [0.0, 20.0])
def test_paged_attention_window_and_softcap(sliding_window, softcap):
    batch = make_paged_batch(
        mixed_batch(16),
        num_heads=8,
        num_kv_heads=2,
        head_size=64,
        block_size=16,
        dtype=torch.float32,
        sliding_window=sliding_window,
    )
    out, ref = run_attention(batch, scale=0.3, sliding_window=sliding_window, softcap=softcap)
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.float32])


@pytest.mark.parametrize("num_splits", [2, 4, 16])
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_split_kv_decode(num_splits, dtype):
    """The split-KV path and its log-sum-exp merge, including splits with no keys."""
    seqs = [(1, 1), (1, 15), (1, 16), (1, 130), (1, 333)]
    batch = make_paged_batch(
        seqs, num_heads=8, num_kv_heads=2, head_size=128, block_size=16, dtype=dtype
    )
    out, ref = run_attention(batch, scale=0.1, num_splits=num_splits)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


def test_paged_attention_split_kv_window():
    batch = make_paged_batch(
        [(1, 100), (1, 7)],
        num_heads=4,
        num_kv_heads=1,
        head_size=64,
        block_size=16,
        dtype=torch.float32,
        sliding_window=20,
    )
    out, ref = run_attention(batch, scale=0.1, sliding_window=20, softcap=5.0, num_splits=4)
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.float32])


def test_paged_attention_opcheck():
    batch = make_paged_batch(
        [(1, 20), (3, 9)],
        num_heads=4,
        num_kv_heads=2,
        head_size=32,
        block_size=16,
        dtype=torch.float32,
    )
    out = torch.empty_like(batch.query)
    torch.library.opcheck(triton_op("paged_attention"), on_device(*batch.args(out, 0.2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["vllm", "separate"])
def test_reshape_and_cache(dtype, layout):
    batch = make_paged_batch(
        [(1, 40)],
        num_heads=4,
        num_kv_heads=3,
        head_size=48,
        block_size=16,
        dtype=dtype,
        poison=False,
        kv_layout=layout,
    )

    def args():
        torch.manual_seed(0)
        key, value = torch.randn(2, 9, 3, 48).to(dtype)
        slots = torch.tensor([0, 17, -1, 5, 31, 16, -1, 60, 2])
        return [batch.key_cache.clone(), batch.value_cache.clone(), key, value, slots]

    compare("reshape_and_cache", args, dtype, opcheck=dtype == torch.float32)
