"""quant_gemm: ours vs (a) torch's GEMM on the dequantised bf16 weight, (a') vLLM's own
bf16 linear on that weight as its CPU dispatch sets it up for an unquantised bf16 model
(dispatch_cpu_unquantized_gemm: oneDNN on a prepacked weight here; faster than torch.mm
at M >= 16, so the honest baseline for "what vLLM runs without quantisation"), (b)
vLLM's own W4A16 CPU kernel (torch.ops._C.cpu_gemm_wna16, its GPTQ/AWQ path) on the same
logical int4 weights, (c) llama.cpp's ggml matmul on the
same float weights quantised by gguf to the matching GGUF type (Q4_0, Q4_1, Q8_0; x in
fp32 as llama.cpp keeps it, rounded by ggml to 8 bits inside its timed call;
ggml_matmul.py, built once in benchmarks/.cache; `--no-ggml` skips it), over the
projection shapes of a 1B- and an 8B-class Llama and M = 1, 4, 16, 64, 512 (decode to
prefill), for three formats: int4 symmetric group 32 (GGUF Q4_0, GPTQ sym), int4 with fp32
scales and mins group 32 (GGUF Q4_K / Q4_1), int8 group 32 (GGUF Q8_0).

Ours and the comparators run in alternating rounds on the same inputs (this host's
neighbours move single runs by 10-40%); each reports its median round. Weight GB/s is
the bytes of the packed weight (codes, scales, mins) per second, against this run's
read bandwidth (a large tensor sum). x is bf16, as vLLM serves it. Ours twice: x as given
(`forge`, exact, the default) and x rounded to int8 per block (`forge_int8`, quantize_x:
the VNNI path, FORGE_QUANT_ACTIVATIONS=int8, quant/activations.py).

    python -m benchmarks.kernels.bench_quant_gemm [--quick] [--models 1b,8b] [--m 1,16]
                                                  [--no-ggml]
"""

import argparse
import statistics

import torch

from benchmarks.common import (
    RESULTS,
    load_vllm_cpu_kernels,
    machine_line,
    pyplot,
    read_bandwidth_gbs,
    time_fn,
    write_csv,
)
from benchmarks.kernels.ggml_matmul import GgmlMatmul
from vllm_forge import extension
from vllm_forge.quant.format import PackedWeight, quantize_rtn

if not extension.load().loaded:
    raise SystemExit(f"vllm_forge._C is not usable: {extension.load().reason}")

