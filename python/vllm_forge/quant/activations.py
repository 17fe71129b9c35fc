"""int8 activations for quant_gemm (its `quantize_x`): x rounded to int8 per block of
min(32, group_size) k, as llama.cpp's Q8 activations, so the CPU kernel multiplies int8 by
int8/int4 codes with AVX512-VNNI (vpdpbusd: twice the products per instruction of bf16).

FORGE_QUANT_ACTIVATIONS chooses, for every quantised linear layer (GGUF, GPTQ/AWQ/...):
- `exact` (default): x as given. vLLM's answers: bf16 error no larger than vLLM's own.
- `int8`: x rounded to int8 per block first (any dtype). Faster where the CPU kernels have
  VNNI (the avx512bf16 variant; elsewhere the kernels multiply the rounded x in fp32, which
  is slower than exact). It adds error: on SmolLM2's Q4_1 GGUF the mean |logprob error|
  against the fp32 exact run is 0.063 in bf16 (exact bf16: 0.030), the same as llama.cpp's
  own on that file (0.059): benchmarks/e2e/bench_int8_activations.py.
"""

import functools
import os

import torch

FORGE_QUANT_ACTIVATIONS = "FORGE_QUANT_ACTIVATIONS"
MODES = ("exact", "int8")


def quantize_x_int8(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """x [M, K] rounded to int8 per block of min(32, group_size) k, back in fp32: d q with
    d = max|x| / 127 and q = round-half-even(x * (127 / max|x|)) (0 when the max is 0).
    A block holding inf or NaN becomes NaN. The reference of every provider's quantize_x."""
    block = min(group_size, 32)
    m, k = x.shape
    kp = -(-k // block) * block
    xf = torch.nn.functional.pad(x.float(), (0, kp - k)).view(m, kp // block, block)
    amax = xf.abs().amax(-1, keepdim=True)
    finite = amax.isfinite()
    # A true division (the kernels' 127 / max): `127.0 / amax` is reciprocal(amax) * 127,
    # an ulp away at times, which moves codes at near-ties.
    inv = torch.where(finite & (amax > 0), torch.full_like(amax, 127.0) / amax, 0.0)
    d = torch.where(finite, amax / 127.0, float("nan"))
    return ((xf * inv).round() * d).view(m, kp)[:, :k]


def mode() -> str:
    value = os.environ.get(FORGE_QUANT_ACTIVATIONS, "exact").strip().lower() or "exact"
    if value not in MODES:
        raise ValueError(f"{FORGE_QUANT_ACTIVATIONS}={value!r}: must be one of {', '.join(MODES)}")
    return value


def quantize_x() -> bool:
    """quant_gemm's quantize_x for the quantised layers: read once per layer at load time,
    so compiled graphs see a constant."""
    return mode() == "int8"


@functools.cache
def has_int8_kernel(device_type: str) -> bool:
    """Whether quant_gemm on `device_type` runs our native CPU kernel with VNNI."""
    from vllm_forge import extension, ops

    return (
        device_type == "cpu"
        and ops.choose("quant_gemm", device_type).provider == "native"
        and extension.cpu_kernel_isa()[0] == "avx512bf16"
    )


def describe(device_type: str) -> str:
    """One line for the kernel report and `python -m vllm_forge.info`."""
    if mode() == "exact":
        return f"{FORGE_QUANT_ACTIVATIONS}=exact: x as given (int8 per block: =int8)"
    kernel = (
        "VNNI int8 dot products"
        if has_int8_kernel(device_type)
        else "no int8 kernel here: the rounded x in fp32, slower than exact"
    )
    return f"{FORGE_QUANT_ACTIVATIONS}=int8: x rounded to int8 per block ({kernel})"
