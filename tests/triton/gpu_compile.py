"""Compile every Triton kernel for NVIDIA GPUs on a machine without one.

Each launcher runs on small CPU tensors with its kernels replaced by recorders (so its
checks and argument plumbing run for real); every recorded launch is then compiled by
triton.compile for the given targets, through PTX to a cubin with Triton's bundled ptxas.
That catches what the interpreter forgives: type errors, unsupported constructs, tl.dot
shapes. Run with TRITON_INTERPRET unset:

    python -m tests.triton.gpu_compile [--arch 80 --arch 90]
"""

import argparse
import importlib
import sys
import time

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from tests.utils import make_paged_batch
from vllm_forge.quant.format import quantize_rtn

POINTER_TYPES = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.int8: "i8",
    torch.uint8: "u8",
}
MODULES = (
    "reshape_and_cache",
    "paged_attention",
    "norms",
    "activation",
    "rotary_embedding",
    "softmax",
    "quant_gemm",
)


class Recorder:
    """Stands in for a @triton.jit kernel: kernel[grid](*args, **constexprs) is recorded."""

    def __init__(self, kernel, calls):
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((self.kernel, args, kwargs))


def signature(kernel, args, constexprs):
    sig = {}
    for name, arg in zip(kernel.arg_names, args):
        if isinstance(arg, torch.Tensor):
            sig[name] = "*" + POINTER_TYPES[arg.dtype]
        elif isinstance(arg, bool):
            sig[name] = "i1"
        elif isinstance(arg, int):
            sig[name] = "i32" if -(2**31) <= arg < 2**31 else "i64"
        elif isinstance(arg, float):
            sig[name] = "fp32"
        else:
            raise TypeError(f"{kernel.__name__}: no Triton type for {name} = {arg!r}")
    sig.update({name: "constexpr" for name in constexprs})
    return sig


def launches(dtype):
    """(launcher module, function, args) covering every kernel and its constexpr branches."""
    x = torch.randn(4, 256, dtype=dtype)
    w = torch.randn(256, dtype=dtype)
    yield "norms", "rms_norm", (torch.empty_like(x), x, w, 1e-6)
    yield "norms", "fused_add_rms_norm", (x.clone(), x.clone(), None, 1e-6)
    yield "activation", "silu_and_mul", (torch.empty(4, 128, dtype=dtype), x)
    yield "activation", "gelu_and_mul", (torch.empty(4, 128, dtype=dtype), x, "none")
    yield "activation", "gelu_and_mul", (torch.empty(4, 128, dtype=dtype), x, "tanh")
    q = torch.randn(3, 4, 128, dtype=dtype)
    k = torch.randn(3, 2, 128, dtype=dtype)
    cache = torch.randn(16, 64, dtype=dtype)
    yield "rotary_embedding", "rotary_embedding", (torch.tensor([0, 1, 2]), q, k, 128, cache, True)
    yield (
        "rotary_embedding",
        "rotary_embedding",
        (torch.tensor([0, 1, 2]), q, None, 128, cache, False),
    )
    t = torch.ones(4)
    yield "softmax", "softmax", (torch.empty_like(x), x, t)
    yield "softmax", "log_softmax", (torch.empty_like(x), x, None)
    yield (
        "softmax",
        "topk_softmax",
        (torch.empty(4, 2), torch.empty(4, 2, dtype=torch.int32), x, True),
    )
    batch = make_paged_batch(
        [(1, 20), (3, 9)],
        num_heads=8,
        num_kv_heads=2,
        head_size=128,
        block_size=16,
        dtype=dtype,
        poison=False,
    )
    out = torch.empty_like(batch.query)
    yield (
        "reshape_and_cache",
        "reshape_and_cache",
        (batch.key_cache, batch.value_cache, k, k, torch.tensor([0, 5, -1])),
    )
    yield "paged_attention", "paged_attention", batch.args(out, 0.1)
    yield "paged_attention", "paged_attention", batch.args(out, 0.1, 16, 30.0)
    decode = make_paged_batch(
        [(1, 20), (1, 9)],
        num_heads=8,
        num_kv_heads=2,
        head_size=128,
        block_size=16,
        dtype=dtype,
        poison=False,
    )
    yield "paged_attention", "paged_attention", (*decode.args(torch.empty_like(decode.query), 0.1),)
    # quant_gemm: both code widths, a group per element (16) and per tile row (128),
    # fp16/fp32 scales, with and without mins and bias; the thin (m < 16) and tl.dot tiles.
    for bits, group, scale_dtype, asym in (
        (4, 16, torch.float16, True),
        (4, 128, torch.float32, False),
        (8, 32, torch.float16, False),
        (8, 128, torch.float32, True),
    ):
        p = quantize_rtn(
            torch.randn(8, 256), bits, group, symmetric=not asym, scale_dtype=scale_dtype
        ).tiled()
        mins = p.mins if asym else None
        bias = torch.randn(8, dtype=dtype) if asym else None
        for m in (1, 32):
            yield (
                "quant_gemm",
                "quant_gemm",
                (
                    torch.empty(m, 8, dtype=dtype),
                    torch.randn(m, 256, dtype=dtype),
                    p.qweight,
                    p.scales,
                    mins,
                    bias,
                    bits,
                    group,
                ),
            )


def record(dtypes):
    calls = []
    modules = {name: importlib.import_module(f"vllm_forge.triton.{name}") for name in MODULES}
    for module in modules.values():
        for attr, value in list(vars(module).items()):
            # Launched kernels only; device helpers (tanh, ...) must stay JIT functions.
            if isinstance(value, triton.runtime.JITFunction) and attr.endswith("_kernel"):
                setattr(module, attr, Recorder(value, calls))
    for dtype in dtypes:
        for module, fn, args in launches(dtype):
            getattr(modules[module], fn)(*args)
    # The split-KV path and its merge kernel.
    decode = make_paged_batch(
        [(1, 40)],
        num_heads=4,
        num_kv_heads=1,
        head_size=64,
        block_size=16,
        dtype=torch.bfloat16,
        poison=False,
    )
    modules["paged_attention"].paged_attention(
        *decode.args(torch.empty_like(decode.query), 0.1), num_splits=4
    )
    return calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, action="append", help="compute capability, e.g. 90")
    args = parser.parse_args(argv)
    archs = args.arch or [80, 90]
    if triton.knobs.runtime.interpret:
        print("unset TRITON_INTERPRET: the interpreter does not compile", file=sys.stderr)
        return 2
    calls = record([torch.bfloat16, torch.float16, torch.float32])
    seen, failures = set(), 0
    for kernel, call_args, constexprs in calls:
        sig = signature(kernel, call_args, constexprs)
        key = (kernel.__name__, tuple(sorted(sig.items())), tuple(sorted(constexprs.items())))
        if key in seen:
            continue
        seen.add(key)
        for arch in archs:
            start = time.time()
            try:
                compiled = triton.compile(
                    ASTSource(kernel, sig, constexprs), target=GPUTarget("cuda", arch, 32)
                )
                status = f"ok ({len(compiled.asm['cubin'])} B cubin)"
            except Exception as e:  # report every failure, then fail
                failures += 1
                status = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(
                f"sm_{arch} {kernel.__name__} {sorted(constexprs.items())} "
                f"{time.time() - start:.1f}s {status}",
                flush=True,
            )
    print(f"{len(seen)} kernel variants, {len(archs)} targets, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
