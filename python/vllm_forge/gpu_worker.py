"""ForgeGpuWorker: vLLM's GPU worker, plus our layer replacements registered in the
worker process before the model is built (platform hooks do not run in workers)."""

from vllm.v1.worker.gpu_worker import Worker

from vllm_forge.layers import register_custom_ops


class ForgeGpuWorker(Worker):
    def __init__(self, *args, **kwargs) -> None:
        register_custom_ops()
        super().__init__(*args, **kwargs)
