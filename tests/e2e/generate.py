"""Run one vLLM generation in this process and write token ids and top-2 logprobs.

Usage: python generate.py CONFIG.json OUT.json. Run as a subprocess by the end-to-end
tests, once per (platform, dtype, mode): the platform is chosen per process from the
environment (VLLM_PLUGINS), so each configuration needs its own process.
"""

import json
import sys


def main(config_path: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams

    cfg = json.loads(open(config_path).read())
    llm = LLM(
        model=cfg["model"],
        dtype=cfg["dtype"],
        enforce_eager=cfg["enforce_eager"],
        max_model_len=cfg["max_model_len"],
        max_num_batched_tokens=cfg["max_num_batched_tokens"],
        gpu_memory_utilization=0.5,
        seed=0,
        **cfg.get("extra", {}),
    )
    params = SamplingParams(
        temperature=0.0, max_tokens=cfg["max_tokens"], logprobs=2, ignore_eos=True
    )
    results = []
    for request in llm.generate(cfg["prompts"], params, use_tqdm=False):
        completion = request.outputs[0]
        top2 = [
            sorted((lp.logprob for lp in step.values()), reverse=True)[:2]
            for step in completion.logprobs
        ]
        results.append(
            {
                "token_ids": list(completion.token_ids),
                "top2": top2,
                "prompt_tokens": len(request.prompt_token_ids),
            }
        )
    with open(out_path, "w") as f:
        json.dump(
            {
                "platform": type(
                    __import__("vllm.platforms", fromlist=["x"]).current_platform
                ).__name__,
                "results": results,
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
