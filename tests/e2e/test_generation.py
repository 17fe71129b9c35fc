"""vLLM's LLM(...) through the plugin, token for token against vLLM's builtin CPU
platform on the same tiny random models (made here; no hub). Slow: each case starts
two engines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.engine import process_env
from vllm_forge import report
from vllm_forge.tiny_model import CORPUS, make_tiny_model

pytestmark = pytest.mark.e2e

GENERATE = Path(__file__).with_name("generate.py")
BF16_TIE = 0.02  # top-2 logprob gap under which bf16 runs may pick differently
# Long enough (over 600 tokens) that max_num_batched_tokens=128 splits its prefill
# into several chunks, each attending to the cache written by the ones before.
LONG_PROMPT = (CORPUS * 8)[:2100]  # about 700 tokens
PROMPTS = [
    "The quick brown fox",
    "A paged attention kernel reads",
    "Numbers: 0 1 2",
    "Rotary",
    LONG_PROMPT,
]

WIRED_OPS = (
    "paged_attention",
    "reshape_and_cache",
    "rms_norm",
    "fused_add_rms_norm",
    "silu_and_mul",
    "rotary_embedding",
)
INDUCTOR_FUSED_OPS = ("rms_norm", "fused_add_rms_norm")  # compiled: vLLM's native norms

# (architecture, dtype, enforce_eager): the GQA Llama in three modes, Qwen2 in two. (Llama
# fp32 compiled: the real model in test_gguf_generation.py.)
CASES = [
    ("llama", "float32", True),
    ("llama", "bfloat16", True),
    ("llama", "bfloat16", False),
    ("qwen2", "float32", True),
    ("qwen2", "bfloat16", False),
]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {arch: make_tiny_model(root / arch, arch) for arch in ("llama", "qwen2")}


MAX_TOKENS = 24


@pytest.fixture(scope="session")
def builtin_runs(tmp_path_factory):
    """vLLM's builtin platform results, one engine per (model, dtype, mode) on every
    prompt; a run on the first few prompts or fewer tokens is compared with the front
    of these (greedy: the same tokens), which saves an engine start per variant."""
    cache = {}

    def get(model: Path, dtype: str, eager: bool, prompts=PROMPTS, max_tokens=MAX_TOKENS) -> dict:
        assert list(prompts) == PROMPTS[: len(prompts)] and max_tokens <= MAX_TOKENS
        key = (str(model), dtype, eager)
        if key not in cache:
            cache[key] = generate(
                tmp_path_factory.mktemp("builtin"), model, dtype, eager, plugin=False
            )
        full = cache[key]
        results = [
            dict(r, token_ids=r["token_ids"][:max_tokens], top2=r["top2"][:max_tokens])
            for r in full["results"][: len(prompts)]
        ]
        return dict(full, results=results)

    return get


def generate(
    tmp: Path,
    model: Path,
    dtype: str,
    eager: bool,
    plugin: bool,
    extra: dict | None = None,
    prompts=PROMPTS,
    max_tokens=24,
    env: dict | None = None,
    multiprocess: bool = False,
) -> dict:
    tag = f"{'forge' if plugin else 'builtin'}-{dtype}-{'eager' if eager else 'compiled'}"
    config = tmp / f"{tag}.json"
    out = tmp / f"{tag}.out.json"
    counts_dir = tmp / f"{tag}.counts"
    counts_dir.mkdir()
    config.write_text(
        json.dumps(
            dict(
                model=str(model),
                dtype=dtype,
                enforce_eager=eager,
                max_model_len=1024,
                max_num_batched_tokens=128,
                max_tokens=max_tokens,
                prompts=list(prompts),
                extra=extra or {},
            )
        )
    )
    env = dict(
        os.environ,
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_PLUGINS="forge" if plugin else "none",
        FORGE_KERNEL_REPORT_DIR=str(counts_dir),
        **process_env(multiprocess),
        **(env or {}),
    )
    proc = subprocess.run(
        [sys.executable, str(GENERATE), str(config), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{tag} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(out.read_text())
    result["counts"] = report.collect(counts_dir)
    return result


def compare(ours: dict, builtin: dict, dtype: str) -> list[str]:
    """Differences that the rules do not allow; empty when the runs agree."""
    problems = []
    for i, (a, b) in enumerate(zip(ours["results"], builtin["results"])):
        for step, (x, y) in enumerate(zip(a["token_ids"], b["token_ids"])):
            if x == y:
                continue
            gap = b["top2"][step][0] - b["top2"][step][1]
            if dtype == "float32" or gap >= BF16_TIE:
                problems.append(
                    f"prompt {i} step {step}: token {x} vs builtin {y} "
                    f"(builtin top-2 gap {gap:.4f})"
                )
            break  # after a (permitted) divergence the two continuations differ
    return problems


@pytest.mark.parametrize(
    "arch,dtype,eager", CASES, ids=[f"{a}-{d}-{'eager' if e else 'compiled'}" for a, d, e in CASES]
)
def test_matches_builtin_platform(models, builtin_runs, tmp_path, arch, dtype, eager):
    ours = generate(tmp_path, models[arch], dtype, eager, plugin=True)
    builtin = builtin_runs(models[arch], dtype, eager)

    assert ours["platform"] == "ForgeCpuPlatform"
    assert builtin["platform"] == "CpuPlatform"
    # Our kernels served attention, norms, activation and rotary embedding, in the
    # engine's own processes; none ran without us. Compiled, the norms are vLLM's native
    # ones, fused by Inductor (more accurate in bf16: platform/hooks.py).
    native = ours["counts"].get("native", {})
    for op in WIRED_OPS:
        if not eager and op in INDUCTOR_FUSED_OPS:
            assert native.get(op, 0) == 0, f"{op} ran compiled: {dict(native)}"
        else:
            assert native.get(op, 0) > 0, f"{op} did not run: {dict(native)}"
    assert not builtin["counts"]
    assert ours["results"][-1]["prompt_tokens"] > 600  # the chunked-prefill prompt

    problems = compare(ours, builtin, dtype)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("backend,ours_serves", [("FORGE_ATTN", True), ("CPU_ATTN", False)])
def test_attention_backend_is_selectable(models, builtin_runs, tmp_path, backend, ours_serves):
    run = generate(
        tmp_path,
        models["llama"],
        "float32",
        True,
        plugin=True,
        extra={"attention_config": {"backend": backend}},
    )
    assert run["platform"] == "ForgeCpuPlatform"
    served = run["counts"].get("native", {}).get("paged_attention", 0)
    assert (served > 0) == ours_serves, run["counts"]
    assert not compare(run, builtin_runs(models["llama"], "float32", True), "float32")


# The Python providers through the whole engine: the torch references on the usual
# prompts; the Triton kernels under Triton's interpreter (slow), on short prompts.
PYTHON_PROVIDER_CASES = {
    "torch": dict(prompts=PROMPTS, max_tokens=24),
    "triton": dict(prompts=PROMPTS[:3], max_tokens=6),
}


@pytest.mark.parametrize("provider", list(PYTHON_PROVIDER_CASES))
def test_python_providers_match_builtin_platform(models, builtin_runs, tmp_path, provider):
    case = PYTHON_PROVIDER_CASES[provider]
    run = generate(
        tmp_path,
        models["llama"],
        "float32",
        True,
        plugin=True,
        env={"FORGE_KERNELS": provider, "TRITON_INTERPRET": "1"},
        **case,
    )
    assert run["platform"] == "ForgeCpuPlatform"
    served = run["counts"].get(provider, {})
    for op in WIRED_OPS:
        assert served.get(op, 0) > 0, f"{op} did not run on {provider}: {run['counts']}"
    assert not run["counts"].get("native"), run["counts"]
    builtin = builtin_runs(models["llama"], "float32", True, **case)
    problems = compare(run, builtin, "float32")
    assert not problems, "\n".join(problems)


def test_tensor_parallel_2_uses_our_all_reduce(models, builtin_runs, tmp_path):
    """Two CPU workers: the same greedy tokens as one (fp32), with our shared-memory
    all-reduce between them."""
    # vLLM's automatic thread binding wants a NUMA node per rank; bind one core each.
    run = generate(
        tmp_path,
        models["llama"],
        "float32",
        True,
        plugin=True,
        extra={"tensor_parallel_size": 2},
        prompts=PROMPTS[:4],
        max_tokens=12,
        env={"VLLM_CPU_OMP_THREADS_BIND": "0|1"},
        multiprocess=True,
    )
    assert run["platform"] == "ForgeCpuPlatform"
    native = run["counts"].get("native", {})
    assert native.get("shm_all_reduce", 0) > 0, run["counts"]
    assert native.get("paged_attention", 0) > 0, run["counts"]
    builtin = builtin_runs(models["llama"], "float32", True, prompts=PROMPTS[:4], max_tokens=12)
    problems = compare(run, builtin, "float32")
    assert not problems, "\n".join(problems)
