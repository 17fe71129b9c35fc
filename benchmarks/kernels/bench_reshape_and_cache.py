"""reshape_and_cache: ours vs vLLM's cpu_attn_reshape_and_cache vs the pure-torch
reference, for decode-sized and prefill-sized writes. Reports time, speed-up over vLLM,
and bytes moved per second (read + write) against the copy bandwidth of this run.
Writes benchmarks/results/reshape_and_cache.{csv,png}.

  python benchmarks/kernels/bench_reshape_and_cache.py
"""

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
from vllm_forge.ops import reference

BLOCK_SIZE = 128


def main():
    assert extension.load().loaded, extension.load().reason
    have_vllm = load_vllm_cpu_kernels()
    copy_gbs = copy_bandwidth_gbs()
    print(f"machine: {machine_line()}; copy bandwidth {copy_gbs:.1f} GB/s")
    rows = []
    for num_tokens in (16, 256, 2048, 8192):
        for kv_heads, head_size in ((8, 128), (2, 64)):
            for dtype in (torch.bfloat16, torch.float32):
                num_blocks = max(64, 2 * num_tokens // BLOCK_SIZE)
                key = torch.randn(num_tokens, kv_heads, head_size).to(dtype)
                value = torch.randn(num_tokens, kv_heads, head_size).to(dtype)
                slots = torch.randperm(num_blocks * BLOCK_SIZE)[:num_tokens]
                kv = torch.zeros(num_blocks, kv_heads, 2 * BLOCK_SIZE, head_size, dtype=dtype)
                kc, vc = kv[:, :, :BLOCK_SIZE], kv[:, :, BLOCK_SIZE:]
                t_ours = time_fn(
                    lambda: torch.ops.vllm_forge.reshape_and_cache(kc, vc, key, value, slots)
                )
                t_ref = time_fn(lambda: reference.reshape_and_cache(kc, vc, key, value, slots))
                moved = 2 * 2 * key.numel() * key.element_size()  # read + write, K and V
                row = dict(
                    num_tokens=num_tokens,
                    kv_heads=kv_heads,
                    head_size=head_size,
                    dtype=str(dtype).removeprefix("torch."),
                    forge_us=round(t_ours * 1e6, 2),
                    reference_us=round(t_ref * 1e6, 2),
                    speedup_vs_reference=round(t_ref / t_ours, 2),
                    forge_gbs=round(moved / t_ours / 1e9, 2),
                    forge_pct_copy_bw=round(100 * moved / t_ours / 1e9 / copy_gbs, 1),
                )
                if have_vllm:
                    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

                    isa = _get_attn_isa(dtype, BLOCK_SIZE, head_size)
                    kv2 = torch.zeros_like(kv)
                    kc2, vc2 = kv2.chunk(2, dim=2)
                    t_vllm = time_fn(
                        lambda: torch.ops._C.cpu_attn_reshape_and_cache(
                            key, value, kc2, vc2, slots, isa, 1.0, 1.0, "auto"
                        )
                    )
                    row.update(
                        vllm_us=round(t_vllm * 1e6, 2), speedup_vs_vllm=round(t_vllm / t_ours, 2)
                    )
                row["copy_gbs"] = round(copy_gbs, 1)
                rows.append(row)
                print(row)
    path = write_csv("reshape_and_cache", rows)
    plot(rows)
    print(f"wrote {path} and {path.with_suffix('.png')}")


def plot(rows):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for dtype in ("bfloat16", "float32"):
        sel = [r for r in rows if r["dtype"] == dtype and r["kv_heads"] == 8]
        xs = [r["num_tokens"] for r in sel]
        ax.plot(xs, [r["forge_us"] for r in sel], "o-", label=f"forge {dtype}")
        if "vllm_us" in sel[0]:
            ax.plot(xs, [r["vllm_us"] for r in sel], "x--", label=f"vLLM {dtype}")
        ax.plot(xs, [r["reference_us"] for r in sel], ".:", label=f"torch reference {dtype}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens written (8 kv heads x 128)")
    ax.set_ylabel("microseconds")
    ax.legend()
    ax.set_title(machine_line())
    fig.tight_layout()
    fig.savefig(RESULTS / "reshape_and_cache.png", dpi=100)


if __name__ == "__main__":
    main()
