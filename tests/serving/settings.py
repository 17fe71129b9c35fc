"""The one set of engine settings that the server (`vllm serve` flags) and the offline
reference (`LLM(...)` keyword arguments) both run with, so that a difference between
their greedy outputs can only come from batching, never from configuration."""

import os

# fp32: greedy tokens should not depend on how requests are batched (#13).
# A small context keeps the over-limit prompts cheap to build and to reject.
# Eager: torch.compile would add minutes of Inductor compilation to each of the two
# engines on two cores; compiled serving (vLLM's native norms) is not covered here.
# max_num_seqs / max_num_batched_tokens: the server's own CPU defaults, pinned because
# LLM(...) defaults to others (256 / 4096, vllm/engine/arg_utils.py).
# gpu_memory_utilization: on the CPU only a start-up check that this share of the NUMA
# node's memory is free (the KV cache is VLLM_CPU_KVCACHE_SPACE); the default 0.92 fails
# on a shared machine, and the server and the offline engine start side by side.
ENGINE = dict(
    config_format="forge_gguf",
    dtype="float32",
    max_model_len=512,
    enforce_eager=True,
    max_num_seqs=128,
    max_num_batched_tokens=2048,
    seed=0,
    gpu_memory_utilization=0.3,
)

SERVED_MODEL_NAME = "smollm2"


def serve_flags() -> list[str]:
    """ENGINE as `vllm serve` flags."""
    flags = []
    for key, value in ENGINE.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, str(value)]
    return flags


def engine_env() -> dict[str, str]:
    """The environment of both engines: our plugin only, and 1 GiB of KV cache (far more
    than 16 clients x 512 tokens need)."""
    return dict(os.environ, VLLM_PLUGINS="forge", VLLM_CPU_KVCACHE_SPACE="1")
