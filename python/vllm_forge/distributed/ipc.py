"""CUDA IPC all-reduce among the GPU ranks of one node: the Python face of
csrc/cuda/ipc_all_reduce.cpp. Every rank constructs IpcAllReduce with the same world size
and an `exchange` that gathers one bytes object per rank (in rank order), e.g. vLLM's CPU
group's all_gather_object."""

from typing import Callable

import torch

# One-shot reads world_size x the tensor per rank; above this size two-shot reads less.
TWO_SHOT_BYTES = 256 << 10


class IpcAllReduce:
    def __init__(self, rank: int, world_size: int, max_bytes: int,
                 exchange: Callable[[bytes], list[bytes]]) -> None:
        self.max_bytes = max_bytes
        self.buffer = torch.ops.vllm_forge.ipc_buffer_alloc(max_bytes)
        handle = bytes(torch.ops.vllm_forge.ipc_buffer_handle(self.buffer).tolist())
        handles = exchange(handle)
        if len(handles) != world_size:
            raise ValueError(f"exchange returned {len(handles)} handles for {world_size} ranks")
        table = torch.tensor([list(h) for h in handles], dtype=torch.uint8)
        torch.ops.vllm_forge.ipc_group_open(self.buffer, table, rank)

    def eligible(self, t: torch.Tensor) -> bool:
        nbytes = t.numel() * t.element_size()
        return (t.is_cuda and t.is_contiguous() and nbytes % 16 == 0 and 0 < nbytes <= self.max_bytes
                and t.dtype in (torch.float32, torch.bfloat16, torch.float16)
                and not torch.cuda.is_current_stream_capturing())

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(t)
        nbytes = t.numel() * t.element_size()
        torch.ops.vllm_forge.ipc_all_reduce(self.buffer, out, t, nbytes > TWO_SHOT_BYTES)
        return out

    def close(self) -> None:
        if self.buffer is not None:
            torch.ops.vllm_forge.ipc_buffer_free(self.buffer)
            self.buffer = None
