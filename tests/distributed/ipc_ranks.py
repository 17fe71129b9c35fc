"""What each rank process of test_ipc_all_reduce runs (two processes may share one GPU:
CUDA IPC works within a device)."""

import torch

from tests.distributed.ranks import inputs
from vllm_forge import extension
from vllm_forge.distributed.ipc import IpcAllReduce


def run(rank, world, device, handle_queues, sizes, dtype, results):
    try:
        assert extension.load().loaded, extension.load().reason
        torch.cuda.set_device(device)

        def exchange(mine):
            for r in range(world):
                if r != rank:
                    handle_queues[r].put((rank, mine))
            got = {rank: mine}
            while len(got) < world:
                r, h = handle_queues[rank].get(timeout=60)
                got[r] = h
            return [got[r] for r in range(world)]

        ipc, errors = IpcAllReduce.start(rank, world, 8 << 20, exchange)
        assert ipc is not None, errors
        out = {}
        for numel in sizes:
            x = inputs(rank, numel, dtype, seed=numel).cuda()
            out[numel] = ipc.all_reduce(x).cpu()
        torch.cuda.synchronize()
        ipc.close()
        results.put((rank, "ok", {k: v.tolist() for k, v in out.items()}))
    except Exception as e:  # reported to the parent
        results.put((rank, "error", f"{type(e).__name__}: {e}"))
