"""ForgeCpuPlatform: vLLM's CPU platform with our kernels.

It keeps CpuPlatform's enum (PlatformEnum.CPU): with OOT, vLLM would switch off every
is_cpu() path (thread binding, CPU GEMM dispatch, clean shutdown).
"""

import logging

from vllm.platforms.cpu import CpuPlatform

from vllm_forge.attention import registration

logger = logging.getLogger("vllm.forge.platform")

# Importing the platform happens in every vLLM process, before any config is parsed:
# the right moment to make FORGE_ATTN a member of AttentionBackendEnum.
registration.register_attention_backend()


class ForgeCpuPlatform(CpuPlatform):
    @classmethod
    def get_attn_backend_cls(cls, selected_backend, attn_selector_config, num_heads=None) -> str:
        path = registration.select_attention_backend(selected_backend, attn_selector_config)
        if path is not None:
            return path
        return super().get_attn_backend_cls(selected_backend, attn_selector_config, num_heads)

    @classmethod
    def import_kernels(cls) -> None:
        super().import_kernels()
        from vllm_forge import extension

        status = extension.load()
        if not status.loaded:  # register() checked this; only a broken install gets here
            raise RuntimeError(f"vllm-forge: {status.reason}")
