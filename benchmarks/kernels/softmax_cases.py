"""Cases shared by bench_softmax and bench_log_softmax: sampler-sized rows (vocabularies)
with per-row temperatures; the baseline is torch's own softmax (vLLM has no CPU kernel)."""

import torch

from benchmarks.kernels.pointwise import Case, tag

SHAPES = [(1, 32000), (16, 32000), (64, 151936), (256, 32000)]


def cases(ours, ref_fn, torch_fn):
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        for rows, cols in SHAPES:
            x = torch.randn(rows, cols, dtype=dtype)
            t = torch.rand(rows) + 0.5
            y = torch.empty_like(x)
            out.append(
                Case(
                    tag(rows, cols, dtype),
                    2 * x.nbytes,
                    lambda x=x, t=t, y=y: ours(y, x, t),
                    lambda x=x, t=t, y=y: ref_fn(y, x, t),
                    lambda x=x, t=t: torch_fn(x / t.to(x.dtype).unsqueeze(1), dim=-1),
                )
            )
    return out
