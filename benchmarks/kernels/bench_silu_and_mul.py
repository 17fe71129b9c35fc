"""silu_and_mul: ours vs vLLM's _C.silu_and_mul vs the torch reference."""

import torch

from benchmarks.kernels.pointwise import DTYPES, SHAPES, Case, run, tag, vllm_op
from vllm_forge.ops import reference

ours, theirs = torch.ops.vllm_forge.silu_and_mul, vllm_op("silu_and_mul")
cases = []
for dtype in DTYPES:
    for rows, d in SHAPES:
        x = torch.randn(rows, 2 * d, dtype=dtype)
        out = torch.empty(rows, d, dtype=dtype)
        cases.append(
            Case(
                tag(rows, 2 * d, dtype),
                x.nbytes + out.nbytes,
                lambda x=x, out=out: ours(out, x),
                lambda x=x, out=out: reference.silu_and_mul(out, x),
                theirs and (lambda x=x, out=out: theirs(out, x)),
            )
        )
run("silu_and_mul", cases, "vllm")
