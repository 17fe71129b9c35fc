"""ForgeWNA16LinearKernel (vllm_forge/quant/linear_kernel.py): GPTQ / AWQ /
compressed-tensors weight-only int4/int8 layers repacked into our layout.

- repack: random codes, scales and zero points in each checkpoint's published packing
  (GPTQ words along K, AWQ's interleaved order, compressed-tensors' own pack_to_int32)
  -> our PackedWeight.dequantize() equals vLLM's meaning (q - z) * s exactly.
- vLLM's own linear layers (ColumnParallelLinear with AutoGPTQConfig, AutoAWQConfig,
  CompressedTensorsConfig), their weight loaders and choose_mp_linear_kernel picking our
  kernel: after process_weights_after_loading the layer holds our tensors only, and its
  forward equals x @ W^T (+ bias).
- End to end (e2e marker): a tiny random Llama quantised here to GPTQ int4 and
  compressed-tensors W8A16, generated through the plugin with our kernel against vLLM's
  builtin CPU platform.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vllm_forge.quant.format import PackedWeight, TiledWeight

GPTQ, AWQ, CT = "gptq", "awq", "compressed-tensors"
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AWQ word nibble j holds column 8 i + AWQ_ORDER[j]


def to_int32(words: torch.Tensor) -> torch.Tensor:
    """int64 values 0 .. 2^32 - 1 -> the int32 with those bits."""
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def pack_along(values: torch.Tensor, bits: int, dim: int, order=None) -> torch.Tensor:
    """Pack 32 // bits unsigned values per int32 word along `dim` (value j of a word at
    bit j * bits; `order[j]` picks which of the word's values goes there)."""
    per_word = 32 // bits
    v = values.movedim(dim, -1).to(torch.int64)
    v = v.reshape(*v.shape[:-1], -1, per_word)
    if order is not None:
        v = v[..., list(order)]
    shifts = torch.arange(per_word, dtype=torch.int64) * bits
    return to_int32((v << shifts).sum(-1)).movedim(-1, dim)


def ct_pack(values_unsigned: torch.Tensor, bits: int, packed_dim: int) -> torch.Tensor:
    """compressed-tensors' own packer (it takes signed int8 and adds 2^(bits-1))."""
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32

    return pack_to_int32((values_unsigned - (1 << (bits - 1))).to(torch.int8), bits, packed_dim)


def random_quant(n, k, bits, group, scale_dtype, zero_points, seed):
    """codes q [N, K], scales [N, G], zero points [N, G] or None, and vLLM's meaning
    W = (q - z) * s in fp32 (z = the type's bias when there are no zero points)."""
    gen = torch.Generator().manual_seed(seed)
    src = k if group == -1 else group
    groups = k // src
    q = torch.randint(0, 1 << bits, (n, k), generator=gen, dtype=torch.int32)
    s = torch.rand(n, groups, generator=gen) * 0.02 + 0.001
    s = s * torch.where(torch.rand(n, groups, generator=gen) < 0.1, -1.0, 1.0)  # a few < 0
    s = s.to(scale_dtype)
    z = (
        torch.randint(0, 1 << bits, (n, groups), generator=gen, dtype=torch.int32)
        if zero_points
        else None
    )
    if zero_points:
        zk = z.repeat_interleave(src, dim=1)
    else:  # a biased type (uint4b8, uint8b128): z = 2^(bits-1); else none
        zk = (1 << (bits - 1)) if zero_points is None else 0
    w = (q - zk).to(torch.float32) * s.float().repeat_interleave(src, dim=1)
    return q, s, z, w


def param(data, **dims):
    p = torch.nn.Parameter(data, requires_grad=False)
    for name, value in dims.items():
        setattr(p, name, value)
    return p


# --- the repack alone: checkpoint layouts on plain parameters ---------------------


def weight_type(bits, zero_points):
    from vllm.scalar_type import scalar_types

    if zero_points is None:
        return {4: scalar_types.uint4b8, 8: scalar_types.uint8b128}[bits]
    return {4: scalar_types.uint4, 8: scalar_types.uint8}[bits]


