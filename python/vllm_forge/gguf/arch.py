"""The architectures we load from GGUF, and how llama.cpp's names and layouts map back
to the Hugging Face checkpoint that vLLM's model classes load.

llama.cpp's converter (convert_hf_to_gguf.py) renames every tensor (`blk.0.attn_q.weight`
for `model.layers.0.self_attn.q_proj.weight`) and, per architecture, changes some
layouts. The changes undone here:

- Llama (and Mistral, which llama.cpp files as `llama`): the rows of Q and K are permuted
  per head, from Hugging Face's rotate-half rope layout to GPT-J's interleaved pairs. It
  is a permutation of output rows, so it is undone on the raw (still quantised) rows.
- Qwen2 and Qwen3: no layout change (their llama.cpp rope is the NeoX kind).
- Gemma and Gemma 2: no Q/K permutation either (NeoX rope), but every RMSNorm weight
  is stored plus one: Hugging Face's Gemma norm computes x * (1 + w), llama.cpp's plain
  x * w, so its converter (GemmaModel, Gemma2Model) writes 1 + w, as F32. The loader
  subtracts the 1 in fp32, which is exact for stored values in [0.5, 2] (Sterbenz), so
  vLLM's 1 + w is then the stored value itself. No `output.weight`: the head is the
  embedding.

Everything else an architecture needs (the config keys) comes from transformers' GGUF
support (Gemma's from our metadata reader in config.py); the tensor names come from
gguf-py's `TensorNameMap`, matched against the state-dict names of the transformers model
class the config names.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str
    model_types: tuple[str, ...]  # the transformers model types its configs come out as
    permute_qk: bool = False  # Q/K rows permuted per head by llama.cpp (Llama family)
    norm_plus_one: bool = False  # RMSNorm weights stored as 1 + w (Gemma family)


ARCHS = {
    spec.gguf_arch: spec
    for spec in (
        ArchSpec("llama", ("llama", "mistral"), permute_qk=True),
        ArchSpec("qwen2", ("qwen2",)),
        ArchSpec("qwen3", ("qwen3",)),
        ArchSpec("gemma", ("gemma",), norm_plus_one=True),
        ArchSpec("gemma2", ("gemma2",), norm_plus_one=True),
    )
}
MODEL_TYPES = {t for spec in ARCHS.values() for t in spec.model_types}

# Tensors llama.cpp writes that have no Hugging Face counterpart: vLLM computes them.
DERIVED_TENSORS = ("rope_freqs.weight",)


def arch_spec(gguf_arch: str | None) -> ArchSpec:
    """Raises ValueError for an unsupported architecture, or None (the file names none)."""
    spec = None if gguf_arch is None else ARCHS.get(gguf_arch)
    if spec is None:
        raise ValueError(
            f"forge_gguf: GGUF architecture {gguf_arch!r} is not supported; "
            f"supported: {', '.join(sorted(ARCHS))}"
        )
    return spec


def check_model_type(model_type: str, source: str) -> None:
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"forge_gguf: {source} is a {model_type!r} model, which is not "
            f"supported; supported GGUF architectures: {', '.join(sorted(ARCHS))}"
        )


def hf_names(gguf_arch: str, hf_config, gguf_names) -> dict[str, str]:
    """GGUF tensor name -> Hugging Face state-dict name, for the tensors in the file.

    Raises ValueError naming any tensor of the file that maps to nothing."""
    import copy

    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    arch = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[gguf_arch]
    name_map = gguf.get_tensor_name_map(arch, hf_config.num_hidden_layers)
    config = copy.deepcopy(hf_config)
    # Our own quantization marker means nothing to transformers (it would look for a
    # quantizer of that name); the names come from the plain model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    to_hf: dict[str, str] = {}
    for hf_name in model.state_dict():
        base, _, suffix = hf_name.rpartition(".")
        gguf_base = name_map.get_name(base)
        if gguf_base is not None:
            to_hf.setdefault(f"{gguf_base}.{suffix}", hf_name)
    unknown = [n for n in gguf_names if n not in to_hf and n not in DERIVED_TENSORS]
    if unknown:
        raise ValueError(
            f"forge_gguf: no {type(model).__name__} parameter for the GGUF "
            f"tensors {unknown[:8]}{' ...' if len(unknown) > 8 else ''}"
        )
    return {n: to_hf[n] for n in gguf_names if n in to_hf}


def unpermute_qk_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's per-head permutation of Q or K rows (any row format: the rows
    are moved whole).

    llama.cpp writes W_gguf = W_hf.reshape(n_head, 2, d // 2, K).swapaxes(1, 2), i.e.
    within a head of d rows it interleaves the two rope halves; this reads them back."""
    n = rows.shape[0]
    if n % (2 * n_head):
        raise ValueError(f"forge_gguf: {n} rows do not split into {n_head} heads of pairs")
    order = np.arange(n).reshape(n_head, n // n_head // 2, 2).swapaxes(1, 2).reshape(-1)
    return rows[order]
