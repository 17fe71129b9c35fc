"""Our kernels inside vLLM's model layers, through vLLM's extension points.

- Norms: providers "forge" for vLLM's IR ops rms_norm and fused_add_rms_norm
  (imported by the platform's import_ir_kernels, first in its default priority).
- SiluAndMul, GeluAndMul, RotaryEmbedding: CustomOp.register_oot replacements whose
  forward_cpu and forward_cuda call our ops. They must be registered in each worker
  before the model is built (our workers do it). register_oot renames the class after the in-tree class;
  we restore vLLM's op name so `compilation_config.custom_ops` toggles keep working.

The provider of each op (native, Triton or the torch reference, on the platform's device
type) is resolved once, when a layer is built, so the forward pass is a plain call of a
torch op that torch.compile traces cleanly.
"""

import torch

from vllm_forge import ops

FORGE_PROVIDER = "forge"
_registered = False


def _shape_halved(x: torch.Tensor) -> tuple[int, ...]:
    return x.shape[:-1] + (x.shape[-1] // 2,)


def _device_type() -> str:
    from vllm.platforms import current_platform

    return current_platform.device_type


def register_custom_ops() -> None:
    """Register our CustomOp replacements with vLLM; idempotent."""
    global _registered
    if _registered:
        return
    from vllm.model_executor.custom_op import CustomOp
    from vllm.model_executor.layers.activation import GeluAndMul, SiluAndMul
    from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding

    class ForgeSiluAndMul(SiluAndMul):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._forge_op = ops.choose("silu_and_mul", _device_type()).fn

        def forward_cpu(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.empty(_shape_halved(x), dtype=x.dtype, device=x.device)
            self._forge_op(out, x)
            return out

        forward_cuda = forward_cpu

    class ForgeGeluAndMul(GeluAndMul):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._forge_op = ops.choose("gelu_and_mul", _device_type()).fn

        def forward_cpu(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.empty(_shape_halved(x), dtype=x.dtype, device=x.device)
            self._forge_op(out, x, self.approximate)
            return out

        forward_cuda = forward_cpu

    class ForgeRotaryEmbedding(RotaryEmbedding):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._forge_op = ops.choose("rotary_embedding", _device_type()).fn

        def forward_cpu(
            self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None = None
        ):
            cos_sin_cache = self._match_cos_sin_cache_dtype(query)
            self._forge_op(
                positions.flatten(), query, key, self.head_size, cos_sin_cache, self.is_neox_style
            )
            return query, key

        forward_cuda = forward_cpu

    pairs: tuple[tuple[type[CustomOp], type[CustomOp]], ...] = (
        (ForgeSiluAndMul, SiluAndMul),
        (ForgeGeluAndMul, GeluAndMul),
        (ForgeRotaryEmbedding, RotaryEmbedding),
    )
    for ours, theirs in pairs:
        CustomOp.register_oot(ours, name=theirs.__name__)
        # vLLM's CustomOp.register sets `name` on each class at run time: unseen by mypy.
        ours.name = theirs.name  # type: ignore[attr-defined]
    _registered = True


def register_ir_providers(device_type: str = "cpu") -> None:
    """Add provider "forge" to vLLM's IR norm ops, for tensors of `device_type`; idempotent."""
    from vllm import ir

    if FORGE_PROVIDER in ir.ops.rms_norm.impls:
        return
    norm = ops.choose("rms_norm", device_type).fn
    fused = ops.choose("fused_add_rms_norm", device_type).fn

    def supported(x, x_residual=None, weight=None, epsilon=0.0, variance_size=None) -> bool:
        return (
            variance_size is None
            and x.device.type == device_type
            and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and (weight is None or weight.dtype == x.dtype)
        )

    @ir.ops.rms_norm.register_impl(
        FORGE_PROVIDER,
        supports_args=lambda x, weight, epsilon, variance_size=None: supported(
            x, None, weight, epsilon, variance_size
        ),
    )
    def forge_rms_norm(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        variance_size: int | None = None,
    ) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        norm(out, x, weight, epsilon)
        return out

    @ir.ops.fused_add_rms_norm.register_impl(
        FORGE_PROVIDER,
        inplace=True,
        supports_args=lambda x, x_residual, weight, epsilon, variance_size=None: (
            supported(x, x_residual, weight, epsilon, variance_size) and x_residual.dtype == x.dtype
        ),
    )
    def forge_fused_add_rms_norm(
        x: torch.Tensor,
        x_residual: torch.Tensor,
        weight: torch.Tensor | None,
        epsilon: float,
        variance_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fused(x, x_residual, weight, epsilon)
        return x, x_residual
