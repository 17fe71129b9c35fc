"""Which kernel serves weight-only int4/int8 checkpoints (GPTQ, AWQ, compressed-tensors
W4A16/W8A16) on our CPU platform: ours (ForgeWNA16LinearKernel, quant_gemm) or vLLM's
own CPUWNA16LinearKernel (cpu_gemm_wna16).

vLLM's `register_linear_kernel` only appends, so for what its own kernel implements it
would stay first. Ours is faster in bench_quant_gemm (int4 symmetric, 2026-12-02: 2.7-4.1x
at M = 1, 2.0-2.8x at M = 4, 1.36-1.64x at M = 16, 1.7-2.3x at M = 512; at M = 64
1.2-1.8x, two points disturbed by the host's neighbours at 0.61x and 0.76x), so our
platform puts it first
the way vLLM itself offers, by naming vLLM's kernels in VLLM_DISABLED_KERNELS, from its
check_and_update_config (as vLLM's CPU platform sets its own variables there), before
the engine processes start. A user's own VLLM_DISABLED_KERNELS is left as it is, and
FORGE_WNA16=vllm keeps vLLM's kernel first. Pure functions of the environment, so tests
and `python -m vllm_forge.info` tell the same story.
"""

import os
from collections.abc import Mapping, MutableMapping

FORGE_WNA16 = "FORGE_WNA16"  # "forge" (default) or "vllm"
VLLM_DISABLED = "VLLM_DISABLED_KERNELS"
BUILTIN_KERNELS = ("CPUWNA16LinearKernel", "ZentorchWNA16LinearKernel")
OURS = "ForgeWNA16LinearKernel"


def preference(environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get(FORGE_WNA16, "forge").strip().lower() or "forge"
    if value not in ("forge", "vllm"):
        raise ValueError(f"{FORGE_WNA16}={value!r}: expected 'forge' or 'vllm'")
    return value


def choice(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(the kernel that serves the layers both kernels implement, why)."""
    disabled = [k.strip() for k in environ.get(VLLM_DISABLED, "").split(",") if k.strip()]
    if VLLM_DISABLED in environ:
        if all(k in disabled for k in BUILTIN_KERNELS):
            return OURS, f"{VLLM_DISABLED} disables vLLM's"
        return BUILTIN_KERNELS[0], (
            f"{VLLM_DISABLED} is set by the user and does not list "
            f"{', '.join(BUILTIN_KERNELS)}; ours serves only what "
            f"vLLM's refuse"
        )
    if preference(environ) == "vllm":
        return BUILTIN_KERNELS[0], f"{FORGE_WNA16}=vllm; ours serves only what vLLM's refuse"
    return OURS, "faster in bench_quant_gemm (the platform disables vLLM's)"


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put our kernel first, unless the user chose otherwise (see the module's doc)."""
    if VLLM_DISABLED not in environ and preference(environ) == "forge":
        environ[VLLM_DISABLED] = ",".join(BUILTIN_KERNELS)
