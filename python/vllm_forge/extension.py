"""Loading the compiled op library ``vllm_forge._C``, once per process.

The module is built against one torch version (C++ ABI); loading it beside another
torch fails in obscure ways, so that is checked first and reported plainly.
"""

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class ExtensionStatus:
    loaded: bool
    reason: str  # why it did not load, or a one-line description of what loaded
    targets: tuple[str, ...] = ()
    built_with_torch: str = ""


def _release(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0' (local build tags do not change the ABI)."""
    return version.split("+", 1)[0]


@functools.cache
def load() -> ExtensionStatus:
    import torch

    try:
        from vllm_forge import _build_info
    except ImportError:
        return ExtensionStatus(
            False,
            "vllm_forge._C is not built (no _build_info.py); "
            "build with `pip install --no-build-isolation -e .`",
        )
    if _release(torch.__version__) != _release(_build_info.TORCH_VERSION):
        return ExtensionStatus(
            False,
            f"vllm_forge._C was built against torch {_build_info.TORCH_VERSION} but torch "
            f"{torch.__version__} is installed; rebuild vllm-forge in this environment",
            _build_info.TARGETS,
            _build_info.TORCH_VERSION,
        )
    try:
        from vllm_forge import _C  # noqa: F401  (importing registers the ops)
    except (ImportError, OSError) as e:
        return ExtensionStatus(
            False,
            f"vllm_forge._C failed to load: {e}",
            _build_info.TARGETS,
            _build_info.TORCH_VERSION,
        )
    from vllm_forge.ops import fake  # noqa: F401  (fake impls belong with the schemas)

    return ExtensionStatus(
        True,
        f"vllm_forge._C loaded (targets: {', '.join(_build_info.TARGETS)})",
        _build_info.TARGETS,
        _build_info.TORCH_VERSION,
    )


def cpu_kernel_isa() -> tuple[str, str]:
    """(variant in use or "error: ...", comma-separated variants this CPU can run),
    asked of the loaded library through two plain C functions."""
    import ctypes

    if not load().loaded:
        return "not loaded", ""
    from vllm_forge import _C

    lib = ctypes.CDLL(_C.__file__)
    lib.forge_cpu_kernel_isa.restype = ctypes.c_char_p
    lib.forge_cpu_available_isas.restype = ctypes.c_char_p
    return lib.forge_cpu_kernel_isa().decode(), lib.forge_cpu_available_isas().decode()
