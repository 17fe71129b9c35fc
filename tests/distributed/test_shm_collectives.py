"""The shared-memory collectives (shm_all_reduce, shm_all_gather, shm_reduce_scatter) with
real rank processes: results against the sum / concatenation computed here, bitwise
agreement across ranks, and every failure mode the issue names: a rank that dies or
stalls, ranks that disagree, a leftover segment, two jobs side by side, bad inputs."""

import io
import multiprocessing as mp
import os
import queue as queue_module
import re
from pathlib import Path

import pytest
import torch

from tests.distributed import ranks
from vllm_forge.distributed.shm import ShmGroup, new_token

SMALL_SLOT = 1024  # bytes per rank and step: forces many steps on small tensors


def launch(
    world, scenario, *, slot_bytes=SMALL_SLOT, timeout_s=20.0, token=None, group="test", **kwargs
):
    """Run `scenario` on `world` rank processes; {rank: (status, value, seconds)}."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    token = new_token() if token is None else token
    procs = [
        ctx.Process(
            target=ranks.run,
            args=(r, world, token, group, slot_bytes, timeout_s, scenario, kwargs, results),
        )
        for r in range(world)
    ]
    for p in procs:
        p.start()
    out = {}
    try:
        while len(out) < world:
            try:
                rank, status, value, seconds = results.get(timeout=120)
            except queue_module.Empty:
                break  # a rank that died without reporting (the scenario may want that)
            if status == "ok":
                value = torch.load(io.BytesIO(value))
            out[rank] = (status, value, seconds)
            if scenario == "dies_before_call" and len(out) == world - 1:
                break
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return out


def expected_sum(world, numel, dtype, seed=0):
    total = ranks.inputs(0, numel, dtype, seed).float()
    for r in range(1, world):
        total = total + ranks.inputs(r, numel, dtype, seed).float()
    return total.to(dtype)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_all_reduce(world, dtype):
    numel = 3001  # several steps of SMALL_SLOT, a ragged last one
    out = launch(world, "all_reduce", numel=numel, dtype=dtype, calls=3)
    assert all(status == "ok" for status, _, _ in out.values()), out
    want = expected_sum(world, numel, dtype, seed=2)  # the last of the three calls
    for rank, (_, got, _) in out.items():
        assert torch.equal(got, want), f"rank {rank} differs from the sum in rank order"


def test_all_reduce_sizes_and_big_slots():
    for numel in (0, 1, 17, 70000):
        out = launch(2, "all_reduce", slot_bytes=64 << 10, numel=numel, dtype=torch.bfloat16)
        want = expected_sum(2, numel, torch.bfloat16)
        assert all(torch.equal(v, want) for _, v, _ in out.values()), numel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.uint8])
def test_all_gather(dtype):
    numel = 1000
    out = launch(3, "all_gather", numel=numel, dtype=dtype)
    want = torch.cat([ranks.inputs(r, numel, dtype) for r in range(3)])
    for rank, (status, got, _) in out.items():
        assert status == "ok" and torch.equal(got, want), (rank, status)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_reduce_scatter(dtype):
    numel = 2 * 1537
    out = launch(2, "reduce_scatter", numel=numel, dtype=dtype)
    total = expected_sum(2, numel, dtype)
    for rank, (status, got, _) in out.items():
        assert status == "ok", got
        assert torch.equal(got, total[rank * numel // 2 : (rank + 1) * numel // 2])


def test_dead_rank_is_reported_quickly():
    out = launch(2, "dies_before_call", timeout_s=60.0, numel=100, dtype=torch.float32)
    status, message, seconds = out[0]
    assert status == "error"
    assert "rank(s) 1 (pid" in message and "exited) died while" in message, message
    assert seconds < 10  # noticed from the pid, long before the 60 s timeout


def test_stalled_rank_times_out():
    out = launch(
        2, "stalls_before_call", timeout_s=1.0, numel=100, dtype=torch.float32, stall_s=6.0
    )
    status, message, seconds = out[0]
    assert status == "error"
    assert "timed out after 1.0" in message and "waiting for rank(s) 1 (pid" in message, message
    assert seconds < 5


def test_mismatched_calls_are_reported_on_every_rank():
    out = launch(2, "mismatched", numel=100, dtype=torch.float32)
    for rank in (0, 1):
        status, message, _ = out[rank]
        assert status == "error" and "ranks disagree" in message, (rank, message)
    assert "called all_reduce of 100 elements" in out[0][1]
    assert "called all_reduce of 200 elements" in out[0][1]


def test_leftover_segment_is_never_joined():
    token = new_token()
    name = f"forge-{token:016x}-test"
    stale = Path("/dev/shm") / name
    stale.write_bytes(b"\0" * 4096)  # what a dead job with this token would have left
    try:
        out = launch(2, "all_reduce", token=token, timeout_s=3.0, numel=10, dtype=torch.float32)
    finally:
        stale.unlink()
    assert out[0][0] == "error" and "exists; it is never joined" in out[0][1], out[0]
    assert out[1][0] == "error", out[1]  # rank 1 found no live segment and gave up


def test_two_jobs_side_by_side():
    """Same group name, different tokens: each job sums its own ranks' inputs."""
    ctx_results = [launch(2, "all_reduce", numel=500, dtype=torch.float32, seed=s) for s in (1, 2)]
    for seed, out in zip((1, 2), ctx_results):
        want = expected_sum(2, 500, torch.float32, seed)
        assert all(torch.equal(v, want) for _, v, _ in out.values())