def checkpoint(layout, q, s, z, bits):
    """The layer's (qweight, scales, zeros) parameters as the given quantization method
    hands them to the kernel (after vLLM's own AWQ -> GPTQ-like conversion for AWQ)."""
    if layout == GPTQ:  # qweight [K / pf, N] packed along K; scales, qzeros [G, N(/pf)]
        qw = param(pack_along(q.t(), bits, 0), input_dim=0, output_dim=1, packed_dim=0)
        sc = param(s.t().contiguous(), input_dim=0, output_dim=1)
        zp = (
            None
            if z is None
            else param(pack_along(z.t(), bits, 1), input_dim=0, output_dim=1, packed_dim=1)
        )
    else:  # compressed-tensors: [N, K / pf] packed along K; scales [N, G]; zp [N / pf, G]
        qw = param(ct_pack(q, bits, 1), input_dim=1, output_dim=0, packed_dim=1)
        sc = param(s.clone(), input_dim=1, output_dim=0)
        zp = (
            None
            if z is None
            else param(ct_pack(z, bits, 0), input_dim=1, output_dim=0, packed_dim=0)
        )
    return qw, sc, zp


REPACK_CASES = [
    # layout, bits, group, zero points (None: the type's bias), scale dtype, K, N
    (GPTQ, 4, 128, None, torch.float16, 256, 64),  # uint4b8
    (GPTQ, 4, 32, None, torch.bfloat16, 96, 48),
    (GPTQ, 4, -1, None, torch.float16, 320, 32),  # channelwise, K not a multiple of 256
    (GPTQ, 8, 64, None, torch.float16, 192, 40),  # uint8b128
    (GPTQ, 4, 64, True, torch.float16, 128, 64),  # uint4 + zero points
    (CT, 4, 32, True, torch.bfloat16, 64, 24),  # N not a multiple of 8: padded zp
    (CT, 4, 16, False, torch.float16, 48, 16),  # uint4 without zero points
    (CT, 8, 128, None, torch.bfloat16, 256, 24),
    (CT, 8, 32, True, torch.float16, 96, 12),  # uint8 + zero points
    (CT, 8, -1, True, torch.bfloat16, 40, 20),  # K = 40: padded words
    (CT, 4, 512, None, torch.float16, 1024, 16),  # group 512 -> 256, each scale twice
    (CT, 8, 48, None, torch.float16, 96, 8),  # group 48 -> 16, three times
    (CT, 4, -1, None, torch.float32, 72, 16),
    (CT, 8, 64, None, torch.float32, 128, 16),  # fp32 scales without mins: exact
]


@pytest.mark.parametrize("layout,bits,group,zp,dtype,k,n", REPACK_CASES)
def test_repack_equals_vllm_dequantisation(layout, bits, group, zp, dtype, k, n):
    from vllm_forge.quant import linear_kernel as lk

    q, s, z, w = random_quant(n, k, bits, group, dtype, zp, seed=k * n + bits)
    qw, sc, zpp = checkpoint(layout, q, s, z, bits)
    codes = lk.checkpoint_codes(qw, bits, n, k)
    assert torch.equal(codes, q)
    # vLLM's own unpacker agrees on the GPTQ-like words.
    if layout == GPTQ:
        from vllm.model_executor.layers.quantization.utils.quant_utils import (
            unpack_quantized_values_into_int32,
        )

        assert torch.equal(
            unpack_quantized_values_into_int32(qw.data, weight_type(bits, zp), 0), q.t()
        )
    scales = lk.checkpoint_scales(sc)
    if zp is None:
        zeros = 1 << (bits - 1)
    elif zp:
        zeros = lk.checkpoint_zeros(zpp, bits, n, scales.shape[1])
        assert torch.equal(zeros, z)
    else:
        zeros = 0
    qweight, scales, mins, pbits, g = lk.repack(codes, scales, zeros, weight_type(bits, zp), group)
    packed = PackedWeight(qweight, scales, mins, pbits, g, k)
    assert pbits == bits and g in (16, 32, 64, 128, 256)
    assert qweight.dtype == (torch.int8 if bits == 8 else torch.uint8)
    # fp16 kept where exact (no zero points); bf16 and zero points become fp32.
    want = torch.float16 if dtype == torch.float16 and not zp else torch.float32
    assert scales.dtype == want and (mins is None or mins.dtype == want)
    assert (mins is None) == (zp is None and bits == 8 or zp is False and bits == 4)
    got = packed.dequantize()
    if dtype == torch.float32 and mins is not None:
        # s * c + m with fp32 s is two roundings, (q - z) * s one: the last bit may differ.
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-9)
    else:
        assert torch.equal(got, w)


