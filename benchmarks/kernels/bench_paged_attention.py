"""Paged decode/prefill attention: ours vs vLLM's cpu_attention_with_kv_cache vs the
pure-torch reference, on the same logical K/V (each kernel's cache written by its own
reshape_and_cache, since vLLM's CPU backend has its own in-block layout).

Reports time per call, speed-up over vLLM, and KV bytes read per second against the copy
bandwidth measured in the same run. Writes benchmarks/results/paged_attention.{csv,png}.

  python benchmarks/kernels/bench_paged_attention.py [--quick]
"""

import argparse
import itertools
import math
import statistics

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
from vllm_forge.attention.kv_layout import empty_kv_cache, split_kv_cache
from vllm_forge.ops import reference

BLOCK_SIZE = 128
ROUNDS = 3


def make_case(batch, context, q_len, num_heads, num_kv_heads, head_size, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = math.ceil(context / BLOCK_SIZE)
    num_blocks = batch * blocks_per_seq
    block_table = (
        torch.randperm(num_blocks, generator=gen).to(torch.int32).view(batch, blocks_per_seq)
    )
    seq_lens = torch.full((batch,), context, dtype=torch.int32)
    query_start_loc = torch.arange(0, (batch + 1) * q_len, q_len, dtype=torch.int32)
    key = torch.randn(batch * context, num_kv_heads, head_size, generator=gen).to(dtype)
    value = torch.randn(batch * context, num_kv_heads, head_size, generator=gen).to(dtype)
    pos = torch.arange(context)
    slots = (block_table.long()[:, pos // BLOCK_SIZE] * BLOCK_SIZE + pos % BLOCK_SIZE).flatten()
    query = torch.randn(batch * q_len, num_heads, head_size, generator=gen).to(dtype)
    return dict(
        query=query,
        key=key,
        value=value,
        slots=slots,
        block_table=block_table,
        seq_lens=seq_lens,
        query_start_loc=query_start_loc,
        num_blocks=num_blocks,
    )


def forge_runner(c, num_kv_heads, head_size, scale):
    kv = empty_kv_cache(c["num_blocks"], num_kv_heads, BLOCK_SIZE, head_size, c["query"].dtype)
    key_cache, value_cache = split_kv_cache(kv)
    torch.ops.vllm_forge.reshape_and_cache(key_cache, value_cache, c["key"], c["value"], c["slots"])
    out = torch.empty_like(c["query"])
    args = (
        out,
        c["query"],
        key_cache,
        value_cache,
        c["query_start_loc"],
        c["seq_lens"],
        c["block_table"],
        scale,
        -1,
        0.0,
    )
    return (lambda: torch.ops.vllm_forge.paged_attention(*args)), out, args


def vllm_runner(c, num_heads, num_kv_heads, head_size, scale):
    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

    dtype = c["query"].dtype
    isa = _get_attn_isa(dtype, BLOCK_SIZE, head_size)
    kv = torch.empty(c["num_blocks"], num_kv_heads, 2 * BLOCK_SIZE, head_size, dtype=dtype)
    key_cache, value_cache = kv.chunk(2, dim=2)
    torch.ops._C.cpu_attn_reshape_and_cache(
        c["key"], c["value"], key_cache, value_cache, c["slots"], isa, 1.0, 1.0, "auto"
    )
    batch = c["seq_lens"].numel()
    meta = torch.ops._C.get_scheduler_metadata(
        batch,
        num_heads,
        num_kv_heads,
        head_size,
        c["seq_lens"],
        dtype,
        c["query_start_loc"],
        True,
        -1,
        isa,
        True,
        None,
        "auto",
    )
    out = torch.empty_like(c["query"])

    def run():
        torch.ops._C.cpu_attention_with_kv_cache(
            c["query"],
            key_cache,
            value_cache,
            out,
            c["query_start_loc"],
            c["seq_lens"],
            scale,
            True,
            None,
            -1,
            c["block_table"],
            0.0,
            meta,
            None,
            None,
            1.0,
            1.0,
            "auto",
        )

    return run, out, isa


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few points only, printed (results/ is left as it is)",
    )
    args = parser.parse_args()
    assert extension.load().loaded, extension.load().reason
    have_vllm = load_vllm_cpu_kernels()
    copy_gbs = copy_bandwidth_gbs()
    print(f"machine: {machine_line()}; copy bandwidth {copy_gbs:.1f} GB/s")

    if args.quick:
        grid = [
            (16, 2048, 1, 32, 8, 128, torch.bfloat16),
            (4, 512, 1, 32, 8, 128, torch.float32),
            (1, 2048, 512, 32, 8, 128, torch.bfloat16),
        ]
    else:
        # Decode: batch 1-64 x context 128-8192 (up to 64 x 2048 tokens of context), GQA
        # 1/4/8 (32 query heads over 32/8/4 KV heads) at head 128, and head 64 at GQA 4.
        shapes = [
            (b, ctx)
            for b, ctx in itertools.product([1, 4, 16, 64], [128, 512, 2048, 8192])
            if b * ctx <= 64 * 2048
        ]
        grid = [
            (b, ctx, 1, 32, kv, hs, dt)
            for (b, ctx), (kv, hs), dt in itertools.product(
                shapes, [(32, 128), (8, 128), (4, 128), (8, 64)], [torch.bfloat16, torch.float32]
            )
        ]
        grid.append((1, 2048, 512, 32, 8, 128, torch.bfloat16))  # a 512-token chunk over 2k
        grid.append((1, 2048, 512, 32, 8, 128, torch.float32))

    rows = []
    for batch, context, q_len, heads, kv_heads, head_size, dtype in grid:
        c = make_case(batch, context, q_len, heads, kv_heads, head_size, dtype)
        scale = head_size**-0.5
        run_ours, out_ours, ref_args = forge_runner(c, kv_heads, head_size, scale)
        runners = {"ours": run_ours}
        if have_vllm:
            run_vllm, out_vllm, isa = vllm_runner(c, heads, kv_heads, head_size, scale)
            runners["vllm"] = run_vllm
        # Ours and vLLM's in alternating rounds, each reporting its median round: the
        # neighbours on this machine come and go, and this spreads their noise evenly.
        rounds = {name: [] for name in runners}
        for _ in range(ROUNDS):
            for name, fn in runners.items():
                rounds[name].append(time_fn(fn, min_time=0.1))
        t_ours = statistics.median(rounds["ours"])
        row = dict(
            batch=batch,
            context=context,
            q_len=q_len,
            heads=heads,
            kv_heads=kv_heads,
            head_size=head_size,
            dtype=str(dtype).removeprefix("torch."),
            forge_ms=round(t_ours * 1e3, 4),
        )
        kv_bytes = 2 * batch * context * kv_heads * head_size * c["query"].element_size()
        row["forge_kv_gbs"] = round(kv_bytes / t_ours / 1e9, 2)
        row["forge_pct_copy_bw"] = round(100 * kv_bytes / t_ours / 1e9 / copy_gbs, 1)
        if have_vllm:
            t_vllm = statistics.median(rounds["vllm"])
            run_vllm()
            run_ours()
            err = (out_ours.float() - out_vllm.float()).abs().max().item()
            row.update(
                vllm_ms=round(t_vllm * 1e3, 4),
                vllm_isa=isa,
                speedup_vs_vllm=round(t_vllm / t_ours, 2),
                max_abs_diff_vs_vllm=f"{err:.2e}",
            )
        if batch * context * q_len <= 16 * 2048:  # the reference is slow
            ref_out = torch.empty_like(out_ours)
            ref_args = (ref_out,) + ref_args[1:]
            t_ref = time_fn(lambda: reference.paged_attention(*ref_args), min_time=0.1, warmup=1)
            row.update(
                reference_ms=round(t_ref * 1e3, 3), speedup_vs_reference=round(t_ref / t_ours, 1)
            )
        row["copy_gbs"] = round(copy_gbs, 1)
        rows.append(row)
        print({k: v for k, v in row.items() if k not in ("copy_gbs",)})

    if args.quick:
        return
    path = write_csv("paged_attention", rows)
    plot(rows, copy_gbs)
    print(f"wrote {path} and {path.with_suffix('.png')}")


def plot(rows, copy_gbs):
    plt = pyplot()
    decode = [r for r in rows if r["q_len"] == 1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for dtype in sorted({r["dtype"] for r in decode}):
        sel = [
            r
            for r in decode
            if r["dtype"] == dtype and r["kv_heads"] == 8 and r["head_size"] == 128
        ]
        xs = [f"b{r['batch']}/c{r['context']}" for r in sel]
        axes[0].plot(xs, [r["forge_kv_gbs"] for r in sel], "o-", label=f"forge {dtype}")
        if "vllm_ms" in (sel[0] if sel else {}):
            axes[0].plot(
                xs,
                [r["forge_kv_gbs"] * r["speedup_vs_vllm"] ** -1 for r in sel],
                "x--",
                label=f"vLLM {dtype}",
            )
            axes[1].plot(xs, [r["speedup_vs_vllm"] for r in sel], "o-", label=dtype)
    axes[0].axhline(copy_gbs, color="gray", ls=":", label="copy bandwidth")
    axes[0].set_title("decode, 32 q / 8 kv heads, head 128: KV GB/s")
    axes[1].axhline(1.0, color="gray", ls=":")
    axes[1].set_title("speed-up over vLLM cpu_attention_with_kv_cache")
    for ax in axes:
        ax.tick_params(axis="x", rotation=60)
        ax.legend()
    fig.suptitle(machine_line())
    fig.tight_layout()
    fig.savefig(RESULTS / "paged_attention.png", dpi=100)


if __name__ == "__main__":
    main()