def test_group_handles():
    """shm_group_create returns a fresh handle per group; shm_group_destroy forgets it
    (twice is harmless) and later calls with it fail."""
    ops = torch.ops.vllm_forge
    a = ops.shm_group_create("handles", new_token(), 0, 1, 4096, 5.0)
    b = ops.shm_group_create("handles", new_token(), 0, 1, 4096, 5.0)
    assert a != b
    ops.shm_group_destroy(a)
    ops.shm_group_destroy(a)
    with pytest.raises(RuntimeError, match=f"no shared-memory group with handle {a}"):
        ops.shm_all_reduce(a, torch.zeros(2))
    ops.shm_all_reduce(b, torch.zeros(2))
    ops.shm_group_destroy(b)


def test_segment_name_is_gone_once_attached():
    token = new_token()
    group = ShmGroup("solo", token, 0, 1, 4096, 5.0)
    try:
        assert not list(Path("/dev/shm").glob(f"forge-{token:016x}-*"))
        t = torch.arange(10, dtype=torch.float32)
        group.all_reduce(t)  # world size 1: the identity
        assert torch.equal(t, torch.arange(10, dtype=torch.float32))
    finally:
        group.close()


@pytest.fixture
def solo():
    group = ShmGroup("bad-inputs", new_token(), 0, 1, 4096, 5.0)
    yield group
    group.close()


def test_bad_inputs(solo):
    ops = torch.ops.vllm_forge
    with pytest.raises(RuntimeError, match="shm_all_reduce: tensor must be contiguous"):
        ops.shm_all_reduce(solo.handle, torch.zeros(4, 4).t())
    with pytest.raises(
        RuntimeError,
        match="shm_all_reduce: tensor must have dtype float32, bfloat16 or float16, got Long",
    ):
        ops.shm_all_reduce(solo.handle, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(
        RuntimeError, match="shm_all_reduce: no shared-memory group with handle 999"
    ):
        ops.shm_all_reduce(999, torch.zeros(4))
    with pytest.raises(
        RuntimeError,
        match=r"shm_all_gather: out must hold world_size \(1\) x "
        r"input.numel\(\) \(4\) elements, got 5",
    ):
        ops.shm_all_gather(solo.handle, torch.zeros(5), torch.zeros(4))
    with pytest.raises(RuntimeError, match="shm_all_gather: out must have the dtype of input"):
        ops.shm_all_gather(solo.handle, torch.zeros(4, dtype=torch.float16), torch.zeros(4))
    with pytest.raises(
        RuntimeError,
        match=r"shm_reduce_scatter: input must hold world_size \(1\) "
        r"x out.numel\(\) \(3\) elements, got 4",
    ):
        ops.shm_reduce_scatter(solo.handle, torch.zeros(3), torch.zeros(4))
    with pytest.raises(RuntimeError, match="slot_bytes must be a positive multiple of 64, got 100"):
        ShmGroup("x", new_token(), 0, 1, 100, 1.0)
    with pytest.raises(RuntimeError, match=r"rank 2 outside \[0, 2\)"):
        ShmGroup("x", new_token(), 2, 2, 4096, 1.0)


def test_opcheck(solo):
    for op, args in (
        (torch.ops.vllm_forge.shm_all_reduce, (solo.handle, torch.randn(8))),
        (torch.ops.vllm_forge.shm_all_gather, (solo.handle, torch.empty(8), torch.randn(8))),
        (torch.ops.vllm_forge.shm_reduce_scatter, (solo.handle, torch.empty(8), torch.randn(8))),
    ):
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


def test_no_segments_left_behind():
    """Runs last: none of the groups above (including the failed ones) left a name."""
    ours = re.compile(r"forge-[0-9a-f]{16}-")
    assert not [p for p in os.listdir("/dev/shm") if ours.match(p)]