def test_fp16_overflowing_mins_fall_back_to_fp32():
    from vllm.scalar_type import scalar_types

    from vllm_forge.quant import linear_kernel as lk

    q = torch.randint(0, 16, (4, 64), dtype=torch.int32)
    s = torch.full((4, 1), 10000.0, dtype=torch.float16)  # -8 s is not an fp16 value
    qweight, scales, mins, _, _ = lk.repack(q, s, 8, scalar_types.uint4b8, -1)
    assert scales.dtype == mins.dtype == torch.float32
    w = (q - 8).float() * 10000.0
    assert torch.equal(PackedWeight(qweight, scales, mins, 4, 256, 64).dequantize(), w)


def mp_config(weight_type, group_size=128, k=256, n=256, act=torch.bfloat16, zp=False, **kw):
    from vllm.model_executor.kernels.linear import MPLinearLayerConfig

    return MPLinearLayerConfig(
        full_weight_shape=(k, n),
        partition_weight_shape=(k, n),
        weight_type=weight_type,
        act_type=act,
        group_size=group_size,
        zero_points=zp,
        **kw,
    )


def test_can_implement():
    from vllm.scalar_type import scalar_types as t

    from vllm_forge.quant.linear_kernel import ForgeWNA16LinearKernel as K

    for wt, zp in (
        (t.uint4b8, False),
        (t.uint4, True),
        (t.uint4, False),
        (t.uint8b128, False),
        (t.uint8, True),
    ):
        for act in (torch.float32, torch.bfloat16, torch.float16):
            for g in (-1, 16, 32, 64, 128, 256, 512):
                ok, why = K.can_implement(mp_config(wt, g, k=1024, act=act, zp=zp))
                assert ok, (wt, zp, act, g, why)
    # Odd shapes are fine (vLLM's CPU kernel wants multiples of 32).
    assert K.can_implement(mp_config(t.uint4b8, -1, k=40, n=20))[0]
    refused = {
        "int4 (the W4A8 schemes)": mp_config(t.int4),
        "3-bit": mp_config(t.uint3b4),
        "2-bit": mp_config(t.uint2b2),
        "zero points on a biased type": mp_config(t.uint4b8, zp=True),
        "group 8": mp_config(t.uint4b8, 8),
        "group 24": mp_config(t.uint4b8, 24),
        "group not dividing K": mp_config(t.uint4b8, 128, k=192),
        "fp8 activations": mp_config(t.uint4b8, act=torch.float8_e4m3fn),
        "another output type": mp_config(t.uint4b8, out_type=torch.float32),
    }
    for what, c in refused.items():
        ok, why = K.can_implement(c)
        assert not ok and why, what


def test_register_is_idempotent_and_selectable(monkeypatch):
    from vllm.model_executor.kernels import linear
    from vllm.platforms import PlatformEnum
    from vllm.scalar_type import scalar_types as t

    from vllm_forge.quant import linear_kernel as lk

    # vLLM's registry order alone (our platform's check_and_update_config, run by any
    # earlier test that built a VllmConfig here, sets VLLM_DISABLED_KERNELS: selection.py).
    monkeypatch.delenv("VLLM_DISABLED_KERNELS", raising=False)
    lk.register()
    lk.register()
    cpu_kernels = linear._POSSIBLE_KERNELS[PlatformEnum.CPU]
    assert cpu_kernels.count(lk.ForgeWNA16LinearKernel) == 1
    assert cpu_kernels[-1] is lk.ForgeWNA16LinearKernel  # appended: vLLM's stay ahead
    # vLLM's CPU kernel refuses 8-bit: ours serves it with no setting.
    assert linear.choose_mp_linear_kernel(mp_config(t.uint8b128)) is lk.ForgeWNA16LinearKernel
    assert linear.choose_mp_linear_kernel(mp_config(t.uint4b8)) is linear.CPUWNA16LinearKernel
    monkeypatch.setenv("VLLM_DISABLED_KERNELS", "CPUWNA16LinearKernel,ZentorchWNA16LinearKernel")
    assert linear.choose_mp_linear_kernel(mp_config(t.uint4b8)) is lk.ForgeWNA16LinearKernel


# --- through vLLM's own linear layers, loaders and kernel choice -------------------------


