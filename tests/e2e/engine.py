"""How the end-to-end tests lay out a vLLM engine's processes.

vLLM's default CPU engine is three processes: the `LLM` front end, the engine core
(VLLM_ENABLE_V1_MULTIPROCESSING=1) and its worker (the mp executor), each importing vLLM
and registering the plugin, and a shutdown that waits for the engine core. Measured here
on a tiny model, eager: 33 s per engine that way, 16 s with the engine core and worker in
the front end's process (VLLM_ENABLE_V1_MULTIPROCESSING=0, a mode users run too). Most
tests compare two engines' tokens, and both run the same way, so they run in one process
(the plugin's worker computes on both cores of a 2-CPU machine, the builtin's on one:
platform/threads.py; the fp32 token comparisons pass with that). The tests
that need processes keep vLLM's default and cover the plugin's start-up in spawned engine
processes: tensor parallelism (test_generation.py, test_gguf_generation.py: an engine core
and a worker per rank) and `vllm serve` (test_serving.py).
"""


def process_env(multiprocess: bool) -> dict[str, str]:
    """The environment that lays out an engine: vLLM's default processes, or one."""
    return {"VLLM_ENABLE_V1_MULTIPROCESSING": "1" if multiprocess else "0"}