# (name, N, K) per projection; q/k/v and gate/up fused as vLLM runs them.
MODELS = {
    "1b": [("qkv", 3072, 2048), ("o", 2048, 2048), ("gate_up", 16384, 2048), ("down", 2048, 8192)],
    "8b": [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate_up", 28672, 4096), ("down", 4096, 14336)],
}
FORMATS = {
    # name: (bits, group, symmetric, scale dtype)
    "int4_sym_g32": (4, 32, True, torch.float16),
    "int4_min_g32_f32": (4, 32, False, torch.float32),
    "int8_g32": (8, 32, True, torch.float16),
}
M_VALUES = [1, 4, 16, 64, 512]
ROUNDS = 3


def vllm_w4a16(p: PackedWeight):
    """The same symmetric int4 weight in vLLM's CPU W4A16 layout (uint4b8: w = (q - 8) s),
    as CPUWNA16LinearKernel._process_gptq_weights_w4a16 prepares it: codes packed 8 per
    int32 along N, 16-column blocks made contiguous; scales [groups, N] in x's dtype."""
    from vllm.model_executor.layers.quantization.utils.quant_utils import (
        pack_quantized_values_into_int32,
    )
    from vllm.scalar_type import scalar_types

    k = p.in_features
    w = pack_quantized_values_into_int32(p.codes().t().contiguous(), scalar_types.uint4b8, 1)
    w = w.view(k, -1, 2).permute(1, 0, 2).reshape(-1, k * 2).contiguous()
    return w, p.scales.t().contiguous().to(torch.bfloat16)


def vllm_bf16_linear(w_bf16: torch.Tensor):
    """y = x W^T the way vLLM's CPU platform runs an unquantised bf16 linear layer: its own
    dispatch prepares the layer (prepacked oneDNN, or sgl-kernel for small weights)."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    layer = torch.nn.Module()
    layer.weight = torch.nn.Parameter(w_bf16, requires_grad=False)
    layer.bias = None
    dispatch_cpu_unquantized_gemm(layer, remove_weight=False)
    return lambda x: layer.cpu_linear(x, layer.weight, None)


def median_rounds(fns: dict, min_time: float, timers: dict | None = None) -> dict:
    """Median seconds per call of each fn (timed here) and each timer (a callable of
    min_time that times itself: ggml in its own process), alternating in rounds."""
    timers = dict(timers or {})
    for name, fn in fns.items():
        timers[name] = lambda t, fn=fn: time_fn(fn, min_time=t, max_iters=50)
    rounds: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(ROUNDS):
        for name, timer in timers.items():
            rounds[name].append(timer(min_time))
    return {name: statistics.median(r) for name, r in rounds.items()}


def ratio(t: dict, slower: str, ours: str) -> float | str:
    return round(t[slower] / t[ours], 2) if slower in t else ""


def micros(t: dict, name: str) -> float | str:
    return round(t[name] * 1e6, 1) if name in t else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1b shapes, M 1 and 16, one format")
    ap.add_argument("--models", default="1b,8b")
    ap.add_argument("--m", default=",".join(map(str, M_VALUES)))
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--no-ggml", action="store_true", help="skip llama.cpp's ggml")
    args = ap.parse_args()
    models = ["1b"] if args.quick else args.models.split(",")
    m_values = [1, 16] if args.quick else [int(v) for v in args.m.split(",")]
    formats = ["int4_sym_g32"] if args.quick else args.formats.split(",")
    have_vllm = load_vllm_cpu_kernels() and hasattr(torch.ops._C, "cpu_gemm_wna16")
    ggml = None if args.no_ggml else GgmlMatmul(torch.get_num_threads())
    read_gbs = read_bandwidth_gbs()
    print(f"quant_gemm: machine {machine_line()}; read bandwidth {read_gbs:.1f} GB/s")
    rows = []
    for model in models:
        for proj, n, k in MODELS[model]:
            w = torch.randn(n, k, generator=torch.Generator().manual_seed(n + k))
            for fmt in formats:
                bits, group, sym, sdt = FORMATS[fmt]
                p = quantize_rtn(w, bits, group, symmetric=sym, scale_dtype=sdt)
                w_bf16 = p.dequantize().to(torch.bfloat16)
                vllm_w = vllm_w4a16(p) if have_vllm and bits == 4 and sym else None
                vllm_bf16 = vllm_bf16_linear(w_bf16) if have_vllm else None
                tiled = p.tiled()
                ggml_bytes = ggml.set_weight(w.numpy(), fmt) if ggml else 0
                for m in m_values:
                    x = torch.randn(m, k).to(torch.bfloat16)
                    out = torch.empty(m, n, dtype=torch.bfloat16)
                    fns = {
                        "forge": lambda: torch.ops.vllm_forge.quant_gemm(
                            out, x, tiled.qweight, tiled.scales, tiled.mins, None, bits, group
                        ),
                        "forge_int8": lambda: torch.ops.vllm_forge.quant_gemm(
                            out, x, tiled.qweight, tiled.scales, tiled.mins, None, bits, group, True
                        ),
                        "torch_bf16": lambda: torch.mm(x, w_bf16.t()),
                    }
                    if vllm_bf16 is not None:
                        fns["vllm_bf16"] = lambda: vllm_bf16(x)
                    if vllm_w is not None:
                        out_v = torch.empty(m, n, dtype=torch.bfloat16)
                        fns["vllm_w4a16"] = lambda: torch.ops._C.cpu_gemm_wna16(
                            x, vllm_w[0], out_v, vllm_w[1], None, None, 8, "vec"
                        )
                    timers = {}
                    if ggml:
                        ggml.load(m)
                        timers["ggml"] = lambda t: ggml.time(t, 50)
                    t = median_rounds(fns, 0.05 if m >= 64 else 0.1, timers)
                    gbs = p.nbytes() / t["forge"] / 1e9
                    row = dict(
                        model=model,
                        proj=proj,
                        n=n,
                        k=k,
                        format=fmt,
                        m=m,
                        forge_us=round(t["forge"] * 1e6, 1),
                        forge_int8_us=round(t["forge_int8"] * 1e6, 1),
                        torch_bf16_us=round(t["torch_bf16"] * 1e6, 1),
                        x_torch_bf16=round(t["torch_bf16"] / t["forge"], 2),
                        x_torch_bf16_int8=round(t["torch_bf16"] / t["forge_int8"], 2),
                        vllm_bf16_us=micros(t, "vllm_bf16"),
                        x_vllm_bf16=ratio(t, "vllm_bf16", "forge"),
                        x_vllm_bf16_int8=ratio(t, "vllm_bf16", "forge_int8"),
                        vllm_w4a16_us=micros(t, "vllm_w4a16"),
                        x_vllm_w4a16=ratio(t, "vllm_w4a16", "forge"),
                        x_vllm_w4a16_int8=ratio(t, "vllm_w4a16", "forge_int8"),
                        ggml_us=micros(t, "ggml"),
                        x_ggml=ratio(t, "ggml", "forge"),
                        x_ggml_int8=ratio(t, "ggml", "forge_int8"),
                        ggml_weight_gbs=round(ggml_bytes / t["ggml"] / 1e9, 1) if ggml else "",
                        weight_gbs=round(gbs, 1),
                        weight_gbs_int8=round(p.nbytes() / t["forge_int8"] / 1e9, 1),
                        pct_read_bw=round(100 * gbs / read_gbs, 1),
                        tflops=round(2 * m * n * k / t["forge"] / 1e12, 3),
                        read_gbs=round(read_gbs, 1),
                    )
                    rows.append(row)
                    print(row)
    if ggml:
        ggml.close()
    name = "quant_gemm_quick" if args.quick else "quant_gemm"
    path = write_csv(name, rows)
    plot(rows, RESULTS / f"{name}.png")
    print(f"wrote {path}")


def plot(rows: list[dict], path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.5))
    # vLLM's own bf16 linear where it ran (what vLLM serves an unquantised model with).
    vllm_ran = all(r.get("x_vllm_bf16", "") != "" for r in rows)
    base = "x_vllm_bf16" if vllm_ran else "x_torch_bf16"
    base_name = "vLLM's bf16 linear (oneDNN, prepacked)" if vllm_ran else "torch.mm"
    for fmt in sorted({r["format"] for r in rows}):
        for m in sorted({r["m"] for r in rows}):
            sel = [r for r in rows if r["format"] == fmt and r["m"] == m]
            labels = [f"{r['model']}:{r['proj']}" for r in sel]
            axes[0].plot(labels, [r[base] for r in sel], marker="o", label=f"{fmt} M={m}")
            axes[0].plot(
                labels,
                [r[base + "_int8"] for r in sel],
                marker="x",
                ls="--",
                label=f"{fmt} M={m} int8 x",
            )
            for ax, key in ((axes[1], "x_vllm_w4a16"), (axes[2], "x_ggml")):
                vs = [r for r in sel if r.get(key, "") != ""]
                if vs:
                    names = [f"{r['model']}:{r['proj']}" for r in vs]
                    ax.plot(names, [r[key] for r in vs], marker="o", label=f"{fmt} M={m}")
                    ax.plot(
                        names,
                        [r[key + "_int8"] for r in vs],
                        marker="x",
                        ls="--",
                        label=f"{fmt} M={m} int8 x",
                    )
    for ax, title in zip(
        axes,
        [
            f"speed-up vs {base_name} on the dequantised bf16 weight",
            "speed-up vs vLLM cpu_gemm_wna16 (int4 sym)",
            "speed-up vs llama.cpp ggml (Q4_0 / Q4_1 / Q8_0)",
        ],
    ):
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