@pytest.fixture(scope="module")
def vllm_env():
    """A 1-rank process group and a default config (vLLM's parameters need them); our
    kernel registered and vLLM's CPU W4A16 kernels disabled, so ours is chosen."""
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import (
        init_distributed_environment,
        initialize_model_parallel,
        model_parallel_is_initialized,
    )

    from vllm_forge.quant import linear_kernel

    linear_kernel.register()
    old = os.environ.get("VLLM_DISABLED_KERNELS")
    os.environ["VLLM_DISABLED_KERNELS"] = "CPUWNA16LinearKernel,ZentorchWNA16LinearKernel"
    try:
        with set_current_vllm_config(VllmConfig()):
            if not model_parallel_is_initialized():
                init_distributed_environment(
                    world_size=1,
                    rank=0,
                    local_rank=0,
                    backend="gloo",
                    distributed_init_method=f"file://{tempfile.mktemp()}",
                )
                initialize_model_parallel(1)
            from vllm.model_executor.layers import linear

            yield SimpleNamespace(linear=linear)
    finally:
        if old is None:
            os.environ.pop("VLLM_DISABLED_KERNELS", None)
        else:
            os.environ["VLLM_DISABLED_KERNELS"] = old


def quant_config(method, bits, group, zp):
    if method == GPTQ:
        from vllm.model_executor.layers.quantization.auto_gptq import AutoGPTQConfig

        return AutoGPTQConfig.from_config(
            {"bits": bits, "group_size": group, "desc_act": False, "sym": True, "lm_head": False}
        )
    if method == AWQ:
        from vllm.model_executor.layers.quantization.auto_awq import AutoAWQConfig

        return AutoAWQConfig.from_config({"bits": bits, "group_size": group, "zero_point": zp})
    from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
        CompressedTensorsConfig,
    )

    return CompressedTensorsConfig.from_config(ct_quantization_config(bits, group, zp))


def ct_quantization_config(bits, group, zp):
    weights = {
        "num_bits": bits,
        "type": "int",
        "symmetric": not zp,
        "dynamic": False,
        "strategy": "channel" if group == -1 else "group",
        "group_size": None if group == -1 else group,
        "actorder": None,
    }
    return {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "ignore": ["lm_head"],
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": weights,
                "input_activations": None,
                "output_activations": None,
            }
        },
    }


def checkpoint_tensors(method, q, s, z, bits):
    """The tensors of the layer as the checkpoint file holds them (name -> tensor)."""
    n, k = q.shape
    if method == GPTQ:
        zeros = torch.full_like(s, (1 << (bits - 1)) - 1, dtype=torch.int32)  # v1: z - 1
        return {
            "qweight": pack_along(q.t(), bits, 0),
            "scales": s.t().contiguous(),
            "qzeros": pack_along(zeros.t(), bits, 1),
        }
    if method == AWQ:  # packed along N in AWQ's order
        zeros = z if z is not None else torch.zeros_like(s, dtype=torch.int32)
        return {
            "qweight": pack_along(q.t(), bits, 1, AWQ_ORDER),
            "scales": s.t().contiguous(),
            "qzeros": pack_along(zeros.t(), bits, 1, AWQ_ORDER),
        }
    out = {
        "weight_packed": ct_pack(q, bits, 1),
        "weight_scale": s.clone(),
        "weight_shape": torch.tensor([n, k], dtype=torch.int64),
    }
    if z is not None:
        out["weight_zero_point"] = ct_pack(z, bits, 0)
    return out


LAYER_CASES = [
    # method, bits, group, zero points (None: biased type), dtype, K, N, bias
    (GPTQ, 4, 128, None, torch.bfloat16, 256, 96, False),
    (GPTQ, 4, 32, None, torch.float16, 128, 64, True),
    (GPTQ, 4, -1, None, torch.bfloat16, 192, 32, False),
    (AWQ, 4, 64, True, torch.float16, 128, 64, False),
    (AWQ, 4, 128, True, torch.bfloat16, 256, 32, True),
    (AWQ, 4, 64, False, torch.float16, 128, 32, False),  # zero_point: false
    (CT, 8, 64, None, torch.float32, 192, 40, False),  # W8A16 in fp32
    (CT, 8, 128, None, torch.bfloat16, 256, 64, True),
    (CT, 4, 32, True, torch.float32, 96, 48, False),  # asymmetric W4A16
    (CT, 8, -1, True, torch.float16, 72, 24, False),  # channelwise asymmetric 8-bit
    (CT, 4, -1, None, torch.bfloat16, 160, 40, False),
]


