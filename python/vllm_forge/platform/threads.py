"""How many cores vLLM's CPU worker computes on.

vLLM binds each CPU worker's OpenMP threads to the cores it may use minus a reserve for
the engine core's scheduler process (VLLM_CPU_NUM_OF_RESERVED_CPU; default one core per
rank on x86 and Arm). On a machine of two CPUs that reserve is half of it: the worker
computes on one core while llama.cpp, say, uses both. Measured on the 2-core dev box (a
1B-class Q4_0 GGUF, int8 activations, compiled, 128 new tokens, vLLM's default three
processes): 15.4 -> 21.7 tokens/s for one stream and 56.6 -> 87.2 for 16 streams with no
reserve, the scheduler sharing the worker's cores. So where the process may use at most
SMALL_MACHINE_CPUS CPUs and the user has not set the variable, our platform sets it to 0.
Larger machines keep vLLM's reserve (one core of many; not measured here).
"""

import os

RESERVED = "VLLM_CPU_NUM_OF_RESERVED_CPU"
SMALL_MACHINE_CPUS = 2


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def apply() -> None:
    """No scheduler reserve on a small machine, unless the user chose one. Called from
    the platform's config hook, in the front-end process before it starts the engine
    (whose processes inherit the environment), as vLLM's CpuPlatform sets its own."""
    if RESERVED not in os.environ and usable_cpus() <= SMALL_MACHINE_CPUS:
        os.environ[RESERVED] = "0"


def describe() -> str:
    """The reserve the worker will see, and whose choice it is."""
    cpus = usable_cpus()
    if RESERVED in os.environ:
        return f"{RESERVED}={os.environ[RESERVED]} (set; {cpus} CPUs usable)"
    if cpus <= SMALL_MACHINE_CPUS:
        return f"{RESERVED}=0 set by the platform: the worker computes on all {cpus} CPUs"
    return f"vLLM's default reserve (one core per rank for the scheduler; {cpus} CPUs usable)"
