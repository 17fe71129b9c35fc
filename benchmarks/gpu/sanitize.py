"""Every CUDA op once on small inputs, for compute-sanitizer (memcheck, racecheck):
run by benchmarks/gpu_suite.sh as `compute-sanitizer --tool <tool> python3 -m
benchmarks.gpu.sanitize`."""

import torch

from tests.utils import make_paged_batch
from vllm_forge.quant.format import quantize_rtn


def main() -> None:
    ops = torch.ops.vllm_forge
    with torch.device("cuda"):
        for dtype in (torch.bfloat16, torch.float32):
            batch = make_paged_batch(
                [(1, 40), (5, 5), (3, 37)],
                num_heads=8,
                num_kv_heads=2,
                head_size=64,
                block_size=16,
                dtype=dtype,
            )
            out = torch.empty_like(batch.query)
            ops.paged_attention(*batch.args(out, 0.125))
            ops.paged_attention(*batch.args(out, 0.125, 8, 20.0))
            decode = make_paged_batch(
                [(1, 300), (1, 17)],
                num_heads=8,
                num_kv_heads=2,
                head_size=128,
                block_size=16,
                dtype=dtype,
            )
            ops.paged_attention(*decode.args(torch.empty_like(decode.query), 0.1))
            key = torch.randn(3, 2, 64, dtype=dtype)
            ops.reshape_and_cache(
                batch.key_cache, batch.value_cache, key, key, torch.tensor([0, -1, 17])
            )
            x = torch.randn(5, 300, dtype=dtype)
            w = torch.randn(300, dtype=dtype)
            ops.rms_norm(torch.empty_like(x), x, w, 1e-6)
            ops.fused_add_rms_norm(x, torch.randn_like(x), w, 1e-6)
            ops.silu_and_mul(torch.empty(5, 150, dtype=dtype), x)
            ops.gelu_and_mul(torch.empty(5, 150, dtype=dtype), x, "tanh")
            q = torch.randn(4, 4 * 64, dtype=dtype)
            ops.rotary_embedding(
                torch.tensor([0, 3, 9, 1]), q, None, 64, torch.randn(10, 64, dtype=dtype), True
            )
            ops.softmax(torch.empty_like(x), x, torch.ones(5))
            ops.log_softmax(torch.empty_like(x), x, None)
            ops.topk_softmax(torch.empty(5, 2), torch.empty(5, 2, dtype=torch.int32), x, True)
            # quant_gemm: int4 with mins and bias, int8 without; K=300 ends inside a block.
            for bits, group, asym, m in ((4, 16, True, 1), (4, 128, True, 5), (8, 32, False, 3)):
                with torch.device("cpu"):
                    p = quantize_rtn(torch.randn(9, 300), bits, group, symmetric=not asym).tiled()
                bias = torch.randn(9, dtype=dtype) if asym else None
                ops.quant_gemm(
                    torch.empty(m, 9, dtype=dtype),
                    x[:m],
                    p.qweight.cuda(),
                    p.scales.cuda(),
                    p.mins.cuda() if asym else None,
                    bias,
                    bits,
                    group,
                )
    torch.cuda.synchronize()
    print("sanitize: all ops ran")


if __name__ == "__main__":
    main()
