"""What each rank process of tests/distributed runs (imported by spawned children)."""

import io
import os
import time

import torch

from vllm_forge import extension
from vllm_forge.distributed.shm import ShmGroup


def inputs(rank: int, numel: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Rank r's input: reproducible from (rank, seed), so the parent can rebuild it."""
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    if dtype.is_floating_point:
        return (torch.randn(numel, generator=gen) * 3).to(dtype)
    return torch.randint(-1000, 1000, (numel,), generator=gen).to(dtype)


def all_reduce(group: ShmGroup, numel, dtype, seed=0, calls=1):
    out = None
    for call in range(calls):
        out = inputs(group.rank, numel, dtype, seed + call)
        group.all_reduce(out)
    return out


def all_gather(group: ShmGroup, numel, dtype, seed=0):
    out = torch.empty(group.world_size * numel, dtype=dtype)
    group.all_gather(out, inputs(group.rank, numel, dtype, seed))
    return out


def reduce_scatter(group: ShmGroup, numel, dtype, seed=0):
    out = torch.empty(numel // group.world_size, dtype=dtype)
    group.reduce_scatter(out, inputs(group.rank, numel, dtype, seed))
    return out


def dies_before_call(group: ShmGroup, numel, dtype):
    if group.rank == 1:
        os._exit(0)  # gone without a word, as a crashed process would be
    return all_reduce(group, numel, dtype)


def stalls_before_call(group: ShmGroup, numel, dtype, stall_s):
    if group.rank == 1:
        time.sleep(stall_s)
    return all_reduce(group, numel, dtype)


def mismatched(group: ShmGroup, numel, dtype):
    if group.rank == 1:
        numel, dtype = 2 * numel, torch.float16
    return all_reduce(group, numel, dtype)


SCENARIOS = {
    f.__name__: f
    for f in (
        all_reduce,
        all_gather,
        reduce_scatter,
        dies_before_call,
        stalls_before_call,
        mismatched,
    )
}


def run(rank, world, token, group_name, slot_bytes, timeout_s, scenario, kwargs, queue):
    torch.set_num_threads(1)
    start = time.monotonic()
    try:
        assert extension.load().loaded, extension.load().reason
        group = ShmGroup(group_name, token, rank, world, slot_bytes, timeout_s)
        start = time.monotonic()
        result = SCENARIOS[scenario](group, **kwargs)
        # As bytes: a tensor sent through the queue would share memory with this process,
        # which is about to exit.
        buffer = io.BytesIO()
        torch.save(result, buffer)
        queue.put((rank, "ok", buffer.getvalue(), time.monotonic() - start))
    except Exception as e:  # the parent asserts on the message
        queue.put((rank, "error", f"{type(e).__name__}: {e}", time.monotonic() - start))
