"""python -m vllm_forge.demo: vLLM generating through vllm-forge, then a kernel report.

Without --model it makes (once) a tiny random Llama with a locally trained tokenizer
under .demo/; the text it writes is therefore gibberish, but every token of it went
through vLLM's engine and our kernels. The report counts, per op and provider, the
calls made in vLLM's engine and worker processes. Exits non-zero if our paged
attention did not serve the model.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from vllm_forge import envs

PROMPTS = ["The quick brown fox", "A paged attention kernel reads keys and values",
           "Large language models predict"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model folder (default: a tiny random Llama in .demo/)")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--eager", action="store_true", help="skip vLLM's compiled mode")
    parser.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    model = args.model
    if model is None:
        from vllm_forge.tiny_model import make_tiny_model

        model = str(make_tiny_model(Path(".demo") / "tiny-llama", "llama"))
        print(f"demo model: tiny random Llama at {model}")

    # Engine and worker processes inherit these; they must be set before vLLM starts.
    report_dir = tempfile.mkdtemp(prefix="forge-report-")
    os.environ[envs.FORGE_KERNEL_REPORT_DIR] = report_dir
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    # Keep the demo's own output readable; set VLLM_LOGGING_LEVEL=INFO to see vLLM's.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    from vllm_forge import ops, report

    start = time.perf_counter()
    llm = LLM(model=model, dtype=args.dtype, enforce_eager=args.eager, max_model_len=1024,
              gpu_memory_utilization=0.5, seed=0)
    outputs = llm.generate(args.prompt or PROMPTS,
                           SamplingParams(temperature=0.0, max_tokens=args.max_tokens),
                           use_tqdm=False)
    elapsed = time.perf_counter() - start

    print("\n=== generated ===")
    for out in outputs:
        print(f"{out.prompt!r} -> {out.outputs[0].text!r}")
    totals = report.collect(report_dir)
    print("\n=== kernel report ===")
    print(f"platform: {type(current_platform).__name__}   model dtype: {args.dtype}   "
          f"mode: {'eager' if args.eager else 'compiled'}   wall time: {elapsed:.1f} s")
    print("calls per op and provider, summed over vLLM's processes:")
    print(report.format_report(totals, ops.OPS))
    served = sum(c.get("paged_attention", 0) for c in totals.values())
    if served == 0:
        print("\nvllm-forge did NOT serve attention (is the plugin active? see the log above)")
        return 1
    print("\nattention served by vllm-forge's paged_attention")
    return 0


if __name__ == "__main__":
    sys.exit(main())
