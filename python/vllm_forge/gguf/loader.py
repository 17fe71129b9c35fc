"""The `forge_gguf` model loader: streams a GGUF file's tensors into vLLM's model by
their Hugging Face names, through the model's own `load_weights` (so vLLM's name
routing and shard merging apply), with the raw quantised rows left for our layers to
repack (weights.py)."""

import logging
from collections.abc import Iterator

import numpy as np
import torch
from gguf import GGMLQuantizationType
from vllm.model_executor.model_loader.base_loader import BaseModelLoader

from vllm_forge.gguf import arch, weights
from vllm_forge.gguf.file import architecture, gguf_path, open_reader
from vllm_forge.quant.format import PackedWeight
from vllm_forge.quant.gguf import SUPPORTED_TYPES

logger = logging.getLogger("vllm.forge.gguf")


def check_types(reader) -> None:
    """Refuse a file with any tensor type we cannot repack, before loading anything."""
    bad = [
        (t.name, t.tensor_type.name) for t in reader.tensors if t.tensor_type not in SUPPORTED_TYPES
    ]
    if bad:
        listed = ", ".join(f"{name} ({qtype})" for name, qtype in bad[:6])
        raise ValueError(
            f"forge_gguf: unsupported GGUF tensor types: {listed}"
            f"{' ...' if len(bad) > 6 else ''}; supported: "
            f"{', '.join(t.name for t in SUPPORTED_TYPES)}"
        )


def _small_float(t) -> torch.Tensor:
    """A 1-D (norm, bias) tensor as float32, copied out of the memory map."""
    if t.tensor_type == GGMLQuantizationType.BF16:
        return torch.from_numpy(np.array(t.data).view(np.int16)).view(torch.bfloat16).float()
    if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return torch.from_numpy(np.array(t.data, dtype=np.float32))
    from gguf.quants import dequantize

    return torch.from_numpy(dequantize(t.data, t.tensor_type).astype(np.float32))


def gguf_tensors(
    reader,
    spec: arch.ArchSpec,
    hf_config,
    names: dict[str, str],
    current: list,
    dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[str, torch.Tensor]]:
    """(Hugging Face name, tensor) for every tensor of the file, in file order: matrices
    as tagged raw data (weights.tag), 1-D tensors (norms, biases) in `dtype`, the model's
    (their parameters' dtype: vLLM would cast them on copy, with a warning each); Gemma's
    norms less the 1 llama.cpp added.
    `current[0]` is set to the tensor being handed over (for error messages)."""
    for t in reader.tensors:
        hf_name = names.get(t.name)
        if hf_name is None:  # arch.DERIVED_TENSORS
            continue
        current[0] = f"{t.name} ({t.tensor_type.name}) -> {hf_name}"
        data = t.data
        if spec.permute_qk and (".attn_q." in t.name or ".attn_k." in t.name):
            heads = (
                hf_config.num_attention_heads
                if ".attn_q." in t.name
                else hf_config.num_key_value_heads
            )
            data = arch.unpermute_qk_rows(data, heads)
        shape = tuple(reversed([int(d) for d in t.shape]))
        if len(shape) == 2:
            yield hf_name, weights.tag(data, t.name, t.tensor_type, shape)
        else:
            if data is not t.data:
                t = t._replace(data=data)
            value = _small_float(t)
            if spec.norm_plus_one and hf_name.endswith("norm.weight"):
                value = value - 1.0  # in fp32, before the cast: see arch.py
            yield hf_name, value.to(dtype)


def dequantise_into_float_layers(model: torch.nn.Module) -> None:
    """Let the matrices of layers vLLM built without our quant config take GGUF tensors,
    dequantised to their dtype (vLLM's Gemma and Gemma 2 build their embedding so; it is
    also their LM head). Our layers are left alone: they hold `gguf_pending`."""
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader

    def dequantising(load):
        def loader(param: torch.nn.Parameter, loaded: torch.Tensor, *args, **kwargs):
            if weights.is_tagged(loaded):
                w = weights.read(loaded, float_dtype=param.dtype)
                loaded = w if isinstance(w, torch.Tensor) else w.dequantize().to(param.dtype)
            return load(param, loaded, *args, **kwargs)

        return loader

    for module in model.modules():
        if hasattr(module, "gguf_pending"):
            continue
        for param in module.parameters(recurse=False):
            if param.dim() == 2:
                load = getattr(param, "weight_loader", default_weight_loader)
                param.weight_loader = dequantising(load)  # type: ignore[attr-defined]


class GGUFModelLoader(BaseModelLoader):
    def download_model(self, model_config) -> None:
        gguf_path(model_config.model)  # local files only: check that it is there

    def load_weights(self, model: torch.nn.Module, model_config) -> None:
        path = gguf_path(model_config.model)
        reader = open_reader(path)
        spec = arch.arch_spec(architecture(reader))
        check_types(reader)
        hf_config = model_config.hf_text_config
        names = arch.hf_names(spec.gguf_arch, hf_config, [t.name for t in reader.tensors])
        dequantise_into_float_layers(model)
        current = [None]
        try:
            # Every vLLM model class defines load_weights; nn.Module does not declare it.
            model.load_weights(
                gguf_tensors(  # type: ignore[operator]
                    reader, spec, hf_config, names, current, model_config.dtype
                )
            )
        except Exception as e:
            if current[0] is not None:
                e.add_note(f"forge_gguf: while loading GGUF tensor {current[0]} from {path}")
            raise
        packed, other = weight_bytes(model)
        logger.info(
            "Loaded %d GGUF tensors from %s (%s): %.1f MiB of quantised weights, "
            "%.1f MiB of other parameters",
            len(names),
            path.name,
            spec.gguf_arch,
            packed / 2**20,
            other / 2**20,
        )


def weight_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes in the parts our layers hold, bytes of every other parameter)."""
    packed = 0
    for module in model.modules():
        for part in getattr(module, "gguf_pending", {}).values():
            w = part.weight
            packed += w.nbytes() if isinstance(w, PackedWeight) else w.numel() * w.element_size()
    other = sum(p.numel() * p.element_size() for p in model.parameters())
    return packed, other
