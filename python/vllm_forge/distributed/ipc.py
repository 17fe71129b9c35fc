"""CUDA IPC all-reduce among the GPU ranks of one node: the Python face of
csrc/cuda/ipc_all_reduce.cpp.

Every rank calls IpcAllReduce.start with the same world size and an `exchange` that
gathers one picklable value per rank, in rank order (vLLM's CPU group's
all_gather_object). start makes the same exchanges on every rank whatever happens, so
either every rank ends with an IpcAllReduce or every rank gets None and the reasons.
"""

from collections.abc import Callable

import torch

# One-shot reads world_size x the tensor per rank; above this size two-shot reads less.
TWO_SHOT_BYTES = 256 << 10
REDUCIBLE = (torch.float32, torch.bfloat16, torch.float16)


class IpcAllReduce:
    def __init__(self, buffer: int, max_bytes: int) -> None:
        self.buffer: int | None = buffer  # None once closed
        self.max_bytes = max_bytes

    @classmethod
    def start(
        cls, rank: int, world_size: int, max_bytes: int, exchange: Callable[[object], list]
    ) -> "tuple[IpcAllReduce | None, list[str]]":
        ops = torch.ops.vllm_forge
        buffer, handle, error = None, b"", ""
        try:
            buffer = ops.ipc_buffer_alloc(max_bytes)
            handle = bytes(ops.ipc_buffer_handle(buffer).tolist())
        except Exception as e:  # every rank must reach the exchanges below
            error = f"rank {rank}: {e}"
        handles = exchange(handle)
        if not error and all(handles):
            try:
                table = torch.tensor([list(h) for h in handles], dtype=torch.uint8)
                ops.ipc_group_open(buffer, table, rank)
            except Exception as e:
                error = f"rank {rank}: {e}"
        elif not error:
            error = ""  # another rank failed; its reason comes in the next exchange
        errors = [e for e in exchange(error) if e]
        if errors or not all(handles):
            if buffer is not None:
                ops.ipc_buffer_free(buffer)
            return None, errors or ["a rank could not allocate its buffer"]
        assert buffer is not None  # a failed allocation set `error`, hence `errors` above
        return cls(buffer, max_bytes), []

    def eligible(self, t: torch.Tensor) -> bool:
        nbytes = t.numel() * t.element_size()
        return (
            t.is_cuda
            and t.is_contiguous()
            and t.dtype in REDUCIBLE
            and nbytes % 16 == 0
            and 0 < nbytes <= self.max_bytes
            and t.data_ptr() % 16 == 0
            and not torch.cuda.is_current_stream_capturing()
        )

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(t)
        nbytes = t.numel() * t.element_size()
        torch.ops.vllm_forge.ipc_all_reduce(self.buffer, out, t, nbytes > TWO_SHOT_BYTES)
        return out

    def close(self) -> None:
        if self.buffer is not None:
            torch.ops.vllm_forge.ipc_buffer_free(self.buffer)
            self.buffer = None
