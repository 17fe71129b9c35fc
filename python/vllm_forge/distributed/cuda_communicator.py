"""ForgeCudaCommunicator: vLLM's CudaCommunicator with our CUDA IPC all-reduce for
tensors up to FORGE_IPC_MAX_BYTES (default 8 MiB) among the GPUs of one node; larger
tensors, CUDA-graph capture (our kernel's epochs are host arguments, so a captured call
could not be replayed) and multi-node groups keep vLLM's path (its custom all-reduce or
NCCL). Imported only on the CUDA platform."""

import logging
import os
import socket

import torch
from vllm.distributed.device_communicators.cuda_communicator import CudaCommunicator

from vllm_forge.distributed.ipc import IpcAllReduce

logger = logging.getLogger("vllm.forge.distributed")
FORGE_IPC_MAX_BYTES = "FORGE_IPC_MAX_BYTES"


class ForgeCudaCommunicator(CudaCommunicator):
    def __init__(
        self, cpu_group, device=None, device_group=None, unique_name: str = "", *args, **kwargs
    ) -> None:
        # CudaCommunicator's later parameters (global_ranks, ..., use_all2all) pass as given.
        super().__init__(cpu_group, device, device_group, unique_name, *args, **kwargs)
        self.ipc: IpcAllReduce | None = None
        if self.world_size > 1:
            self._start_ipc(unique_name)

    def _exchange(self, item: object) -> list:
        items: list = [None] * self.world_size
        torch.distributed.all_gather_object(items, item, group=self.cpu_group)
        return items

    def _start_ipc(self, unique_name: str) -> None:
        if len(set(self._exchange(socket.gethostname()))) > 1:
            return
        max_bytes = int(os.environ.get(FORGE_IPC_MAX_BYTES, str(8 << 20)))
        with torch.cuda.device(self.device):
            self.ipc, errors = IpcAllReduce.start(
                self.rank_in_group, self.world_size, max_bytes, self._exchange
            )
        if errors and self.rank_in_group == 0:
            logger.warning(
                "vllm-forge IPC all-reduce off for group %s: %s", unique_name, "; ".join(errors)
            )

    def all_reduce(self, input_: torch.Tensor) -> torch.Tensor:
        if self.ipc is not None and self.ipc.eligible(input_):
            return self.ipc.all_reduce(input_)
        return super().all_reduce(input_)

    def destroy(self) -> None:
        if self.ipc is not None:
            self.ipc.close()
            self.ipc = None
        super().destroy()
