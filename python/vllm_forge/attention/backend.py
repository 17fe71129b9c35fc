"""FORGE_ATTN: vLLM attention backend on our paged-attention kernel.

Three classes, as vLLM expects: the backend (capabilities), the metadata builder (what
one batch needs) and the impl (per layer: cache update and attention). The model runner
is unchanged. The batch is one varlen call: decodes, prefills and chunked prefills mixed,
in any order, so no batch reordering is requested.

KV cache: vLLM hands each layer a [num_blocks, num_kv_heads, block_size, 2 * head_size]
view (layout LBHNC); inside each (block, head) we keep keys transposed, then values (see
kv_layout.py).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from vllm.v1.attention.backend import (
    AttentionBackend,
    AttentionImpl,
    AttentionMetadata,
    AttentionMetadataBuilder,
    AttentionType,
    CommonAttentionMetadata,
    MultipleOf,
)
from vllm.v1.kv_cache_interface import KVCacheLayout

from vllm_forge import ops
from vllm_forge.attention.kv_layout import split_kv_cache

if TYPE_CHECKING:
    from vllm.config.cache import CacheDType

# Head sizes the kernel handles: multiples of 16 from 32 to 256.
SUPPORTED_HEAD_SIZES = list(range(32, 257, 16))


class ForgeAttentionBackend(AttentionBackend):
    forward_includes_kv_cache_update: bool = False

    supported_dtypes: ClassVar[list[torch.dtype]] = [torch.float32, torch.bfloat16, torch.float16]
    # The cache holds the model dtype; quantised (fp8) caches are not supported.
    supported_kv_cache_dtypes: ClassVar[list["CacheDType"]] = ["auto"]

    @staticmethod
    def get_name() -> str:
        return "FORGE_ATTN"

    @staticmethod
    def get_impl_cls() -> type["ForgeAttentionImpl"]:
        return ForgeAttentionImpl

    @staticmethod
    def get_builder_cls() -> type["ForgeAttentionMetadataBuilder"]:
        return ForgeAttentionMetadataBuilder

    @classmethod
    def get_supported_head_sizes(cls) -> list[int]:
        return SUPPORTED_HEAD_SIZES

    @staticmethod
    def get_supported_kernel_block_sizes(kv_cache_spec=None) -> list[int | MultipleOf]:
        return [MultipleOf(16)]  # the kernel handles 16 keys per vector

    @classmethod
    def supported_kv_cache_layouts(cls) -> tuple[KVCacheLayout, ...]:
        return (KVCacheLayout.LBHNC,)

    @classmethod
    def supports_sliding_window(cls) -> bool:
        return True

    # Left at the base class's answer (unsupported, so declined and served by vLLM's
    # CPU backend): MLA, sparse, attention sinks, non-causal decoders, encoder and
    # cross attention, per-head quant scales, batch invariance, context parallelism.


@dataclass
class ForgeAttentionMetadata(AttentionMetadata):  # the bound of AttentionImpl's parameter
    num_actual_tokens: int
    max_query_len: int
    max_seq_len: int
    query_start_loc: torch.Tensor  # [num_seqs + 1] int32
    seq_lens: torch.Tensor  # [num_seqs] int32, context plus new tokens
    block_table: torch.Tensor  # [num_seqs, max_blocks_per_seq] int32
    slot_mapping: torch.Tensor  # [num_tokens] int64


class ForgeAttentionMetadataBuilder(AttentionMetadataBuilder[ForgeAttentionMetadata]):
    def __init__(self, kv_cache_spec, layer_names: list[str], vllm_config, device: torch.device):
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)

    def build(
        self,
        common_prefix_len: int,
        common_attn_metadata: CommonAttentionMetadata,
        fast_build: bool = False,
    ) -> ForgeAttentionMetadata:
        m = common_attn_metadata
        if m.causal is not True:
            raise NotImplementedError(
                f"FORGE_ATTN runs causal attention only; got causal={m.causal!r}"
            )
        return ForgeAttentionMetadata(
            num_actual_tokens=m.num_actual_tokens,
            max_query_len=m.max_query_len,
            max_seq_len=m.max_seq_len,
            query_start_loc=m.query_start_loc,
            seq_lens=m.seq_lens,
            block_table=m.block_table_tensor,
            slot_mapping=m.slot_mapping,
        )


class ForgeAttentionImpl(AttentionImpl[ForgeAttentionMetadata]):
    def __init__(
        self,
        num_heads: int,
        head_size: int,
        scale: float,
        num_kv_heads: int | None = None,
        alibi_slopes: list[float] | None = None,
        sliding_window: int | None = None,
        kv_cache_dtype: str = "auto",
        logits_soft_cap: float | None = None,
        attn_type: str = AttentionType.DECODER,
        kv_sharing_target_layer_name: str | None = None,
        sinks=None,
    ) -> None:
        # The selector cannot see ALiBi or sinks, so they are refused here, loudly,
        # rather than silently computing attention without them.
        if alibi_slopes is not None:
            raise NotImplementedError(
                "FORGE_ATTN does not support ALiBi; select vLLM's backend with "
                "attention_config={'backend': 'CPU_ATTN'} or set FORGE_DISABLE=1"
            )
        if sinks is not None:
            raise NotImplementedError("FORGE_ATTN does not support attention sinks")
        if attn_type != AttentionType.DECODER:
            raise NotImplementedError(f"FORGE_ATTN does not support {attn_type} attention")
        if kv_cache_dtype != "auto":
            raise NotImplementedError(
                f"FORGE_ATTN does not support kv_cache_dtype={kv_cache_dtype}"
            )
        self.num_heads = num_heads
        self.head_size = head_size
        self.scale = float(scale)
        self.num_kv_heads = num_kv_heads or num_heads
        self.sliding_window = -1 if sliding_window is None else int(sliding_window)
        self.logits_soft_cap = float(logits_soft_cap or 0.0)
        self.kv_cache_dtype = kv_cache_dtype
        self.attn_type = attn_type
        self.kv_sharing_target_layer_name = kv_sharing_target_layer_name

    def do_kv_cache_update(
        self,
        layer: torch.nn.Module,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None:
        key_cache, value_cache = split_kv_cache(kv_cache)
        n = slot_mapping.shape[0]  # key/value may carry padding rows beyond the batch
        ops.reshape_and_cache(key_cache, value_cache, key[:n], value[:n], slot_mapping)

    def forward(
        self,
        layer,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        attn_metadata: ForgeAttentionMetadata | None,
        output: torch.Tensor,
        output_scale: torch.Tensor | None = None,
        output_block_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if output_scale is not None or output_block_scale is not None:
            raise NotImplementedError("FORGE_ATTN does not fuse output quantization")
        if attn_metadata is None:  # memory profiling run: no cache yet
            return output
        n = attn_metadata.num_actual_tokens
        key_cache, value_cache = split_kv_cache(kv_cache)
        ops.paged_attention(
            output[:n],
            query[:n],
            key_cache,
            value_cache,
            attn_metadata.query_start_loc,
            attn_metadata.seq_lens,
            attn_metadata.block_table,
            self.scale,
            self.sliding_window,
            self.logits_soft_cap,
        )
        return output