@pytest.mark.parametrize("method,bits,group,zp,dtype,k,n,bias", LAYER_CASES)
def test_vllm_linear_layer(vllm_env, method, bits, group, zp, dtype, k, n, bias):
    from vllm_forge.quant.linear_kernel import MINS, ForgeWNA16LinearKernel

    q, s, z, w = random_quant(n, k, bits, group, dtype, zp, seed=7 * k + n)
    layer = vllm_env.linear.ColumnParallelLinear(
        k,
        n,
        bias=bias,
        params_dtype=dtype,
        quant_config=quant_config(method, bits, group, zp),
        prefix="model.layers.0.mlp.up_proj",
        return_bias=False,
    )
    kernel = (
        layer.quant_method.kernel if hasattr(layer.quant_method, "kernel") else layer.scheme.kernel
    )
    assert isinstance(kernel, ForgeWNA16LinearKernel)
    tensors = checkpoint_tensors(method, q, s, z, bits)
    if bias:
        tensors["bias"] = (torch.randn(n) * 0.1).to(dtype)
    for name, tensor in tensors.items():
        p = getattr(layer, name)
        p.weight_loader(p, tensor)
    layer.quant_method.process_weights_after_loading(layer)

    # Only our tensors remain: no int32 words, no zero points.
    assert all(p.dtype != torch.int32 for p in layer.parameters()), {
        name: p.dtype for name, p in layer.named_parameters()
    }
    qweight, scales = getattr(layer, kernel.w_q_name), getattr(layer, kernel.w_s_name)
    packed = TiledWeight(
        qweight, scales, getattr(layer, MINS), kernel.bits, kernel.group_size, k, n
    )
    got = packed.dequantize()
    if dtype == torch.float32 and packed.mins is not None:
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-9)
    else:
        assert torch.equal(got, w)

    x = torch.randn(2, 3, k).to(dtype)
    out = layer(x)
    assert out.shape == (2, 3, n) and out.dtype == dtype
    ref = x.float() @ w.t() + (tensors["bias"].float() if bias else 0)
    # fp32: summation order only; bf16/fp16: the output's rounding (and the kernel's
    # half-precision dequantised panels), relative to the output's scale.
    scale = float(ref.abs().max())
    tol = (
        dict(rtol=1e-5, atol=1e-5 * scale)
        if dtype == torch.float32
        else dict(rtol=1.6e-2, atol=1e-2 * scale)
    )
    torch.testing.assert_close(out.float(), ref, **tol)
    # A strided x (a column slice) is handled.
    wide = torch.randn(5, k + 8).to(dtype)
    torch.testing.assert_close(
        layer(wide[:, 4 : 4 + k]).float(),
        wide[:, 4 : 4 + k].float() @ w.t() + (tensors["bias"].float() if bias else 0),
        **tol,
    )


def test_gptq_8bit_is_refused_by_vllm_on_cpu(vllm_env):
    """vLLM's GPTQ linear method allows only uint4b8 on CPU (verify_marlin_supported):
    an 8-bit GPTQ checkpoint never reaches the kernel registry (compressed-tensors
    W8A16 does)."""
    with pytest.raises(ValueError, match="uint8b128"):
        vllm_env.linear.ColumnParallelLinear(
            256,
            64,
            bias=False,
            params_dtype=torch.bfloat16,
            quant_config=quant_config(GPTQ, 8, 128, None),
            prefix="x",
            return_bias=False,
        )


# --- end to end: a quantised tiny Llama through the engine --------------------------

LINEARS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
E2E_PROMPTS = [
    "The quick brown fox",
    "A paged attention kernel reads",
    "Numbers: 0 1 2",
    "Rotary embeddings rotate query and key vectors by their position. " * 4,
]


