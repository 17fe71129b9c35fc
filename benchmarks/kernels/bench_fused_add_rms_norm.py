"""fused_add_rms_norm: ours vs vLLM's _C.fused_add_rms_norm vs the torch reference."""

import torch

from benchmarks.kernels.pointwise import DTYPES, SHAPES, Case, run, tag, vllm_op
from vllm_forge.ops import reference

ours, theirs = torch.ops.vllm_forge.fused_add_rms_norm, vllm_op("fused_add_rms_norm")
cases = []
for dtype in DTYPES:
    for rows, hidden in SHAPES:
        x, r = torch.randn(rows, hidden, dtype=dtype), torch.randn(rows, hidden, dtype=dtype)
        w = torch.rand(hidden, dtype=dtype)
        # In place: repeated calls keep the values finite (normalised rows).
        cases.append(
            Case(
                tag(rows, hidden, dtype),
                4 * x.nbytes,
                lambda x=x, r=r, w=w: ours(x, r, w, 1e-6),
                lambda x=x, r=r, w=w: reference.fused_add_rms_norm(x, r, w, 1e-6),
                theirs and (lambda x=x, r=r, w=w: theirs(x, r, w, 1e-6)),
            )
        )
run("fused_add_rms_norm", cases, "vllm")
