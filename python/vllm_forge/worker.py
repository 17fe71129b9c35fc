"""ForgeCpuWorker: vLLM's CPUWorker, plus our layer replacements registered in the
worker process before the model is built (platform hooks do not run in workers)."""

from vllm.v1.worker.cpu_worker import CPUWorker

from vllm_forge.layers import register_custom_ops


class ForgeCpuWorker(CPUWorker):
    def __init__(self, *args, **kwargs) -> None:
        register_custom_ops()
        super().__init__(*args, **kwargs)
