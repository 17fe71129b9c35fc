"""The `forge_gguf` quantization config: linear layers and embeddings whose weights stay
in the packed layout (`vllm_forge.quant.format.PackedWeight`) they were repacked into
from GGUF blocks.

- Linear layers (q/k/v, o, gate/up, down): one part per shard, or one part for the whole
  layer when its shards share a format (see weights.py); `apply` runs one GEMM per part.
- The token embedding (VocabParallelEmbedding) stays packed too: a lookup dequantises
  only the rows it gathers. The LM head (ParallelLMHead) is a packed GEMM; when it is tied
  to the embedding (no `output.weight` in the file) it shares the embedding's packed
  parameters, so the matrix is held once. (vLLM's Gemma models build their embedding
  without a quant config: it is dequantised to the model dtype, and is the head.)
- Everything else (norms) is not quantised: vLLM's own layers, in the model dtype.
"""

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from vllm.model_executor.layers.quantization.base_config import (
    QuantizationConfig,
    QuantizeMethodBase,
)

from vllm_forge.gguf import weights
from vllm_forge.ops import quant_gemm
from vllm_forge.quant import activations
from vllm_forge.quant.format import TiledWeight, gather_rows

if TYPE_CHECKING:
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

NAME = "forge_gguf"


def _apply_parts(
    layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x [..., K] @ W^T + bias for the layer's parts, in x's dtype: one GEMM per part,
    each writing its columns of the output."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    parts: tuple[weights.PartLayout, ...] = getattr(layer, "gguf_parts")
    # Fixed at load (_choose_activations): a constant to Dynamo.
    quantize_x: bool = getattr(layer, "gguf_quantize_x")
    rows = sum(part.rows for part in parts)
    out = torch.empty(x2.shape[0], rows, dtype=x.dtype, device=x.device)
    for part in parts:
        cols = out[:, part.start : part.start + part.rows]
        b = None if bias is None else bias[part.start : part.start + part.rows]
        if part.weight is not None:
            cols.copy_(F.linear(x2, getattr(layer, part.weight), b))
            continue
        assert part.qweight is not None and part.scales is not None  # a packed part
        mins = None if part.mins is None else getattr(layer, part.mins)
        quant_gemm(
            cols,
            x2,
            getattr(layer, part.qweight),
            getattr(layer, part.scales),
            mins,
            b,
            part.bits,
            part.group_size,
            quantize_x,
        )
    return out.reshape(*lead, rows)


def _choose_activations(layer: torch.nn.Module) -> None:
    """Whether the layer's GEMMs round x to int8 (quant/activations.py), once, at load."""
    setattr(layer, "gguf_quantize_x", activations.quantize_x())


def _placeholder(layer: torch.nn.Module, loader) -> None:
    """The `weight` parameter vLLM's name routing loads GGUF tensors into. It holds no
    data: its loader repacks each tensor into a part (weights.py); it is removed after
    loading."""
    weight = torch.nn.Parameter(torch.empty(0, dtype=torch.uint8), requires_grad=False)
    weight.weight_loader = loader  # type: ignore[attr-defined]  # vLLM's loader attribute
    layer.register_parameter("weight", weight)
    # Plain data on a module: see weights.store_shard.
    setattr(layer, "gguf_pending", {})
    setattr(layer, "gguf_parts", None)


def _drop_placeholder(layer: torch.nn.Module) -> None:
    if "weight" in layer._parameters:
        del layer.weight


class GGUFLinearMethod(QuantizeMethodBase):
    """Packed weights for vLLM's LinearBase layers, sharded for tensor parallelism on the
    raw GGUF rows (column-parallel) or block-aligned columns (row-parallel)."""

    def create_weights(
        self,
        layer: torch.nn.Module,
        input_size_per_partition: int,
        output_partition_sizes: list[int],
        input_size: int,
        output_size: int,
        params_dtype: torch.dtype,
        **extra_weight_attrs,
    ):
        setattr(layer, "gguf_float_dtype", params_dtype)
        setattr(layer, "gguf_shard_sizes", list(output_partition_sizes))
        _placeholder(
            layer, lambda param, loaded, shard_id=None: self._load(layer, loaded, shard_id)
        )

    def _load(self, layer, loaded: torch.Tensor, shard_id) -> None:
        from vllm.model_executor.layers.linear import (
            ColumnParallelLinear,
            QKVParallelLinear,
            RowParallelLinear,
        )

        if not weights.is_tagged(loaded):
            raise ValueError(
                f"forge_gguf: {layer.prefix}: expected a GGUF tensor, got a "
                f"plain {loaded.dtype} tensor {list(loaded.shape)}"
            )
        if shard_id is None:
            shard_id = getattr(loaded, "shard_id", None)
        sizes = layer.gguf_shard_sizes
        if isinstance(shard_id, str):
            index = "qkv".index(shard_id)
        elif isinstance(shard_id, int):
            index = shard_id
        elif shard_id is None:
            index = None  # the whole (possibly fused) weight
        else:
            raise ValueError(f"forge_gguf: {layer.prefix}: shard {shard_id!r} is not supported")
        start = 0 if index is None else sum(sizes[:index])
        local_rows = sum(sizes) if index is None else sizes[index]
        rows = cols = None
        tp_rank, tp_size = getattr(layer, "tp_rank", 0), getattr(layer, "tp_size", 1)
        if tp_size > 1 and isinstance(layer, ColumnParallelLinear):
            if index is None and len(sizes) > 1:
                raise ValueError(
                    f"forge_gguf: {layer.prefix}: a fused GGUF tensor "
                    f"({loaded.gguf_name}) cannot be split across ranks"
                )
            rank = tp_rank
            if isinstance(layer, QKVParallelLinear) and index in (1, 2):
                rank = tp_rank // layer.num_kv_head_replicas
            rows = (rank * local_rows, (rank + 1) * local_rows)
        elif tp_size > 1 and isinstance(layer, RowParallelLinear):
            k = layer.input_size_per_partition
            cols = (tp_rank * k, (tp_rank + 1) * k)
        part = weights.Part(start, weights.read(loaded, rows, cols, layer.gguf_float_dtype))
        if part.rows != local_rows:
            raise ValueError(
                f"forge_gguf: {layer.prefix}: GGUF tensor {loaded.gguf_name!r} "
                f"gives {part.rows} rows, the layer expects {local_rows}"
            )
        weights.store_shard(layer, part)

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        sizes: list[int] = getattr(layer, "gguf_shard_sizes")
        prefix: str = getattr(layer, "prefix")  # a LinearBase's
        weights.finalize(layer, sum(sizes), prefix)
        _drop_placeholder(layer)
        _choose_activations(layer)

    def apply(
        self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        return _apply_parts(layer, x, bias)


class GGUFEmbeddingMethod(QuantizeMethodBase):
    """Packed weights for VocabParallelEmbedding (lookup) and ParallelLMHead (GEMM)."""

    def create_weights(
        self,
        layer: torch.nn.Module,
        input_size_per_partition: int,
        output_partition_sizes: list[int],
        input_size: int,
        output_size: int,
        params_dtype: torch.dtype,
        **extra_weight_attrs,
    ):
        setattr(layer, "gguf_float_dtype", params_dtype)
        setattr(layer, "gguf_tied_to", ())
        _placeholder(layer, lambda param, loaded, shard_id=None: self._load(layer, loaded))

    def _load(self, layer, loaded: torch.Tensor) -> None:
        if not weights.is_tagged(loaded):
            raise ValueError(
                f"forge_gguf: {layer.prefix or 'embedding'}: expected a GGUF "
                f"tensor, got a plain {loaded.dtype} tensor {list(loaded.shape)}"
            )
        shard = layer.shard_indices
        if loaded.gguf_shape[0] != layer.org_vocab_size:
            raise ValueError(
                f"forge_gguf: GGUF tensor {loaded.gguf_name!r} has "
                f"{loaded.gguf_shape[0]} rows, the vocabulary has "
                f"{layer.org_vocab_size}"
            )
        w = weights.read(
            loaded,
            (shard.org_vocab_start_index, shard.org_vocab_end_index),
            None,
            layer.gguf_float_dtype,
        )
        weights.store_shard(
            layer, weights.Part(0, weights.pad_rows(w, layer.num_embeddings_per_partition))
        )

    def tie_weights(self, layer: torch.nn.Module, embed_tokens: torch.nn.Module):
        if not isinstance(embed_tokens.quant_method, GGUFEmbeddingMethod):
            # An embedding built without our config (vLLM's Gemma) holds floats, dequantised
            # on load (loader.py): the head is that embedding, as in vLLM's Gemma 2.
            return embed_tokens
        layer.weight = embed_tokens.weight
        # A tuple: not registered as a submodule.
        setattr(layer, "gguf_tied_to", (embed_tokens,))
        return layer

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        tied_to: tuple[VocabParallelEmbedding, ...] = getattr(layer, "gguf_tied_to")
        if tied_to:
            (embed,) = tied_to
            embed.quant_method.process_weights_after_loading(embed)
            weights.share(layer, embed)
        else:
            # A VocabParallelEmbedding's attributes.
            rows: int = getattr(layer, "num_embeddings_per_partition")
            prefix: str = getattr(layer, "prefix")
            weights.finalize(layer, rows, prefix or "embedding")
        _drop_placeholder(layer)
        _choose_activations(layer)

    def embedding(self, layer: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
        parts: tuple[weights.PartLayout, ...] = getattr(layer, "gguf_parts")
        (part,) = parts
        if part.weight is not None:
            return F.embedding(ids, getattr(layer, part.weight))
        assert part.qweight is not None and part.scales is not None  # a packed part
        dim: int = getattr(layer, "embedding_dim")  # a VocabParallelEmbedding's
        dtype: torch.dtype = getattr(layer, "gguf_float_dtype")
        flat = ids.reshape(-1)
        mins = None if part.mins is None else getattr(layer, part.mins)
        tiled = TiledWeight(
            getattr(layer, part.qweight),
            getattr(layer, part.scales),
            mins,
            part.bits,
            part.group_size,
            dim,
            part.rows,
        )
        rows = gather_rows(tiled, flat)
        return rows.to(dtype).reshape(*ids.shape, dim)

    def apply(
        self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        return _apply_parts(layer, x, bias)


class GGUFConfig(QuantizationConfig):
    """Weights repacked from a GGUF file. Set by our config parser (the config's
    `quantization_config` is `{"quant_method": "forge_gguf"}`); load with the
    `forge_gguf` model loader."""

    # vLLM types the name as its Literal of built-in methods; an out-of-tree config (added
    # by register_quantization_config) necessarily has another.
    def get_name(self) -> str:  # type: ignore[override]
        return NAME

    def get_supported_act_dtypes(self) -> list[torch.dtype]:
        return [torch.float32, torch.bfloat16, torch.float16]

    @classmethod
    def get_min_capability(cls) -> int:
        return 0

    @staticmethod
    def get_config_filenames() -> list[str]:
        return []

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "GGUFConfig":
        return cls()

    def get_quant_method(self, layer: torch.nn.Module, prefix: str) -> QuantizeMethodBase | None:
        from vllm.model_executor.layers.fused_moe import RoutedExperts
        from vllm.model_executor.layers.linear import LinearBase
        from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

        if isinstance(layer, LinearBase):
            return GGUFLinearMethod()
        if isinstance(layer, VocabParallelEmbedding):
            return GGUFEmbeddingMethod()
        if isinstance(layer, RoutedExperts):
            raise NotImplementedError(
                f"forge_gguf: {prefix}: mixture-of-experts layers are not supported"
            )
        return None
