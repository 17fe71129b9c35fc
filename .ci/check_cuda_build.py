"""The CUDA compile-and-link check of CI, run with the CUDA build of torch on a machine
without a GPU: the installed vllm_forge imports, says it carries CUDA kernels, and every
op has a kernel registered for the CUDA dispatch key (and still for CPU)."""

import sys

import torch

from vllm_forge import extension, ops


def main() -> int:
    status = extension.load()
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); {status.reason}")
    problems = []
    if not status.loaded:
        problems.append(f"extension did not load: {status.reason}")
    elif "cuda" not in status.targets:
        problems.append(f"built without CUDA kernels: targets {status.targets}")
    else:
        wanted = [(op, key) for op in ops.OPS for key in ("CUDA", "CPU")]
        wanted += [("ipc_all_reduce", "CUDA"), ("ipc_group_open", "CPU"),
                   ("ipc_buffer_alloc", "CompositeExplicitAutograd"),
                   ("shm_all_reduce", "CPU"), ("shm_group_create", "CompositeExplicitAutograd")]
        for op, key in wanted:
            if not torch._C._dispatch_has_kernel_for_dispatch_key(f"vllm_forge::{op}", key):
                problems.append(f"vllm_forge::{op} has no {key} kernel")
    for p in problems:
        print("FAIL:", p)
    print("CUDA build check:", "FAILED" if problems else
          f"ok, {len(ops.OPS)} ops on CUDA and CPU, collectives registered")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
