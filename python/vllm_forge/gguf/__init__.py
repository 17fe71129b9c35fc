"""Serving `.gguf` files: vLLM's extension points, filled in for GGUF.

- config format `forge_gguf` (config.py): the model config from the GGUF metadata,
- tokenizer mode `forge_gguf` (tokenizer.py): the tokenizer from the GGUF metadata,
  rendered by vLLM's Hugging Face renderer,
- load format `forge_gguf` (loader.py): the tensors, by their Hugging Face names,
- quantization `forge_gguf` (quant_config.py): linear and embedding weights kept packed.

`register()` installs all of them; it runs as our `vllm.general_plugins` entry point in
every vLLM process, and may be called again (it is idempotent).

Usage: `model` is a folder holding one `.gguf` file (vLLM 0.32 reads a file path given
as `model` as a JSON config before any extension point runs), and the config format is
named:

    LLM(model="/models/smollm2", config_format="forge_gguf")
    vllm serve /models/smollm2 --config-format forge_gguf

The parsed config selects quantization `forge_gguf`; our platform's
`check_and_update_config` then picks the `forge_gguf` loader and tokenizer where they
were left "auto" (defaults.py). Without our platform (FORGE_DISABLE=1) name them too:
`tokenizer_mode="forge_gguf", load_format="forge_gguf"`. Architectures: arch.py.
"""

NAME = "forge_gguf"

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    from vllm.model_executor.layers.quantization import register_quantization_config
    from vllm.model_executor.model_loader import register_model_loader
    from vllm.renderers.registry import RENDERER_REGISTRY
    from vllm.tokenizers.registry import TokenizerRegistry
    from vllm.transformers_utils.config import register_config_parser

    from vllm_forge.gguf.config import GGUFConfigParser
    from vllm_forge.gguf.loader import GGUFModelLoader
    from vllm_forge.gguf.quant_config import GGUFConfig

    register_config_parser(NAME)(GGUFConfigParser)
    TokenizerRegistry.register(NAME, "vllm_forge.gguf.tokenizer", "GGUFTokenizer")
    RENDERER_REGISTRY.register(NAME, "vllm.renderers.hf", "HfRenderer")
    register_model_loader(NAME)(GGUFModelLoader)
    register_quantization_config(NAME)(GGUFConfig)
    _registered = True
