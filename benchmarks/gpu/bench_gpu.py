"""GPU benchmarks for the lent machine (run by benchmarks/gpu_suite.sh): the device's
measured ceilings, then our CUDA kernels, our Triton kernels and torch references on the
same inputs in one run. Writes CSV under --out and prints a short table.

Ceilings: a 1 GiB device-to-device copy (bytes read + written) and an 8192^3 bf16 matmul.
Attention reference: torch's scaled_dot_product_attention on the same K/V laid out
contiguously per sequence (its flash backend where it accepts the call), which reads
the same bytes without a block table.
"""

import argparse
import csv
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from vllm_forge.ops import reference
from vllm_forge.triton import activation as triton_activation
from vllm_forge.triton import norms as triton_norms
from vllm_forge.triton import paged_attention as triton_attention


def bench(fn, warmup=10, iters=50) -> float:
    """Median seconds per call, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def ceilings() -> dict:
    n = 1 << 28  # 1 GiB of fp32
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    t_copy = bench(lambda: dst.copy_(src), iters=20)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t_mm = bench(lambda: a @ b, warmup=3, iters=10)
    return {"copy_gbs": 2 * n * 4 / t_copy / 1e9, "bf16_tflops": 2 * 8192**3 / t_mm / 1e12}


def paged_batch(batch, ctx, q_len, num_heads, num_kv_heads, head_size, block_size, dtype):
    """A random paged batch (every sequence: ctx tokens, the last q_len new) and the same
    K/V contiguous per sequence for SDPA."""
    blocks_per_seq = math.ceil(ctx / block_size)
    num_blocks = batch * blocks_per_seq
    kv = torch.randn(
        num_blocks, num_kv_heads, block_size, 2 * head_size, device="cuda", dtype=dtype
    )
    from vllm_forge.attention.kv_layout import split_kv_cache

    key_cache, value_cache = split_kv_cache(kv)
    block_table = torch.randperm(num_blocks, device="cuda", dtype=torch.int32).view(batch, -1)
    query = torch.randn(batch * q_len, num_heads, head_size, device="cuda", dtype=dtype)
    qsl = torch.arange(0, batch + 1, device="cuda", dtype=torch.int32) * q_len
    seq_lens = torch.full((batch,), ctx, device="cuda", dtype=torch.int32)
    # Contiguous copies for SDPA: [batch, kv_heads, ctx, d].
    k = (
        key_cache[block_table.long()]
        .permute(0, 2, 1, 3, 4)
        .reshape(batch, num_kv_heads, -1, head_size)[:, :, :ctx]
    )
    v = (
        value_cache[block_table.long()]
        .permute(0, 2, 1, 3, 4)
        .reshape(batch, num_kv_heads, -1, head_size)[:, :, :ctx]
    )
    return (query, key_cache, value_cache, qsl, seq_lens, block_table), (
        k.contiguous(),
        v.contiguous(),
    )


def sdpa(query, k, v, batch, q_len, num_heads, scale):
    q = query.view(batch, q_len, num_heads, -1).transpose(1, 2)
    group = num_heads // k.shape[1]
    mask_causal = q_len > 1
    if mask_causal:  # new tokens at the end of the context: a bottom-right causal mask
        ctx = k.shape[2]
        allowed = torch.ones(q_len, ctx, dtype=torch.bool, device="cuda").tril(ctx - q_len)
        return lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, scale=scale, enable_gqa=group > 1
        )
    return lambda: F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=group > 1)


def bench_attention(rows, ceil):
    cases = [  # (label, batch, ctx, q_len)
        ("decode", 1, 8192, 1),
        ("decode", 16, 2048, 1),
        ("decode", 64, 2048, 1),
        ("decode", 64, 8192, 1),
        ("prefill-chunk", 4, 2048, 512),
    ]
    num_heads, num_kv_heads, head_size, block_size = 32, 8, 128, 16
    for label, batch, ctx, q_len in cases:
        for dtype in (torch.bfloat16,):
            args, (k, v) = paged_batch(
                batch, ctx, q_len, num_heads, num_kv_heads, head_size, block_size, dtype
            )
            scale = 1 / math.sqrt(head_size)
            out = torch.empty_like(args[0])
            ref = torch.empty_like(out)
            reference.paged_attention(ref, *args, scale)
            kv_bytes = 2 * batch * ctx * num_kv_heads * head_size * k.element_size()
            flops = 4 * batch * q_len * ctx * num_heads * head_size
            providers = {
                "cuda": lambda: torch.ops.vllm_forge.paged_attention(out, *args, scale, -1, 0.0),
                "triton": lambda: triton_attention.paged_attention(out, *args, scale),
                "sdpa": sdpa(args[0], k, v, batch, q_len, num_heads, scale),
            }
            times = {}
            for name, fn in providers.items():
                out.fill_(float("nan"))
                fn()
                if name != "sdpa":
                    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
                else:
                    err = float("nan")
                times[name] = bench(fn)
                rows.append(
                    dict(
                        op="paged_attention",
                        case=f"{label} b{batch} ctx{ctx} q{q_len}",
                        dtype=str(dtype).split(".")[-1],
                        provider=name,
                        us=times[name] * 1e6,
                        gbs=kv_bytes / times[name] / 1e9,
                        tflops=flops / times[name] / 1e12,
                        pct_copy=100 * kv_bytes / times[name] / 1e9 / ceil["copy_gbs"],
                        rel_err=err,
                    )
                )


def bench_pointwise(rows, ceil):
    for tokens, hidden in ((4096, 4096), (16384, 8192)):
        x = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(x)
        nbytes = 2 * x.numel() * x.element_size()
        fns = {
            "cuda": lambda: torch.ops.vllm_forge.rms_norm(out, x, w, 1e-6),
            "triton": lambda: triton_norms.rms_norm(out, x, w, 1e-6),
            "torch": lambda: F.rms_norm(x, (hidden,), w, 1e-6),
        }
        for name, fn in fns.items():
            t = bench(fn)
            rows.append(
                dict(
                    op="rms_norm",
                    case=f"{tokens}x{hidden}",
                    dtype="bfloat16",
                    provider=name,
                    us=t * 1e6,
                    gbs=nbytes / t / 1e9,
                    tflops=0.0,
                    pct_copy=100 * nbytes / t / 1e9 / ceil["copy_gbs"],
                    rel_err=float("nan"),
                )
            )
        y = torch.empty(tokens, hidden // 2, device="cuda", dtype=torch.bfloat16)
        nbytes = (x.numel() + y.numel()) * x.element_size()
        fns = {
            "cuda": lambda: torch.ops.vllm_forge.silu_and_mul(y, x),
            "triton": lambda: triton_activation.silu_and_mul(y, x),
            "torch": lambda: F.silu(x[:, : hidden // 2]) * x[:, hidden // 2 :],
        }
        for name, fn in fns.items():
            t = bench(fn)
            rows.append(
                dict(
                    op="silu_and_mul",
                    case=f"{tokens}x{hidden}",
                    dtype="bfloat16",
                    provider=name,
                    us=t * 1e6,
                    gbs=nbytes / t / 1e9,
                    tflops=0.0,
                    pct_copy=100 * nbytes / t / 1e9 / ceil["copy_gbs"],
                    rel_err=float("nan"),
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ceil = ceilings()
    name = torch.cuda.get_device_name()
    print(
        f"device: {name}; copy {ceil['copy_gbs']:.0f} GB/s; bf16 matmul {ceil['bf16_tflops']:.0f} TFLOP/s"
    )
    rows = []
    bench_attention(rows, ceil)
    bench_pointwise(rows, ceil)
    with open(args.out / "gpu_bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["device", *rows[0].keys()])
        writer.writeheader()
        for row in rows:
            writer.writerow({"device": name, **row})
    print(
        f"{'op':<16} {'case':<28} {'provider':<8} {'us':>9} {'GB/s':>8} {'%copy':>6} {'TFLOP/s':>8} {'rel err':>9}"
    )
    for r in rows:
        print(
            f"{r['op']:<16} {r['case']:<28} {r['provider']:<8} {r['us']:>9.1f} {r['gbs']:>8.0f} "
            f"{r['pct_copy']:>6.1f} {r['tflops']:>8.1f} {r['rel_err']:>9.2e}"
        )


if __name__ == "__main__":
    main()
