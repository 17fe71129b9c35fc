"""rotary_embedding (neox, in place on q and k): ours vs vLLM's _C.rotary_embedding vs the
torch reference. Llama-like heads: 32 query / 8 KV heads of 128."""

import torch

from benchmarks.kernels.pointwise import DTYPES, Case, run, vllm_op
from vllm_forge.ops import reference

ours, theirs = torch.ops.vllm_forge.rotary_embedding, vllm_op("rotary_embedding")
cases = []
for dtype in DTYPES:
    for tokens in (1, 16, 256, 2048, 8192):
        qkv = torch.randn(tokens, (32 + 2 * 8) * 128, dtype=dtype)
        q, k = qkv[:, : 32 * 128], qkv[:, 32 * 128 : 40 * 128]
        inv = 1.0 / 10000 ** (torch.arange(0, 128, 2).float() / 128)
        ang = torch.outer(torch.arange(8192).float(), inv)
        cache = torch.cat((ang.cos(), ang.sin()), -1).to(dtype)
        pos = torch.randint(0, 8192, (tokens,))
        moved = 2 * (q.numel() + k.numel()) * q.element_size()
        cases.append(
            Case(
                f"{tokens} tok {str(dtype).removeprefix('torch.')}",
                moved,
                lambda q=q, k=k, pos=pos, c=cache: ours(pos, q, k, 128, c, True),
                lambda q=q, k=k, pos=pos, c=cache: reference.rotary_embedding(
                    pos, q, k, 128, c, True
                ),
                theirs and (lambda q=q, k=k, pos=pos, c=cache: theirs(pos, q, k, 128, c, True)),
            )
        )
run("rotary_embedding", cases, "vllm")
