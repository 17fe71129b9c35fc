"""What quant_gemm's int8 activations (quantize_x, FORGE_QUANT_ACTIVATIONS=int8:
quant/activations.py) cost in accuracy, beside llama.cpp's own on the same file.

SmolLM2-135M-Instruct's Q4_1 GGUF through vLLM + vllm-forge, compiled; the reference is the
exact path in fp32 (FORGE_QUANT_ACTIVATIONS=exact: the GGUF's weights multiplied exactly,
fp32 activations). Against it, on the same token ids of real English text (Python's
`pydoc_data.topics`), the mean |logprob error| of:

- forge fp32 int8: the activation rounding alone;
- forge bf16 exact and forge bf16 int8: what a bf16 user gets without and with it (the
  paired difference with its 95% block-bootstrap interval says whether int8 adds error);
- llama.cpp: the same file through llama.cpp's CPU path (its Q4_1 matmuls round
  activations to Q8_1 per 32, as ours do; fp32 elsewhere), scored by our small
  llamacpp_logprobs.cpp against the cached llama.cpp build (bench_llamacpp builds it);
plus greedy agreement with the reference over the chat prompts for the vLLM runs.
Writes benchmarks/results/e2e_int8_activations.csv (a log: rows appended) and .png.

  python -m benchmarks.e2e.bench_int8_activations [--tokens 3000] [--mode compiled]
"""

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, machine_line, pyplot, write_csv
from benchmarks.e2e import run_child, smollm2_inputs
from benchmarks.e2e.bench_bf16_accuracy import CHUNK, agreement, paired_difference
from benchmarks.e2e.bench_llamacpp import linked_tool

HERE = Path(__file__).resolve().parent
MODULE = "benchmarks.e2e.bench_bf16_accuracy"  # its child scores text and answers chats


def llamacpp_scorer() -> Path:
    """benchmarks/.cache/llamacpp_logprobs, linked against the cached llama.cpp build."""
    return linked_tool(HERE / "llamacpp_logprobs.cpp", with_llama=True)


def llamacpp_logprobs(gguf: Path, text_ids: list[list[int]], threads: int) -> list[float]:
    with tempfile.TemporaryFile("w+") as chunks:
        chunks.write("".join(" ".join(map(str, ids)) + "\n" for ids in text_ids))
        chunks.seek(0)
        out = subprocess.run(
            [str(llamacpp_scorer()), str(gguf), str(threads)],
            stdin=chunks,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return [float(v) for line in out.splitlines() for v in line.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--mode", default="compiled", choices=["compiled", "eager"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    gguf, _, text_ids, chat_ids = smollm2_inputs(args.tokens, CHUNK)
    cfg = dict(
        text_ids=text_ids,
        chat_ids=chat_ids,
        model=str(gguf.parent),
        extra={"config_format": "forge_gguf"},
        eager=args.mode == "eager",
    )

    def forge(dtype: str, activations: str) -> dict:
        env = {"FORGE_QUANT_ACTIVATIONS": activations}
        return run_child(MODULE, dict(cfg, dtype=dtype), True, kv_cache_gib="2", env=env)

    reference = forge("float32", "exact")
    runs = {
        "forge fp32 int8": forge("float32", "int8"),
        "forge bf16 exact": forge("bfloat16", "exact"),
        "forge bf16 int8": forge("bfloat16", "int8"),
        "llama.cpp": {"logprobs": llamacpp_logprobs(gguf, text_ids, args.threads)},
    }
    errors = {
        name: [abs(a - b) for a, b in zip(run["logprobs"], reference["logprobs"], strict=True)]
        for name, run in runs.items()
    }
    rows = []
    for name, run in runs.items():
        row = dict(
            run=name,
            mode=args.mode,
            reference="forge fp32 exact",
            tokens=len(errors[name]),
            mean_abs_logprob_err=round(statistics.fmean(errors[name]), 5),
            max_abs_logprob_err=round(max(errors[name]), 4),
        )
        if "answers" in run:
            agree = [agreement(a, b) for a, b in zip(run["answers"], reference["answers"])]
            row["greedy_agree_mean"] = round(statistics.fmean(agree), 1)
        if name == "forge bf16 int8":
            diff, low, high = paired_difference(errors[name], errors["forge bf16 exact"])
            row["minus_bf16_exact"] = round(diff, 5)
            row["minus_bf16_exact_ci95"] = f"[{low:.5f}, {high:.5f}]"
        rows.append(dict(row, note=args.note, machine=machine_line()))
        print(json.dumps(rows[-1]), flush=True)
    path = write_csv("e2e_int8_activations", rows, append=True)
    print(f"wrote {path} and {plot(rows)}")


def plot(rows: list[dict]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [r["mean_abs_logprob_err"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [r["run"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("mean |logprob error| vs forge fp32 exact (SmolLM2 Q4_1, real text)")
    fig.tight_layout()
    path = RESULTS / "e2e_int8_activations.png"
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    main()
