"""ForgeWNA16LinearKernel: weight-only int4/int8 checkpoints (GPTQ, AWQ,
compressed-tensors pack-quantized W4A16/W8A16, Quark W4A16) served by our `quant_gemm`,
through vLLM's mixed-precision linear-kernel registry.

What reaches it. On the CPU platform these quantization methods build their linear
layers with `choose_mp_linear_kernel(MPLinearLayerConfig)` (vLLM 0.32):

- GPTQ (`auto_gptq.py`, quant_method "gptq"): symmetric only, uint4b8 (4 bits) or
  uint8b128 (8 bits), no zero points (qzeros is loaded and ignored). But on CPU its
  linear method first calls `verify_marlin_supported`, whose CPU list is uint4b8 alone
  and whose group sizes are -1, 32, 64, 128: an 8-bit GPTQ checkpoint is refused by vLLM
  before any kernel is asked. desc_act=True (group act-order) is refused by vLLM's
  config (`normalize_and_validate_gptq_desc_act`), so no g_idx permutation arrives.
- AWQ (`auto_awq.py`, "awq"): on CPU always `AutoAWQMarlinLinearMethod`, uint4 with
  zero points (or without, zero_point=false), converted to the GPTQ-like layout before
  the kernel sees it.
- compressed-tensors `CompressedTensorsWNA16` (format pack-quantized, weights only):
  uint{2..8}b{bias} symmetric or uint{2..8} with zero points, group or channel
  strategy; group act-order is refused by vLLM's config. Also WNA8O8 (static int8
  activation fake-quant applied outside the kernel) and WNA8Int/WNA4Int (dynamic
  activation quantisation meant for the Humming kernel: refused here at load, see
  below).
- Quark `QuarkW4A16Int4`: uint4b8 or uint4 with zero points (not tested here, nor
  WNA8O8).

Both GPTQ and AWQ accept only float16/bfloat16 models (`get_supported_act_dtypes`);
compressed-tensors also float32.

What it implements, all exactly: vLLM's meaning w = (q - z) * s (z the type's bias, the
zero point, or 0) maps onto our layout (quant/format.py: W = s * c + m per group, fp32)
with

- 4-bit types (uint4b8, uint4): codes c = q, m = -z * s;
- 8-bit types (uint8b128, uint8): int8 codes c = q - 128, m = (128 - z) * s, so
  uint8b128 needs no mins at all;
- channelwise (group_size -1): our group 256 with the row's one scale in every group;
  a group size that is a multiple of one of ours (16..256, e.g. 512): our largest
  divisor, each scale repeated. The last group of a row may be partial in our layout.

Scales and mins stay float16 when the checkpoint's are and every min is a float16 value
(uint4b8: -8 s; uint8b128: none), else float32 (bfloat16 and zero-point checkpoints).
With float16 or bfloat16 scales, s * c + m equals (q - z) * s exactly in fp32 (each term
has at most 8 + 11 significant bits); with float32 scales (compressed-tensors float32
models) it can differ in the last bit. Activations: float32, bfloat16, float16.
Refused, with a reason: other weight types (int4 of the W4A8 schemes, 2/3/5/6/7-bit
types), zero points on a biased type, group sizes that are not a multiple of 16..256
or do not divide the input size, a separate output dtype, any non-CPU platform.

Repacking happens once, in process_weights_after_loading: the checkpoint's int32
tensors are replaced by ours (`<qweight>` uint8/int8, `<scales>` fp16/fp32, `forge_mins`
or None) and the zero-point parameter is dropped, so the packed int32 tensors are freed.

Selecting it. `register()` appends the kernel to vLLM's CPU list; vLLM's
`register_linear_kernel` has no priority argument (a missing extension point: a
plugin's kernel cannot be put ahead of the built-in ones), so for what vLLM's own kernels
implement (uint4b8 and uint4 with N and K multiples of 32) they still win. The official
way for a user to make ours serve those layers is to disable vLLM's by class name:

    VLLM_DISABLED_KERNELS=CPUWNA16LinearKernel,ZentorchWNA16LinearKernel

(Zentorch's kernel only applies on AMD Zen with zentorch installed; Dynamic4bit takes
only signed int4, which we refuse anyway.) `--linear-backend` cannot name it: its values
are a fixed Literal and `_LINEAR_BACKEND_KERNEL_MAP` is private. For what vLLM's CPU
kernels refuse (8-bit types, N or K not a multiple of 32) ours serves with no setting.

register() must run in every process that builds models (the worker) after the platform
is resolved: importing this module imports vLLM's kernel package, which resolves
`current_platform`.
"""

