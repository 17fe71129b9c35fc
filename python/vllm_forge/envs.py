"""Environment variables read by vllm-forge.

None start with ``VLLM_``: vLLM warns about unknown variables in its own namespace.
"""

import os

# "1" makes register() decline, so vLLM runs on its builtin platform.
FORGE_DISABLE = "FORGE_DISABLE"
# A folder where every process writes its per-op call counters (see report.py).
FORGE_KERNEL_REPORT_DIR = "FORGE_KERNEL_REPORT_DIR"


def disabled() -> bool:
    return os.environ.get(FORGE_DISABLE, "0").strip().lower() in ("1", "true", "yes", "on")


def kernel_report_dir() -> str | None:
    return os.environ.get(FORGE_KERNEL_REPORT_DIR) or None
