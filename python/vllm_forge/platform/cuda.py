"""ForgeCudaPlatform: vLLM's CUDA platform with our kernels.

Imported only when register() chose it (a CUDA device is present and our CUDA kernels
are built): vllm.platforms.cuda needs vLLM's CUDA build. It keeps CudaPlatform's enum
(PlatformEnum.CUDA) for the same reason the CPU platform keeps CPU: vLLM's is_cuda()
paths (graphs, NCCL, memory profiling) must stay on.
"""

from typing import TYPE_CHECKING

from vllm_forge.attention import registration
from vllm_forge.platform.hooks import ForgePlatformHooks

if TYPE_CHECKING:
    # vLLM's CudaPlatform is a variable (the NVML or non-NVML class, chosen at import),
    # which mypy cannot take as a base; both derive from CudaPlatformBase.
    from vllm.platforms.cuda import CudaPlatformBase as CudaPlatform
else:
    from vllm.platforms.cuda import CudaPlatform

registration.register_attention_backend()

GPU_WORKER = "vllm.v1.worker.gpu_worker.Worker"
FORGE_WORKER = "vllm_forge.gpu_worker.ForgeGpuWorker"


class ForgeCudaPlatform(ForgePlatformHooks, CudaPlatform):
    VLLM_WORKER = GPU_WORKER
    FORGE_WORKER = FORGE_WORKER

    @classmethod
    def get_device_communicator_cls(cls) -> str:
        return "vllm_forge.distributed.cuda_communicator.ForgeCudaCommunicator"