import logging

import torch
from vllm.model_executor.kernels.linear.mixed_precision.MPLinearKernel import (
    MPLinearKernel,
    MPLinearLayerConfig,
)
from vllm.model_executor.layers.quantization.utils import replace_parameter
from vllm.platforms import current_platform
from vllm.scalar_type import ScalarType, scalar_types

from vllm_forge.quant.format import GROUP_SIZES, PackedWeight, num_groups, pack_int4

logger = logging.getLogger("vllm.forge.quant")

# vLLM weight type -> the bits of our layout it is stored in.
SUPPORTED_TYPES: dict[ScalarType, int] = {
    scalar_types.uint4b8: 4,
    scalar_types.uint4: 4,
    scalar_types.uint8b128: 8,
    scalar_types.uint8: 8,
}
ACT_TYPES = (torch.float32, torch.bfloat16, torch.float16)
CHANNELWISE_GROUP = 256  # our group for group_size -1 (one scale per row, replicated)
MINS = "forge_mins"
# Input quantisation a scheme asks of the kernel (compressed-tensors WNA8Int/WNA4Int,
# read by vLLM's Humming kernel): ours is W·A16 and cannot honour it.
_INPUT_QUANT_ATTR = "_humming_input_quant_config"


def our_group_size(group_size: int) -> int | None:
    """Our group for a checkpoint's group size (-1: channelwise), or None."""
    if group_size == -1:
        return CHANNELWISE_GROUP
    divisors = [g for g in GROUP_SIZES if group_size > 0 and group_size % g == 0]
    return max(divisors) if divisors else None


