"""ForgeCpuPlatform: vLLM's CPU platform with our kernels.

It keeps CpuPlatform's enum (PlatformEnum.CPU): with OOT, vLLM would switch off every
is_cpu() path (thread binding, CPU GEMM dispatch, clean shutdown).
"""

from vllm.platforms.cpu import CpuPlatform

from vllm_forge.attention import registration
from vllm_forge.platform import threads
from vllm_forge.platform.hooks import ForgePlatformHooks

# Importing the platform happens in every vLLM process, before any config is parsed:
# the right moment to make FORGE_ATTN a member of AttentionBackendEnum.
registration.register_attention_backend()

CPU_WORKER = "vllm.v1.worker.cpu_worker.CPUWorker"
FORGE_WORKER = "vllm_forge.worker.ForgeCpuWorker"


class ForgeCpuPlatform(ForgePlatformHooks, CpuPlatform):
    VLLM_WORKER = CPU_WORKER
    FORGE_WORKER = FORGE_WORKER

    @classmethod
    def check_and_update_config(cls, vllm_config) -> None:
        threads.apply()  # before the engine's processes start: they inherit it
        super().check_and_update_config(vllm_config)

    @classmethod
    def get_device_communicator_cls(cls) -> str:
        return "vllm_forge.distributed.communicator.ForgeCpuCommunicator"
