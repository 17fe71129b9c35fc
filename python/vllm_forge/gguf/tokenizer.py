"""The `forge_gguf` tokenizer mode: the tokenizer stored in a GGUF file's metadata
(vocabulary, merges, special tokens, chat template), rebuilt by transformers' GGUF
support and wrapped like vLLM's own Hugging Face tokenizers (`CachedHfTokenizer`), so
vLLM's Hugging Face renderer (chat templates, detokenisation) serves it unchanged."""

from pathlib import Path

from vllm.tokenizers.hf import get_cached_tokenizer
from vllm.tokenizers.protocol import TokenizerLike

from vllm_forge.gguf.config import install_config_readers
from vllm_forge.gguf.file import gguf_path

MODE = "forge_gguf"


class GGUFTokenizer(TokenizerLike):
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *args,
        trust_remote_code: bool = False,
        revision: str | None = None,
        download_dir: str | None = None,
        **kwargs,
    ):
        from transformers import AutoTokenizer

        path = gguf_path(path_or_repo_id)
        install_config_readers()  # transformers picks the tokenizer class from the config
        tokenizer = AutoTokenizer.from_pretrained(path.parent, *args, gguf_file=path.name, **kwargs)
        # vLLM looks for a processor chat template under name_or_path first; the file
        # (not its folder, which may hold another model's files) makes that miss, so the
        # chat template from the GGUF metadata is the one used.
        tokenizer.name_or_path = str(path)
        return get_cached_tokenizer(tokenizer)
