"""topk_softmax (MoE routing): ours vs torch (softmax + topk + renormalise) vs the
reference. vLLM has no CPU kernel for it."""

import torch

from benchmarks.kernels.pointwise import Case, run
from vllm_forge.ops import reference

ours = torch.ops.vllm_forge.topk_softmax


def torch_routing(g, k):
    w, ids = torch.softmax(g.float(), -1).topk(k, -1)
    return w / w.sum(-1, keepdim=True), ids


cases = []
for tokens, experts, k in ((1, 64, 6), (16, 64, 6), (256, 128, 8), (2048, 64, 6), (8192, 256, 8)):
    g = torch.randn(tokens, experts, dtype=torch.bfloat16)
    w, ids = torch.empty(tokens, k), torch.empty(tokens, k, dtype=torch.int32)
    cases.append(
        Case(
            f"{tokens} tok, {experts} experts, k={k}",
            g.nbytes + w.nbytes + ids.nbytes,
            lambda g=g, w=w, ids=ids: ours(w, ids, g, True),
            lambda g=g, w=w, ids=ids: reference.topk_softmax(w, ids, g, True),
            lambda g=g, k=k: torch_routing(g, k),
        )
    )
run("topk_softmax", cases, "torch")
