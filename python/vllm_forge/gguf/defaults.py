"""Defaults for a GGUF model, applied from our platform's `check_and_update_config`.

vLLM has no extension point that maps a model path to a load format or a tokenizer
mode, so with only `config_format="forge_gguf"` it would still try its default loader
(safetensors) and the Hugging Face tokenizer on the folder. Once our config parser has
marked the config as `forge_gguf`-quantised, the platform hook (which runs in the front
end and the engine core, before the tokenizer is made and the config reaches workers)
fills in our loader and tokenizer where the user left vLLM's "auto"."""

from vllm_forge.gguf import NAME
from vllm_forge.gguf.file import is_gguf_model


def apply_defaults(vllm_config) -> None:
    model_config = getattr(vllm_config, "model_config", None)
    if model_config is None or getattr(model_config, "quantization", None) != NAME:
        return
    if vllm_config.load_config.load_format == "auto":
        vllm_config.load_config.load_format = NAME
    if model_config.tokenizer_mode == "auto" and is_gguf_model(model_config.tokenizer):
        model_config.tokenizer_mode = NAME
