"""The `forge_gguf` config format: the Hugging Face config rebuilt from a GGUF file's
metadata (by transformers' GGUF support), marked as `forge_gguf`-quantised so that vLLM
picks our quantization config without a `quantization=` flag."""

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
        return {key: f.contents() for key, f in reader.fields.items()
                if not key.startswith("tokenizer.ggml.")}
    return read_gguf_metadata(str(path))[0]


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
    try:
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    except ValueError as e:
        raise ValueError(f"forge_gguf: transformers cannot read the config of {str(path)!r}: "
                         f"{e}") from e
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
    def parse(self, model: str | Path, trust_remote_code: bool, revision: str | None = None,
              code_revision: str | None = None, **kwargs):
        return load_hf_config(model)
