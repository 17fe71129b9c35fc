"""rms_norm: ours vs vLLM's _C.rms_norm vs the torch reference. See pointwise.py."""

import torch

from benchmarks.kernels.pointwise import DTYPES, SHAPES, Case, run, tag, vllm_op
from vllm_forge.ops import reference

ours, theirs = torch.ops.vllm_forge.rms_norm, vllm_op("rms_norm")
cases = []
for dtype in DTYPES:
    for rows, hidden in SHAPES:
        x, w = torch.randn(rows, hidden, dtype=dtype), torch.rand(hidden, dtype=dtype)
        out = torch.empty_like(x)
        cases.append(
            Case(
                tag(rows, hidden, dtype),
                2 * x.nbytes,
                lambda x=x, w=w, out=out: ours(out, x, w, 1e-6),
                lambda x=x, w=w, out=out: reference.rms_norm(out, x, w, 1e-6),
                theirs and (lambda x=x, w=w, out=out: theirs(out, x, w, 1e-6)),
            )
        )
run("rms_norm", cases, "vllm")
