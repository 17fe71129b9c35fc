"""ForgeCudaPlatform without a GPU: the selection with the device probe faked, and the
platform's hooks on a stand-in for vLLM's CUDA platform (vllm.platforms.cuda needs
vLLM's CUDA build, which this machine cannot import)."""

import importlib
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from vllm_forge import extension
from vllm_forge.attention.registration import BACKEND_PATH
from vllm_forge.platform import common


@pytest.fixture
def fresh_platform_choice():
    common.choose_platform.cache_clear()
    yield
    common.choose_platform.cache_clear()


@pytest.mark.parametrize(
    "targets,opt_in,expected",
    [
        (("cpu", "cuda"), "1", common.CUDA_PLATFORM),
        (("cpu", "cuda"), "0", None),  # unproven CUDA kernels: opt-in only (FORGE_CUDA)
        (("cpu",), "1", None),
    ],
)
def test_gpu_machine_choice(monkeypatch, fresh_platform_choice, targets, opt_in, expected):
    monkeypatch.setenv("FORGE_CUDA", opt_in)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        extension, "load", lambda: extension.ExtensionStatus(True, "loaded", targets)
    )
    assert common.choose_platform().platform == expected


class StandInCudaPlatform:
    """What ForgeCudaPlatform's hooks call on vLLM's CudaPlatform, recorded."""

    device_type = "cuda"
    calls: list[str] = []

    @classmethod
    def get_attn_backend_cls(cls, selected_backend, attn_selector_config, num_heads=None):
        return "vllm.v1.attention.backends.flash_attn.FlashAttentionBackend"

    @classmethod
    def check_and_update_config(cls, vllm_config):
        cls.calls.append("check_and_update_config")
        if vllm_config.parallel_config.worker_cls == "auto":
            vllm_config.parallel_config.worker_cls = "vllm.v1.worker.gpu_worker.Worker"


@pytest.fixture
def cuda_platform_module(monkeypatch):
    stand_in = types.ModuleType("vllm.platforms.cuda")
    stand_in.CudaPlatform = StandInCudaPlatform
    monkeypatch.setitem(sys.modules, "vllm.platforms.cuda", stand_in)
    monkeypatch.delitem(sys.modules, "vllm_forge.platform.cuda", raising=False)
    module = importlib.import_module("vllm_forge.platform.cuda")
    yield module
    sys.modules.pop("vllm_forge.platform.cuda", None)


def test_cuda_platform_sets_worker_and_custom_ops(cuda_platform_module):
    platform = cuda_platform_module.ForgeCudaPlatform
    assert platform.device_type == "cuda"
    config = SimpleNamespace(
        parallel_config=SimpleNamespace(worker_cls="auto"),
        compilation_config=SimpleNamespace(custom_ops=["-gelu_and_mul"]),
    )
    platform.check_and_update_config(config)
    assert config.parallel_config.worker_cls == "vllm_forge.gpu_worker.ForgeGpuWorker"
    assert config.compilation_config.custom_ops == [
        "-gelu_and_mul",
        "+silu_and_mul",
        "+rotary_embedding",
    ]
    assert "check_and_update_config" in StandInCudaPlatform.calls


def test_cuda_platform_picks_forge_attn(cuda_platform_module):
    from vllm.v1.attention.selector import AttentionSelectorConfig

    fields = AttentionSelectorConfig._fields
    config = AttentionSelectorConfig(**{f: None for f in fields})._replace(
        head_size=128,
        dtype=torch.bfloat16,
        kv_cache_dtype="auto",
        block_size=16,
        use_mla=False,
        has_sink=False,
        use_sparse=False,
        use_mm_prefix=False,
        attn_type="decoder",
    )
    platform = cuda_platform_module.ForgeCudaPlatform
    assert platform.get_attn_backend_cls(None, config) == BACKEND_PATH


def test_communicators_resolve(cuda_platform_module):
    """Both platforms name a communicator class that imports and extends vLLM's."""
    from vllm.distributed.device_communicators.cpu_communicator import CpuCommunicator
    from vllm.distributed.device_communicators.cuda_communicator import CudaCommunicator
    from vllm.utils.import_utils import resolve_obj_by_qualname

    from vllm_forge.platform.cpu import ForgeCpuPlatform

    cuda_cls = resolve_obj_by_qualname(
        cuda_platform_module.ForgeCudaPlatform.get_device_communicator_cls()
    )
    cpu_cls = resolve_obj_by_qualname(ForgeCpuPlatform.get_device_communicator_cls())
    assert issubclass(cuda_cls, CudaCommunicator) and cuda_cls.__name__ == "ForgeCudaCommunicator"
    assert issubclass(cpu_cls, CpuCommunicator) and cpu_cls.__name__ == "ForgeCpuCommunicator"
