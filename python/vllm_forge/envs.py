"""Environment variables read by vllm-forge.

None start with ``VLLM_``: vLLM warns about unknown variables in its own namespace.
"""

import os

# "1" makes register() decline, so vLLM runs on its builtin platform.
FORGE_DISABLE = "FORGE_DISABLE"
# A folder where every process writes its per-op call counters (see report.py).
FORGE_KERNEL_REPORT_DIR = "FORGE_KERNEL_REPORT_DIR"


# "1" opts in to our CUDA platform while its kernels are unproven on a GPU (see
# platform/common.py: CUDA_VALIDATED).
FORGE_CUDA = "FORGE_CUDA"


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def cuda_opt_in() -> bool:
    return _flag(FORGE_CUDA)


def disabled() -> bool:
    return _flag(FORGE_DISABLE)


def kernel_report_dir() -> str | None:
    return os.environ.get(FORGE_KERNEL_REPORT_DIR) or None


# Provider order for every op ("triton,torch"), and per op (FORGE_KERNELS_PAGED_ATTENTION).
FORGE_KERNELS = "FORGE_KERNELS"
PROVIDERS = ("native", "triton", "torch")


def kernel_order(op: str, known_ops: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """(providers to try for `op`, in order; the variable that set it, or "default").

    Raises ValueError for an unknown provider, an empty or repeating list, or a
    FORGE_KERNELS_<NAME> variable that names no op."""
    prefix = FORGE_KERNELS + "_"
    valid_vars = {prefix + name.upper() for name in known_ops}
    for var in os.environ:
        if var.startswith(prefix) and var not in valid_vars:
            raise ValueError(
                f"{var} names no op; per-op variables are {', '.join(sorted(valid_vars))}"
            )
    for var in (prefix + op.upper(), FORGE_KERNELS):
        value = os.environ.get(var)
        if value is None:
            continue
        order = tuple(p.strip().lower() for p in value.split(",") if p.strip())
        unknown = [p for p in order if p not in PROVIDERS]
        if unknown or not order:
            raise ValueError(
                f"{var}={value!r}: unknown provider {unknown[0] if unknown else '(empty)'!r}; "
                f"valid providers: {', '.join(PROVIDERS)} (a comma-separated order)"
            )
        if len(set(order)) != len(order):
            raise ValueError(f"{var}={value!r} lists a provider twice")
        return order, var
    return PROVIDERS, "default"


# Shared-memory collectives: seconds a rank waits for the others before failing, the
# bytes each rank moves per step, and "1" to use vLLM's own CPU communicator path instead.
FORGE_SHM_TIMEOUT_S = "FORGE_SHM_TIMEOUT_S"
FORGE_SHM_SLOT_BYTES = "FORGE_SHM_SLOT_BYTES"
FORGE_SHM_DISABLE = "FORGE_SHM_DISABLE"


def shm_timeout_s() -> float:
    value = float(os.environ.get(FORGE_SHM_TIMEOUT_S, "300"))
    if not value > 0:
        raise ValueError(f"{FORGE_SHM_TIMEOUT_S} must be > 0 seconds, got {value}")
    return value


def shm_slot_bytes() -> int:
    # 1 MiB: measured against 256 KiB (1.2-1.6x faster at 1-4 MB once each rank sums its
    # own part from its tensor, fewer steps and barriers) and 4 MiB (up to 2x slower at
    # 1-16 MB: the slots no longer stay in cache between writer and readers).
    value = int(os.environ.get(FORGE_SHM_SLOT_BYTES, str(1 << 20)))
    if value <= 0 or value % 64:
        raise ValueError(f"{FORGE_SHM_SLOT_BYTES} must be a positive multiple of 64, got {value}")
    return value


def shm_disabled() -> bool:
    return os.environ.get(FORGE_SHM_DISABLE, "0").strip().lower() in ("1", "true", "yes", "on")