def _unpack(packed: torch.Tensor, bits: int, dim: int, size: int) -> torch.Tensor:
    """int32 words holding 32 // bits values each along `dim` (value j of a word at bits
    j * bits, GPTQ / compressed-tensors order) -> int32 values, `size` along `dim`."""
    per_word = 32 // bits
    t = packed.movedim(dim, -1).to(torch.int32)
    shifts = torch.arange(per_word, dtype=torch.int32, device=t.device) * bits
    values = (t.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    values = values.flatten(-2)
    if values.shape[-1] < size:
        raise ValueError(
            f"forge WNA16: {packed.shape[dim]} packed words along dim {dim} hold "
            f"{values.shape[-1]} values, fewer than {size}"
        )
    return values[..., :size].movedim(-1, dim)


def _dims(param: torch.Tensor, name: str) -> tuple[int, int, int | None]:
    """(input_dim, output_dim, packed_dim) of a 2-D vLLM parameter; a missing input or
    output dim is the other one, as in vLLM's permute_param_layout_."""
    if param.dim() != 2:
        raise ValueError(f"forge WNA16: {name} must be 2-D, got shape {list(param.shape)}")
    in_dim = getattr(param, "input_dim", None)
    out_dim = getattr(param, "output_dim", None)
    if in_dim is None and out_dim is None:
        raise ValueError(f"forge WNA16: {name} has neither input_dim nor output_dim")
    if in_dim is None:
        assert out_dim is not None  # both None raised above
        in_dim = 1 - out_dim
    if out_dim is None:
        out_dim = 1 - in_dim
    return in_dim, out_dim, getattr(param, "packed_dim", None)


def checkpoint_codes(qweight: torch.Tensor, bits: int, n: int, k: int) -> torch.Tensor:
    """The packed weight parameter -> int32 codes q [N, K] (0 .. 2^bits - 1)."""
    in_dim, out_dim, packed_dim = _dims(qweight, "qweight")
    if qweight.dtype != torch.int32 or packed_dim is None:
        raise ValueError(
            f"forge WNA16: expected an int32 packed weight, got "
            f"{qweight.dtype} packed_dim={packed_dim}"
        )
    sizes = {in_dim: k, out_dim: n}
    q = _unpack(qweight.data, bits, packed_dim, sizes[packed_dim])
    q = q if out_dim == 0 else q.t()
    if tuple(q.shape) != (n, k):
        raise ValueError(f"forge WNA16: weight unpacks to {list(q.shape)}, expected [{n}, {k}]")
    return q


def checkpoint_zeros(zp: torch.Tensor, bits: int, n: int, groups: int) -> torch.Tensor:
    """The packed zero-point parameter -> int32 zero points [N, groups]."""
    _, out_dim, packed_dim = _dims(zp, "zero points")
    z = zp.data.to(torch.int32)
    if packed_dim is not None:
        z = _unpack(z, bits, packed_dim, n if packed_dim == out_dim else groups)
    z = z if out_dim == 0 else z.t()
    if tuple(z.shape) != (n, groups):
        raise ValueError(
            f"forge WNA16: zero points unpack to {list(z.shape)}, expected [{n}, {groups}]"
        )
    return z


def checkpoint_scales(scales: torch.Tensor) -> torch.Tensor:
    """The scale parameter -> [N, groups] in its own dtype."""
    _, out_dim, _ = _dims(scales, "scales")
    return scales.data if out_dim == 0 else scales.data.t()


def repack(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | int,
    weight_type: ScalarType,
    group_size: int,
):
    """vLLM's quantised weight w[n, k] = (codes - zeros) * scales (per checkpoint group)
    -> (qweight, scales, mins | None, bits, our group size) in quant/format.py's row form,
    exact.

    codes: int32 [N, K]; scales: [N, G] (G = K / group_size, 1 if channelwise);
    zeros: the type's bias (an int) or int32 [N, G]."""
    bits = SUPPORTED_TYPES[weight_type]
    n, k = codes.shape
    g = our_group_size(group_size)
    src_group = k if group_size == -1 else group_size
    if g is None or (group_size != -1 and k % group_size):
        raise ValueError(
            f"forge WNA16: group size {group_size} for K={k} has no exact "
            f"mapping onto groups of {GROUP_SIZES}"
        )
    if scales.shape != (n, max(1, k // src_group)):
        raise ValueError(
            f"forge WNA16: scales {list(scales.shape)} do not match [{n}, "
            f"{k // src_group}] for K={k}, group size {group_size}"
        )
    # Our group j covers k in [j g, (j + 1) g), all inside checkpoint group (j g) // src.
    index = torch.arange(num_groups(k, g), device=codes.device) * g // src_group
    s = scales[:, index]
    offset = 128 if bits == 8 else 0  # int8 codes are q - 128
    qweight = (codes - 128).to(torch.int8).contiguous() if bits == 8 else pack_int4(codes)
    s32 = s.to(torch.float32)
    if isinstance(zeros, int):
        mins = None if zeros == offset else (offset - zeros) * s32
        dtype = torch.float32
        if scales.dtype == torch.float16:
            # Keep fp16 (half the bytes) when every min is an fp16 value, e.g. -8 s.
            if mins is None or (
                torch.isfinite(mins.half()).all() and torch.equal(mins.half().float(), mins)
            ):
                dtype = torch.float16
    else:
        mins = (offset - zeros[:, index]).to(torch.float32) * s32
        dtype = torch.float32
    mins = None if mins is None else mins.to(dtype).contiguous()
    return qweight, s32.to(dtype).contiguous(), mins, bits, g


class ForgeWNA16LinearKernel(MPLinearKernel):
    """vLLM's weight-only int4/int8 linear layers on our quant_gemm (see the module)."""

    @classmethod
    def get_min_capability(cls) -> int:
        return -1

    @classmethod
    def can_implement(cls, c: MPLinearLayerConfig) -> tuple[bool, str | None]:
        if not current_platform.is_cpu():
            return False, "ForgeWNA16 is registered for the CPU platform only"
        if c.weight_type not in SUPPORTED_TYPES:
            return False, (
                f"weight type {c.weight_type} is not supported by ForgeWNA16 "
                f"(supported: {', '.join(map(str, SUPPORTED_TYPES))})"
            )
        if c.zero_points and c.weight_type.has_bias():
            return False, f"zero points on the biased type {c.weight_type}"
        if c.act_type not in ACT_TYPES:
            return False, f"activation type {c.act_type} (supported: float32, bfloat16, float16)"
        if c.out_type is not None and c.out_type != c.act_type:
            return False, f"output type {c.out_type} differs from activation type {c.act_type}"
        k = c.partition_weight_shape[0]
        if our_group_size(c.group_size) is None:
            return False, (
                f"group size {c.group_size} is not -1 or a multiple of one of {GROUP_SIZES}"
            )
        if c.group_size != -1 and k % c.group_size:
            return False, f"group size {c.group_size} does not divide the input size {k}"
        return True, None

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        c = self.config
        if getattr(layer, _INPUT_QUANT_ATTR, None) is not None:
            raise ValueError(
                "forge WNA16: this scheme quantises activations (dynamic input quant), "
                "which ForgeWNA16LinearKernel (weights only) does not do; add "
                "ForgeWNA16LinearKernel to VLLM_DISABLED_KERNELS to leave it to vLLM"
            )
        k, n = c.partition_weight_shape
        for name in ("g_idx", "weight_g_idx"):
            g_idx = getattr(layer, name, None)
            if g_idx is not None and g_idx.numel():
                group = k if c.group_size == -1 else c.group_size
                expected = torch.arange(k, device=g_idx.device) // group
                if not torch.equal(g_idx.to(expected.dtype), expected):
                    raise ValueError(
                        f"forge WNA16: {name} permutes the input (act-order), "
                        f"which ForgeWNA16LinearKernel does not implement"
                    )
        bits = c.weight_type.size_bits
        w_q, w_s, w_zp = self._get_weight_params(layer)
        codes = checkpoint_codes(w_q, bits, n, k)
        scales = checkpoint_scales(w_s)
        if c.weight_type.has_bias():
            zeros: torch.Tensor | int = c.weight_type.bias
        elif c.zero_points:
            if w_zp is None:
                raise ValueError("forge WNA16: zero points expected but the layer has none")
            zeros = checkpoint_zeros(w_zp, bits, n, scales.shape[1])
        else:
            zeros = 0
        qweight, scales, mins, self.bits, self.group_size = repack(
            codes, scales, zeros, c.weight_type, c.group_size
        )
        self.in_features, self.out_features = k, n
        del codes, w_q, w_s, w_zp
        # The kernels' tiled form (format.py), from the row form repack() gives.
        tiled = PackedWeight(qweight, scales, mins, self.bits, self.group_size, k).tiled()
        qweight, scales, mins = tiled.qweight, tiled.scales, tiled.mins
        replace_parameter(layer, self.w_q_name, torch.nn.Parameter(qweight, requires_grad=False))
        replace_parameter(layer, self.w_s_name, torch.nn.Parameter(scales, requires_grad=False))
        if self.w_zp_name is not None and getattr(layer, self.w_zp_name, None) is not None:
            setattr(layer, self.w_zp_name, None)  # the packed int32 zero points are freed
        layer.register_parameter(
            MINS, None if mins is None else torch.nn.Parameter(mins, requires_grad=False)
        )
        # Choose the op's provider now, outside any torch.compile trace.
        from vllm_forge import ops

        ops.choose("quant_gemm", qweight.device.type)
        # Fixed now, a constant to Dynamo (one kernel object per layer).
        from vllm_forge.quant import activations

        self.quantize_x = activations.quantize_x()

    def apply_weights(
        self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        from vllm_forge.ops import quant_gemm

        qweight = getattr(layer, self.w_q_name)
        x2 = x.reshape(-1, x.shape[-1])
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        out = torch.empty(x2.shape[0], self.out_features, dtype=x.dtype, device=x.device)
        quant_gemm(
            out,
            x2,
            qweight,
            getattr(layer, self.w_s_name),
            getattr(layer, MINS),
            bias,
            self.bits,
            self.group_size,
            self.quantize_x,
        )
        return out.reshape(*x.shape[:-1], self.out_features)


_registered = False


def register() -> None:
    """Add ForgeWNA16LinearKernel to vLLM's CPU mixed-precision kernels (after vLLM's
    own; see the module docstring). Idempotent; cheap after the first call."""
    global _registered
    if _registered:
        return
    from vllm.model_executor.kernels.linear import register_linear_kernel
    from vllm.platforms import PlatformEnum

    register_linear_kernel(ForgeWNA16LinearKernel, PlatformEnum.CPU, "mp")
    _registered = True
    logger.debug("registered ForgeWNA16LinearKernel for CPU mixed-precision linear layers")
