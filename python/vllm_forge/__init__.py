"""vllm-forge: a vLLM platform plugin with its own kernel library.

vLLM calls `register()` through the `vllm.platform_plugins` entry point (name
"forge") in every process it starts, several times each; see platform/common.py.
"""

__version__ = "0.1.0"


def register() -> str | None:
    """Return the qualified name of our platform class, or None to decline."""
    from vllm_forge.platform.common import choose_platform

    return choose_platform().platform
