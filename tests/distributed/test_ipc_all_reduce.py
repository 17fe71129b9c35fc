"""CUDA IPC all-reduce (ipc_buffer_alloc, ipc_buffer_handle, ipc_group_open,
ipc_all_reduce, ipc_buffer_free): on a GPU, 2 rank processes on one device, one-shot
and two-shot sizes, against the fp32 sum in rank order (bitwise). NCCL cannot put two
ranks on one GPU, so the reference is computed here rather than by NCCL. Without a GPU
only the build's refusal is checked; benchmarks/gpu_suite.sh runs the rest."""

import multiprocessing as mp

import pytest
import torch

from tests.distributed import ipc_ranks
from tests.distributed.test_shm_collectives import expected_sum
from vllm_forge import extension

CUDA_BUILD = "cuda" in extension.load().targets
GPU = torch.cuda.is_available()
SIZES = [8, 1000 * 8, 300_000, (8 << 20) // 4]  # elements: one-shot .. two-shot at the limit


@pytest.mark.skipif(CUDA_BUILD, reason="checks the CPU-only build")
def test_cpu_build_refuses_ipc_ops_clearly():
    with pytest.raises(NotImplementedError, match="ipc_buffer_alloc"):
        torch.ops.vllm_forge.ipc_buffer_alloc(1024)


@pytest.mark.skipif(not GPU, reason="needs a GPU (run by benchmarks/gpu_suite.sh)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_two_ranks_on_one_gpu(dtype):
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue() for _ in range(2)]
    results = ctx.Queue()
    procs = [
        ctx.Process(target=ipc_ranks.run, args=(r, 2, 0, queues, SIZES, dtype, results))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    out = dict(
        (rank, (status, value)) for rank, status, value in (results.get(timeout=300) for _ in procs)
    )
    for p in procs:
        p.join(timeout=60)
    for rank in (0, 1):
        status, value = out[rank]
        assert status == "ok", value
        for numel in SIZES:
            got = torch.tensor(value[numel], dtype=torch.float32).to(dtype)
            assert torch.equal(got, expected_sum(2, numel, dtype, seed=numel)), (rank, numel)
