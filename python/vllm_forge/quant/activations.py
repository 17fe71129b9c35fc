"""int8 activations for quant_gemm (its `quantize_x`): x rounded to int8 per block of
min(32, group_size) k, as llama.cpp's Q8 activations, so the CPU kernel multiplies int8 by
int8/int4 codes with AVX512-VNNI (vpdpbusd: twice the products per instruction of bf16).

Which layers use it: FORGE_QUANT_ACTIVATIONS
- `auto` (default): int8 for bf16/fp16 models on a CPU whose kernels have VNNI (the
  avx512bf16 variant), where it is faster; x as given otherwise (fp32 models stay exact);
- `int8`: always (any dtype, any device: elsewhere the kernels multiply the fp32 x');
- `exact`: never.
The error it adds is measured in benchmarks/e2e/bench_bf16_accuracy.py (forge_gguf_int8).
"""

import functools
import os

import torch

FORGE_QUANT_ACTIVATIONS = "FORGE_QUANT_ACTIVATIONS"
MODES = ("auto", "int8", "exact")


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
    value = os.environ.get(FORGE_QUANT_ACTIVATIONS, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{FORGE_QUANT_ACTIVATIONS}={value!r}: must be one of {', '.join(MODES)}")
    return value


@functools.cache
def _native_int8_kernel(device_type: str) -> bool:
    """Whether quant_gemm on `device_type` runs our native CPU kernel with VNNI."""
    from vllm_forge import extension, ops

    return (
        device_type == "cpu"
        and ops.choose("quant_gemm", device_type).provider == "native"
        and extension.cpu_kernel_isa()[0] == "avx512bf16"
    )


def choice(device_type: str) -> tuple[bool, bool]:
    """(quantize_x for 16-bit x, for fp32 x) for layers on `device_type`; decided once per
    layer at load time, so compiled graphs see constants."""
    chosen = mode()
    if chosen == "exact":
        return False, False
    if chosen == "int8":
        return True, True
    return _native_int8_kernel(device_type), False


def describe(device_type: str) -> str:
    """One line for the kernel report and `python -m vllm_forge.info`."""
    half, full = choice(device_type)
    return (
        f"{FORGE_QUANT_ACTIVATIONS}={mode()}: bf16/fp16 x {'int8' if half else 'exact'}, "
        f"fp32 x {'int8' if full else 'exact'}"
    )
