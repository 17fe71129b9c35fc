"""Fake (meta) implementations of the native ops, so torch.compile and vLLM's compiled
mode can trace through them: the table's rules for every op of vllm_forge.ops.spec, and
the collectives' below. Each only checks its arguments; every op writes into tensors it
was given."""

import torch

from vllm_forge.ops import spec

for _op in spec.OPS:
    torch.library.register_fake(f"vllm_forge::{_op}")(spec.fake(_op))
del _op


@torch.library.register_fake("vllm_forge::shm_all_reduce")
def _shm_all_reduce_fake(handle, tensor) -> None:
    return None


@torch.library.register_fake("vllm_forge::shm_all_gather")
def _shm_all_gather_fake(handle, out, input) -> None:
    torch._check(
        out.dtype == input.dtype,
        lambda: (
            f"shm_all_gather: out must have the dtype of input ({input.dtype}), got {out.dtype}"
        ),
    )


@torch.library.register_fake("vllm_forge::shm_reduce_scatter")
def _shm_reduce_scatter_fake(handle, out, input) -> None:
    torch._check(
        out.dtype == input.dtype,
        lambda: (
            f"shm_reduce_scatter: out must have the dtype of input ({input.dtype}), got {out.dtype}"
        ),
    )


@torch.library.register_fake("vllm_forge::ipc_all_reduce")
def _ipc_all_reduce_fake(buffer, out, input, two_shot) -> None:
    torch._check(
        out.dtype == input.dtype,
        lambda: (
            f"ipc_all_reduce: out must have the dtype of input ({input.dtype}), got {out.dtype}"
        ),
    )


@torch.library.register_fake("vllm_forge::ipc_group_open")
def _ipc_group_open_fake(buffer, handles, rank) -> None:
    return None
