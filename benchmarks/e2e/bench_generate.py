"""End to end: vLLM offline generation through vllm-forge vs vLLM's builtin CPU platform,
same random model, same prompts, decode-heavy (long prompts, many output tokens).
Reports output tokens per second of each and the ratio, and splits off the prefill
(timed separately on other prompts of the same shape) to give the decode phase's ratio; writes
benchmarks/results/e2e_generate.csv. Start-up and compilation are excluded: the clock
runs around generate() only, after a warm-up request.

  python -m benchmarks.e2e.bench_generate [--eager] [--batch 8] [--prompt-tokens 1024]
                                          [--output-tokens 512] [--dtype bfloat16]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, machine_line, write_csv
from benchmarks.e2e import run_child

# A small but not trivial Llama: 8 layers, hidden 1024, 16 query / 4 KV heads of 64, so
# that attention over long contexts is a real share of each step.
MODEL = dict(
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=8,
    num_attention_heads=16,
    num_key_value_heads=4,
)


def child(cfg: dict) -> None:
    """Runs in a subprocess: one platform, timing generate() only."""
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    llm = LLM(
        model=cfg["model"],
        dtype=cfg["dtype"],
        enforce_eager=cfg["eager"],
        max_model_len=cfg["prompt_tokens"] + cfg["output_tokens"] + 64,
        gpu_memory_utilization=0.5,
        seed=0,
    )
    vocab = 500
    prompts = [
        {"prompt_token_ids": [(7 * i + 13 * j) % vocab + 3 for j in range(cfg["prompt_tokens"])]}
        for i in range(cfg["batch"])
    ]
    params = SamplingParams(temperature=0.0, max_tokens=cfg["output_tokens"], ignore_eos=True)
    llm.generate(prompts[:1], SamplingParams(max_tokens=4), use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    # The prefill share: the same number of prompts of the same length (other tokens, so
    # that the prefix cache cannot serve them) with one output token each.
    others = [
        {"prompt_token_ids": [(t + 1) % vocab + 3 for t in p["prompt_token_ids"]]} for p in prompts
    ]
    start = time.perf_counter()
    llm.generate(
        others, SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True), use_tqdm=False
    )
    prefill_seconds = time.perf_counter() - start
    print(
        "RESULT "
        + json.dumps(
            {
                "platform": type(current_platform).__name__,
                "seconds": seconds,
                "output_tokens": tokens,
                "prefill_seconds": prefill_seconds,
            }
        )
    )


def run_platform(cfg: dict, plugin: bool) -> dict:
    return run_child("benchmarks.e2e.bench_generate", cfg, plugin, kv_cache_gib="4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--output-tokens", type=int, default=512)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    from vllm_forge.tiny_model import make_tiny_model

    model = make_tiny_model(Path(tempfile.gettempdir()) / "forge-bench-llama", "llama", **MODEL)
    cfg = dict(
        model=str(model),
        dtype=args.dtype,
        eager=args.eager,
        batch=args.batch,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
    )
    results = {}
    for plugin in (False, True):
        r = run_platform(cfg, plugin)
        r["tokens_per_s"] = r["output_tokens"] / r["seconds"]
        # Decode phase alone: the run minus its prefill, for the tokens after the first.
        r["decode_tokens_per_s"] = (r["output_tokens"] - args.batch) / max(
            r["seconds"] - r["prefill_seconds"], 1e-9
        )
        results["forge" if plugin else "builtin"] = r
        print(r)
    ratio = results["forge"]["tokens_per_s"] / results["builtin"]["tokens_per_s"]
    row = dict(
        mode="eager" if args.eager else "compiled",
        dtype=args.dtype,
        batch=args.batch,
        prompt_tokens=args.prompt_tokens,
        output_tokens=args.output_tokens,
        builtin_tok_s=round(results["builtin"]["tokens_per_s"], 2),
        forge_tok_s=round(results["forge"]["tokens_per_s"], 2),
        ratio=round(ratio, 3),
        builtin_prefill_s=round(results["builtin"]["prefill_seconds"], 2),
        forge_prefill_s=round(results["forge"]["prefill_seconds"], 2),
        builtin_decode_tok_s=round(results["builtin"]["decode_tokens_per_s"], 2),
        forge_decode_tok_s=round(results["forge"]["decode_tokens_per_s"], 2),
        decode_ratio=round(
            results["forge"]["decode_tokens_per_s"] / results["builtin"]["decode_tokens_per_s"], 3
        ),
        machine=machine_line(),
    )
    path = RESULTS / "e2e_generate.csv"
    rows = []
    if path.exists():  # keep other modes' rows; replace this mode's
        import csv

        rows = [
            {k: r.get(k, "") for k in row}
            for r in csv.DictReader(path.open())
            if (r["mode"], r["dtype"]) != (row["mode"], row["dtype"])
        ]
    write_csv("e2e_generate", rows + [row])
    print(
        f"forge / builtin output tokens per second: {ratio:.3f}; decode phase alone: "
        f"{row['decode_ratio']:.3f}; prefill {row['builtin_prefill_s']} s -> {row['forge_prefill_s']} s ({path})"
    )


if __name__ == "__main__":
    main()
