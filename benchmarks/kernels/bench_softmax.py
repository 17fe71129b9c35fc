"""softmax with per-row temperature: ours vs torch.softmax vs the reference."""

import torch

from benchmarks.kernels.pointwise import run
from benchmarks.kernels.softmax_cases import cases
from vllm_forge.ops import reference

run("softmax", cases(torch.ops.vllm_forge.softmax, reference.softmax, torch.softmax), "torch")
