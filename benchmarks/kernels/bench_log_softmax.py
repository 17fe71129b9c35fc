"""log_softmax with per-row temperature: ours vs torch.log_softmax vs the reference."""

import torch

from benchmarks.kernels.pointwise import run
from benchmarks.kernels.softmax_cases import cases
from vllm_forge.ops import reference

run(
    "log_softmax",
    cases(torch.ops.vllm_forge.log_softmax, reference.log_softmax, torch.log_softmax),
    "torch",
)
