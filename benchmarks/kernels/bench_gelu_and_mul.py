"""gelu_and_mul (exact and tanh): ours vs vLLM's _C.gelu_and_mul / gelu_tanh_and_mul vs
the torch reference."""

import torch

from benchmarks.kernels.pointwise import SHAPES, Case, run, tag, vllm_op
from vllm_forge.ops import reference

ours = torch.ops.vllm_forge.gelu_and_mul
theirs = {"none": vllm_op("gelu_and_mul"), "tanh": vllm_op("gelu_tanh_and_mul")}
cases = []
for approximate in ("none", "tanh"):
    for rows, d in SHAPES:
        x = torch.randn(rows, 2 * d, dtype=torch.bfloat16)
        out = torch.empty(rows, d, dtype=torch.bfloat16)
        fn = theirs[approximate]
        cases.append(
            Case(
                f"{tag(rows, 2 * d, torch.bfloat16)} {approximate}",
                x.nbytes + out.nbytes,
                lambda x=x, out=out, a=approximate: ours(out, x, a),
                lambda x=x, out=out, a=approximate: reference.gelu_and_mul(out, x, a),
                fn and (lambda x=x, out=out, fn=fn: fn(out, x)),
            )
        )
run("gelu_and_mul", cases, "vllm")
