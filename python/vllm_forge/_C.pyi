# Stub for the compiled extension (csrc/, built into _C.abi3.so), which mypy cannot read.
# It exports nothing to Python: importing it registers the torch.ops.vllm_forge operators.
