"""ForgeCpuCommunicator: vLLM's CpuCommunicator with our shared-memory collectives.

Within one host, all_reduce, all_gather and reduce_scatter of contiguous CPU tensors go
through one ShmGroup per communicator; everything else (gather, tensor dicts for
pipeline parallelism, ranks on several hosts, FORGE_SHM_DISABLE=1) stays on vLLM's own
path (its shared-memory manager where it has one, else torch.distributed with gloo).
"""

import logging
import socket

import torch
from vllm.distributed.device_communicators.cpu_communicator import CpuCommunicator

from vllm_forge import envs
from vllm_forge.distributed.shm import ShmGroup, new_token

logger = logging.getLogger("vllm.forge.distributed")
REDUCIBLE = (torch.float32, torch.bfloat16, torch.float16)


class _ShmDistributed:
    """What CpuCommunicator calls as its dist_module, served by our group where it can;
    anything else goes to the module vLLM chose."""

    def __init__(self, shm: ShmGroup, fallback) -> None:
        self.shm, self.fallback = shm, fallback

    def all_reduce(self, input: torch.Tensor, group=None) -> None:
        if input.is_contiguous() and input.dtype in REDUCIBLE:
            self.shm.all_reduce(input)
        else:
            self.fallback.all_reduce(input, group=group)

    def all_gather_into_tensor(self, output: torch.Tensor, input: torch.Tensor, group=None) -> None:
        if output.is_contiguous():
            self.shm.all_gather(output, input.contiguous())
        else:
            self.fallback.all_gather_into_tensor(output, input, group=group)

    def __getattr__(self, name):
        return getattr(self.fallback, name)


class ForgeCpuCommunicator(CpuCommunicator):
    def __init__(
        self,
        cpu_group,
        device=None,
        device_group=None,
        unique_name: str = "",
        use_all2all: bool = False,
    ) -> None:
        super().__init__(cpu_group, device, device_group, unique_name, use_all2all=use_all2all)
        self.shm: ShmGroup | None = None
        if self.world_size > 1:
            self._start_shm(unique_name)

    def _start_shm(self, unique_name: str) -> None:
        """Every rank ends with a group or none: the outcome is agreed over cpu_group."""
        dist = torch.distributed
        hosts: list = [None] * self.world_size
        dist.all_gather_object(hosts, socket.gethostname(), group=self.cpu_group)
        token = [new_token()]
        dist.broadcast_object_list(token, src=self.ranks[0], group=self.cpu_group)
        shm, why = None, ""
        if envs.shm_disabled():
            why = f"{envs.FORGE_SHM_DISABLE}=1"
        elif len(set(hosts)) > 1:
            why = f"the ranks span {len(set(hosts))} hosts"
        else:
            try:
                shm = ShmGroup(
                    unique_name or "group", token[0], self.rank_in_group, self.world_size
                )
            except Exception as e:  # every rank must reach the agreement below
                why = str(e) or repr(e)  # never empty: an empty reason would read as success
        outcomes: list = [None] * self.world_size
        dist.all_gather_object(outcomes, why, group=self.cpu_group)
        failed = [f"rank {r}: {w}" for r, w in enumerate(outcomes) if w]
        if failed:
            if shm is not None:
                shm.close()
            if self.rank_in_group == 0:
                logger.warning(
                    "vllm-forge shared-memory collectives off for group %s (%s); "
                    "using vLLM's CPU communicator path",
                    unique_name,
                    "; ".join(failed),
                )
            return
        assert shm is not None  # no rank gave a reason, so ours opened
        self.shm = shm
        # vLLM's dist_module is duck-typed: torch.distributed, or a stand-in such as its own
        # _CPUSHMDistributed (which vLLM assigns the same way).
        self.dist_module = _ShmDistributed(shm, self.dist_module)  # type: ignore[assignment]
        if self.rank_in_group == 0:
            logger.info(
                "vllm-forge shared-memory collectives for group %s (%d ranks)",
                unique_name,
                self.world_size,
            )

    def reduce_scatter(self, input_: torch.Tensor, dim: int = -1) -> torch.Tensor:
        if self.shm is None or input_.dtype not in REDUCIBLE:
            return super().reduce_scatter(input_, dim)
        dim = dim + input_.dim() if dim < 0 else dim
        # The chunks are taken along `dim`: move it to the front, and back afterwards.
        x = input_.movedim(dim, 0).contiguous()
        if x.shape[0] % self.world_size:
            raise ValueError(
                f"reduce_scatter: size {x.shape[0]} of dim {dim} is not a multiple "
                f"of the world size {self.world_size}"
            )
        out = torch.empty((x.shape[0] // self.world_size,) + x.shape[1:], dtype=x.dtype)
        self.shm.reduce_scatter(out, x)
        return out.movedim(0, dim).contiguous()

    def destroy(self) -> None:
        if self.shm is not None:
            self.shm.close()
            self.shm = None
        super().destroy()
