"""Every kernel test runs once per device present: on the CPU always, on CUDA when a GPU
is there. Tests build their inputs with torch's factory functions, which follow the
default device this fixture sets; `@pytest.mark.cpu_only` marks tests about the CPU
kernels themselves (instruction-set variants) or CPU-side value checks."""

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_only: a test of the CPU kernels alone")


@pytest.fixture(autouse=True, params=DEVICES)
def device(request):
    if request.param != "cpu" and request.node.get_closest_marker("cpu_only"):
        pytest.skip("CPU-only test")
    if request.param == "cuda" and not torch._C._dispatch_has_kernel_for_dispatch_key(
        "vllm_forge::rms_norm", "CUDA"
    ):
        pytest.fail(
            "a GPU is present but vllm_forge._C has no CUDA kernels: rebuild with "
            "FORGE_TARGET_DEVICE=cuda"
        )
    with torch.device(request.param):
        yield request.param
