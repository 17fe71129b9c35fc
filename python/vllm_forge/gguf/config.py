"""The `forge_gguf` config format: the Hugging Face config rebuilt from a GGUF file's
metadata (by transformers' GGUF support), marked as `forge_gguf`-quantised so that vLLM
picks our quantization config without a `quantization=` flag.

transformers reads most architectures' metadata itself. For Gemma it cannot (it knows no
`gemma`, and its `gemma2` mapping drops the soft-caps and the query scale), so we add our
reader, `gemma_config`, to its table of per-architecture readers (`GGUF_CONFIG_ARCHS`),
which its config and tokenizer loading both consult."""

import copy
import functools
from pathlib import Path

from vllm.transformers_utils.config_parser_base import ConfigParserBase

from vllm_forge.gguf import NAME, arch
from vllm_forge.gguf.file import gguf_path, open_reader


def read_metadata(path: Path) -> dict:
    """The file's metadata keys (arrays may come back as their lengths). transformers'
    own reader skips the vocabulary and takes milliseconds; gguf-py's GGUFReader, the
    fallback, seconds."""
    try:
        from transformers.integrations.gguf.reader import read_gguf_metadata
    except ImportError:
        reader = open_reader(path)
        return {
            key: f.contents()
            for key, f in reader.fields.items()
            if not key.startswith("tokenizer.ggml.")
        }
    return read_gguf_metadata(str(path))[0]


def gemma_config(metadata: dict, tensor_names) -> dict:
    """The transformers config dict of a Gemma or Gemma 2 GGUF file: the keys llama.cpp's
    converter writes (convert_hf_to_gguf.py: GemmaModel, Gemma2Model) mapped back, and
    llama.cpp's own values (src/models/gemma*.cpp, llama-hparams.h) for what the file
    does not state, where transformers' config classes would assume one checkpoint's."""
    gguf_arch = metadata["general.architecture"]

    def key(name: str, default=None):
        return metadata.get(f"{gguf_arch}.{name}", default)

    hidden, heads, layers = (
        key("embedding_length"),
        key("attention.head_count"),
        key("block_count"),
    )
    head_dim = key("attention.key_length", hidden // heads)
    tokens = metadata["tokenizer.ggml.tokens"]  # transformers' reader: the count
    config = {
        "model_type": gguf_arch,
        "architectures": ["GemmaForCausalLM" if gguf_arch == "gemma" else "Gemma2ForCausalLM"],
        "max_position_embeddings": key("context_length"),
        "hidden_size": hidden,
        "intermediate_size": key("feed_forward_length"),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": key("attention.head_count_kv", heads),
        "head_dim": head_dim,
        "rms_norm_eps": key("attention.layer_norm_rms_epsilon"),
        # The converter writes no rope base for Gemma: llama.cpp's default.
        "rope_parameters": {"rope_type": "default", "rope_theta": key("rope.freq_base", 1e4)},
        # llama.cpp's Gemma FFN is GELU, tanh-approximated (ggml_gelu). Gemma's config
        # calls it hidden_act, Gemma 2's hidden_activation; vLLM's Gemma reads both (and
        # warns without the second).
        "hidden_activation": "gelu_pytorch_tanh",
        "vocab_size": tokens if isinstance(tokens, int) else len(tokens),
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "bos_token_id": metadata.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": metadata.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": metadata.get("tokenizer.ggml.padding_token_id"),
    }
    if gguf_arch == "gemma":
        config["hidden_act"] = "gelu_pytorch_tanh"
    if gguf_arch == "gemma2":
        if key("attention.sliding_window_pattern", 2) != 2:
            raise ValueError(
                "forge_gguf: Gemma 2 files with an attention.sliding_window_pattern other "
                "than every other layer are not supported"
            )
        config |= {
            "attn_logit_softcapping": key("attn_logit_softcapping", 50.0),
            "final_logit_softcapping": key("final_logit_softcapping", 30.0),
            # Every other layer slides, the first included: Gemma2Config's default
            # layer_types, and llama.cpp's (a period of 2, its last layer global).
            "sliding_window": key("attention.sliding_window", 4096),
            # Not in the file: llama.cpp scales queries by 1/sqrt(head size), except
            # for the 27B model (46 layers), by 1/sqrt(hidden / heads), as Google's
            # gemma_pytorch does.
            "query_pre_attn_scalar": hidden // heads if layers == 46 else head_dim,
        }
    return config


CONFIG_READERS = {"gemma": gemma_config, "gemma2": gemma_config}


def install_config_readers() -> None:
    """Put our readers into transformers' table (idempotent). Without that table (older
    transformers) Gemma files fail to load, naming transformers' error."""
    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS
    except ImportError:
        return
    GGUF_CONFIG_ARCHS.update(CONFIG_READERS)


def load_hf_config(model: str | Path):
    """(config dict, PretrainedConfig) for the GGUF file `model` names.

    Parsed once per file version: vLLM asks for the config of a model many times while
    it starts (the OpenAI server about ten, through get_diff_sampling_param and the
    generation config), and transformers reads the whole file each time (seconds).
    Callers get their own copy to change."""
    path = gguf_path(model)
    stat = path.stat()
    config = copy.deepcopy(_parse_hf_config(str(path), stat.st_size, stat.st_mtime_ns))
    return config.to_dict(), config


@functools.lru_cache(maxsize=8)
def _parse_hf_config(path_str: str, size: int, mtime_ns: int):
    """The PretrainedConfig of one version (size, mtime) of a file; errors are not
    cached."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(path_str)
    metadata = read_metadata(path)
    gguf_arch = metadata.get("general.architecture")
    arch.arch_spec(gguf_arch)
    install_config_readers()
    try:
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    except ValueError as e:
        raise ValueError(
            f"forge_gguf: transformers cannot read the config of {str(path)!r}: {e}"
        ) from e
    arch.check_model_type(config.model_type, str(path))
    # transformers maps no head size for Qwen2/Qwen3 and falls back on its config class's
    # default (128 for Qwen3); the file states it.
    if (head_dim := metadata.get(f"{gguf_arch}.attention.key_length")) is not None:
        config.head_dim = int(head_dim)
    if not getattr(config, "architectures", None):
        # GGUF metadata names no model class; vLLM would otherwise pick the base
        # model (LlamaModel), which has no LM head.
        config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
    config.quantization_config = {"quant_method": NAME}
    return config


class GGUFConfigParser(ConfigParserBase):
    def parse(
        self,
        model: str | Path,
        trust_remote_code: bool,
        revision: str | None = None,
        code_revision: str | None = None,
        **kwargs,
    ):
        return load_hf_config(model)
