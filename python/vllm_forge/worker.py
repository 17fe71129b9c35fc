"""ForgeCpuWorker: vLLM's CPUWorker, plus our layer replacements registered in the
worker process before the model is built (platform hooks do not run in workers)."""

from vllm.v1.worker.cpu_worker import CPUWorker

from vllm_forge.layers import register_custom_ops
from vllm_forge.moe import register_moe_runner
from vllm_forge.quant.linear_kernel import register as register_linear_kernels


class ForgeCpuWorker(CPUWorker):
    def __init__(self, *args, **kwargs) -> None:
        register_custom_ops()
        register_moe_runner()  # MoE routing (CPURouter's softmax top-k) on our topk_softmax
        # GPTQ/AWQ/compressed-tensors W4A16 and W8A16 layers: our quant_gemm (appended to
        # vLLM's CPU kernel list: vLLM's own stays ahead unless VLLM_DISABLED_KERNELS).
        register_linear_kernels()
        super().__init__(*args, **kwargs)
