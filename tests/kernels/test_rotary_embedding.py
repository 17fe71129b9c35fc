"""rotary_embedding (native, in place) against the pure-torch reference."""

import pytest
import torch

from tests.utils import DTYPES, TOLERANCES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.rotary_embedding.default


def cos_sin_cache(max_position, rot_dim, dtype, base=10000.0):
    inv_freq = 1.0 / base ** (torch.arange(0, rot_dim, 2).float() / rot_dim)
    angles = torch.outer(torch.arange(max_position).float(), inv_freq)
    return torch.cat((angles.cos(), angles.sin()), dim=-1).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_neox", [True, False])
@pytest.mark.parametrize("head_size,rot_dim", [(64, 64), (128, 128), (80, 32), (256, 64), (96, 96)])
@pytest.mark.parametrize("num_tokens", [1, 37])
@pytest.mark.parametrize("layout", ["2d", "3d", "qkv_slices"])
def test_matches_reference(dtype, is_neox, head_size, rot_dim, num_tokens, layout):
    heads, kv_heads = 8, 2
    if layout == "qkv_slices":  # as vLLM passes them: views into one qkv projection
        qkv = torch.randn(num_tokens, (heads + 2 * kv_heads) * head_size).to(dtype)
        q = qkv[:, : heads * head_size]
        k = qkv[:, heads * head_size : (heads + kv_heads) * head_size]
    elif layout == "2d":
        q = torch.randn(num_tokens, heads * head_size).to(dtype)
        k = torch.randn(num_tokens, kv_heads * head_size).to(dtype)
    else:
        q = torch.randn(num_tokens, heads, head_size).to(dtype)
        k = torch.randn(num_tokens, kv_heads, head_size).to(dtype)
    cache = cos_sin_cache(4096, rot_dim, dtype)
    positions = torch.randint(0, 4096, (num_tokens,))
    q_ref, k_ref = q.clone(), k.clone()
    reference.rotary_embedding(positions, q_ref, k_ref, head_size, cache, is_neox)
    op(positions, q, k, head_size, cache, is_neox)
    torch.testing.assert_close(q, q_ref, **TOLERANCES[dtype])
    torch.testing.assert_close(k, k_ref, **TOLERANCES[dtype])


def test_query_only_and_untouched_tail():
    q = torch.randn(5, 4 * 80)
    before = q.view(5, 4, 80)[..., 32:].clone()
    q_ref = q.clone()
    cache = cos_sin_cache(64, 32, torch.float32)
    positions = torch.tensor([0, 1, 63, 5, 5])
    reference.rotary_embedding(positions, q_ref, None, 80, cache, True)
    op(positions, q, None, 80, cache, True)
    torch.testing.assert_close(q, q_ref)
    assert torch.equal(q.view(5, 4, 80)[..., 32:], before)  # partial rotary leaves the rest


def test_position_zero_is_identity():
    q = torch.randn(3, 2 * 64)
    orig = q.clone()
    op(torch.zeros(3, dtype=torch.long), q, None, 64, cos_sin_cache(8, 64, torch.float32), False)
    torch.testing.assert_close(q, orig)


def test_opcheck():
    q, k = torch.randn(4, 2 * 64), torch.randn(4, 64)
    torch.library.opcheck(
        op, (torch.tensor([0, 3, 2, 1]), q, k, 64, cos_sin_cache(16, 64, torch.float32), True)
    )
