"""A shared-memory group of local ranks: the Python face of csrc/cpu/shm_collectives.cpp.

Every rank of the group constructs ShmGroup with the same group name, job token and
world size (rank 0 creates the segment, the others attach; all wait for each other).
The token must be new for every job, so a segment left by a dead job is never joined and
two jobs on one machine never meet: make it with new_token() on one rank and share it.
"""

import secrets

import torch

from vllm_forge import envs


def new_token() -> int:
    return secrets.randbits(63)


class ShmGroup:
    def __init__(
        self,
        group: str,
        token: int,
        rank: int,
        world_size: int,
        slot_bytes: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.rank, self.world_size = rank, world_size
        self.handle = torch.ops.vllm_forge.shm_group_create(
            group,
            token,
            rank,
            world_size,
            slot_bytes or envs.shm_slot_bytes(),
            timeout_s or envs.shm_timeout_s(),
        )

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum over the ranks, in place (contiguous float32/bfloat16/float16 CPU tensor)."""
        torch.ops.vllm_forge.shm_all_reduce(self.handle, tensor)

    def all_gather(self, out: torch.Tensor, input: torch.Tensor) -> None:
        """out (world_size x input.numel() elements) = every rank's input, in rank order."""
        torch.ops.vllm_forge.shm_all_gather(self.handle, out, input)

    def reduce_scatter(self, out: torch.Tensor, input: torch.Tensor) -> None:
        """out = chunk `rank` (of world_size equal chunks) of the sum of the inputs."""
        torch.ops.vllm_forge.shm_reduce_scatter(self.handle, out, input)

    def close(self) -> None:
        if self.handle is not None:
            torch.ops.vllm_forge.shm_group_destroy(self.handle)
            self.handle = None