def rtn(weight: torch.Tensor, bits: int, group: int):
    """Symmetric round-to-nearest as GPTQ stores it: q = clamp(round(w / s) + 2^(b-1)),
    s = max |w| / (2^(b-1) - 1) per group (fp16); returns q [N, K], s [N, G] and the
    dequantised weight (q - 2^(b-1)) * s."""
    n, k = weight.shape
    half = 1 << (bits - 1)
    groups = weight.float().reshape(n, k // group, group)
    s = (groups.abs().amax(-1) / (half - 1)).clamp_min(1e-8).to(torch.float16)
    q = torch.round(groups / s.float().unsqueeze(-1)).clamp(-half, half - 1) + half
    q = q.to(torch.int32).reshape(n, k)
    w = (q - half).float() * s.float().repeat_interleave(group, dim=1)
    return q, s, w


def quantise_checkpoint(
    src: Path, dst: Path, method: str, bits: int, group: int, dequantised: Path | None = None
) -> None:
    """The tiny model's linear layers quantised (RTN) in GPTQ's or compressed-tensors'
    published layout, with its quantization_config; `dequantised`: the same quantised
    weights as a plain fp32 checkpoint."""
    import shutil

    from safetensors.torch import load_file, save_file

    state = load_file(src / "model.safetensors")
    quant, plain = {}, {}
    for name, tensor in state.items():
        prefix = name.removesuffix(".weight")
        if not any(prefix.endswith(lin) for lin in LINEARS):
            quant[name] = plain[name] = tensor
            continue
        q, s, w = rtn(tensor, bits, group)
        plain[name] = w
        if method == GPTQ:
            n, k = q.shape
            quant[f"{prefix}.qweight"] = pack_along(q.t(), bits, 0)
            quant[f"{prefix}.scales"] = s.t().contiguous()
            zeros = torch.full((k // group, n), (1 << (bits - 1)) - 1, dtype=torch.int32)
            quant[f"{prefix}.qzeros"] = pack_along(zeros, bits, 1)
            quant[f"{prefix}.g_idx"] = torch.arange(k, dtype=torch.int32) // group
        else:
            for key, value in checkpoint_tensors(CT, q, s, None, bits).items():
                quant[f"{prefix}.{key}"] = value
    for out, tensors in ((dst, quant), (dequantised, plain)):
        if out is None:
            continue
        out.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.suffix in (".json", ".txt") and f.name != "config.json":
                shutil.copy(f, out / f.name)
        config = json.loads((src / "config.json").read_text())
        if out == dst:
            config["quantization_config"] = (
                {
                    "quant_method": "gptq",
                    "bits": bits,
                    "group_size": group,
                    "desc_act": False,
                    "sym": True,
                    "lm_head": False,
                    "checkpoint_format": "gptq",
                }
                if method == GPTQ
                else ct_quantization_config(bits, group, None)
            )
        (out / "config.json").write_text(json.dumps(config, indent=1))
        save_file({k: v.contiguous() for k, v in tensors.items()}, out / "model.safetensors")


def run_engine(
    tmp: Path, tag: str, model: Path, dtype: str, forge: bool, eager: bool = True
) -> dict:
    """One engine in a subprocess (this file's __main__): greedy tokens, top-2 logprobs,
    and the per-op counts of our kernels."""
    from tests.e2e.engine import process_env  # here: this file is also the engine script
    from vllm_forge import report

    config, out, counts = tmp / f"{tag}.json", tmp / f"{tag}.out.json", tmp / f"{tag}.counts"
    counts.mkdir()
    config.write_text(
        json.dumps(
            dict(model=str(model), dtype=dtype, prompts=E2E_PROMPTS, max_tokens=16, eager=eager)
        )
    )
    env = dict(
        os.environ,
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_PLUGINS="forge" if forge else "none",
        FORGE_KERNEL_REPORT_DIR=str(counts),
        # Engine core and worker in this process, where register() runs.
        **process_env(multiprocess=False),
    )
    env.pop("VLLM_DISABLED_KERNELS", None)  # our platform's choice, not the caller's
    proc = subprocess.run(
        [sys.executable, __file__, str(config), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{tag} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(out.read_text())
    result["counts"] = report.collect(counts)
    result["log"] = proc.stdout + proc.stderr
    return result


def compare(ours: dict, reference: dict, tie: float) -> list[str]:
    """Token differences the rules do not allow; empty when the runs agree. At the first
    divergence of a prompt the two continuations part ways; it is permitted where either
    run saw its top-2 logprobs within `tie` (a near-tie: a rounding difference may flip
    it, and a half-precision run's own gap can be off by a few 1/128 steps)."""
    problems = []
    for i, (a, b) in enumerate(zip(ours["results"], reference["results"])):
        for step, (x, y) in enumerate(zip(a["token_ids"], b["token_ids"])):
            if x == y:
                continue
            gaps = [r["top2"][step][0] - r["top2"][step][1] for r in (a, b)]
            if min(gaps) >= tie:
                problems.append(
                    f"prompt {i} step {step}: token {x} vs {y} (top-2 gaps "
                    f"{gaps[0]:.4f} here, {gaps[1]:.4f} there)"
                )
            break
    return problems


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from vllm_forge.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "llama", "llama")


@pytest.mark.e2e
@pytest.mark.parametrize("dtype", ["bfloat16"])  # float16 x: the kernel tests (CI time)
def test_gptq_int4_matches_vllm_cpu_kernel(tiny_llama, tmp_path, dtype):
    """GPTQ int4 (group 128): ours (chosen by our platform ahead of vLLM's, with no
    setting: quant/selection.py) against vLLM's builtin CPU platform with its own
    CPUWNA16LinearKernel on the same checkpoint. (GPTQ takes only float16 and bfloat16
    models.) Both kernels use the exact weights; the activations' rounding differs, so
    near-ties may go either way."""
    model = tmp_path / "gptq"
    quantise_checkpoint(tiny_llama, model, GPTQ, 4, 128)
    ours = run_engine(tmp_path, "forge", model, dtype, True)
    builtin = run_engine(tmp_path, "builtin", model, dtype, False)
    assert ours["platform"] == "ForgeCpuPlatform" and builtin["platform"] == "CpuPlatform"
    assert "Using ForgeWNA16LinearKernel for AutoGPTQLinearMethod" in ours["log"]
    assert "Using CPUWNA16LinearKernel for AutoGPTQLinearMethod" in builtin["log"]
    assert ours["counts"].get("native", {}).get("quant_gemm", 0) > 0, ours["counts"]
    assert not builtin["counts"]
    problems = compare(ours, builtin, tie=0.02)
    assert not problems, "\n".join(problems)


@pytest.mark.e2e
def test_compressed_tensors_w8a16_fp32_matches_dequantised(tiny_llama, tmp_path):
    """compressed-tensors W8A16 (uint8b128, group 64) in fp32, eager and compiled: vLLM's
    CPU kernels cannot serve it, ours does with no setting; against vLLM's builtin
    platform on the same weights dequantised to fp32 (only the GEMMs' summation order
    differs)."""
    model, plain = tmp_path / "ct8", tmp_path / "ct8-dequantised"
    quantise_checkpoint(tiny_llama, model, CT, 8, 64, dequantised=plain)
    builtin = run_engine(tmp_path, "builtin", plain, "float32", False)
    for eager in (True, False):
        ours = run_engine(
            tmp_path,
            f"forge-{'eager' if eager else 'compiled'}",
            model,
            "float32",
            True,
            eager=eager,
        )
        assert "Using ForgeWNA16LinearKernel for CompressedTensorsWNA16" in ours["log"]
        assert ours["counts"].get("native", {}).get("quant_gemm", 0) > 0, ours["counts"]
        problems = compare(ours, builtin, tie=1e-3)
        assert not problems, "\n".join(problems)


def _generate(config_path: str, out_path: str) -> None:
    """The engine subprocess: one greedy generation (with the plugin, its worker
    registers our kernel and its platform puts it first)."""
    cfg = json.loads(Path(config_path).read_text())
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    llm = LLM(
        model=cfg["model"],
        dtype=cfg["dtype"],
        enforce_eager=cfg["eager"],
        max_model_len=512,
        max_num_batched_tokens=128,
        gpu_memory_utilization=0.5,
        seed=0,
    )
    params = SamplingParams(
        temperature=0.0, max_tokens=cfg["max_tokens"], logprobs=2, ignore_eos=True
    )
    results = []
    for request in llm.generate(cfg["prompts"], params, use_tqdm=False):
        completion = request.outputs[0]
        top2 = [
            sorted((lp.logprob for lp in step.values()), reverse=True)[:2]
            for step in completion.logprobs
        ]
        results.append({"token_ids": list(completion.token_ids), "top2": top2})
    Path(out_path).write_text(
        json.dumps({"platform": type(current_platform).__name__, "results": results})
    )


if __name__ == "__main__":
    _generate(sys.argv[1], sys.argv[2])
