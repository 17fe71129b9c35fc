"""Run one vLLM generation of chat prompts and write prompt and output token ids, top-2
logprobs, the prompt logprobs of a real text (token ids, if given) and the resident
memory of the engine's processes.

Usage: python generate_gguf.py CONFIG.json OUT.json (a subprocess of test_gguf_generation).

With FORGE_GGUF_REGISTER=1 the GGUF extension points are registered when this file is
imported, which vLLM's spawned engine processes also do (they re-import the main
script): that stands in for our `vllm.general_plugins` entry point in an install made
before the entry point existed.
"""

import json
import os
import sys

if os.environ.get("FORGE_GGUF_REGISTER") == "1":
    from vllm_forge.gguf import register

    register()


def resident_mib() -> dict[str, dict[str, float]]:
    """Resident memory (RssAnon, RssFile: file pages such as a memory-mapped checkpoint,
    VmRSS) of this process and of each engine process it started, in MiB."""
    import psutil

    def status(pid: int) -> dict[str, float]:
        fields = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    fields[key] = int(value.split()[0]) / 1024
        return fields

    me = psutil.Process()
    out = {"front end": status(me.pid)}
    for child in me.children(recursive=True):
        try:
            out[f"{child.name()} {child.pid}"] = status(child.pid)
        except (OSError, psutil.Error):
            pass
    return out


def main(config_path: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    cfg = json.loads(open(config_path).read())
    llm = LLM(
        model=cfg["model"],
        dtype=cfg["dtype"],
        enforce_eager=cfg["enforce_eager"],
        max_model_len=cfg["max_model_len"],
        gpu_memory_utilization=0.5,
        seed=0,
        **cfg.get("extra", {}),
    )
    detokenize = not cfg.get("extra", {}).get("skip_tokenizer_init", False)
    params = SamplingParams(
        temperature=0.0,
        max_tokens=cfg["max_tokens"],
        logprobs=2,
        ignore_eos=True,
        detokenize=detokenize,
    )
    # A prompt is a string, or a list of token ids (models without a real tokenizer).
    prompts = [{"prompt_token_ids": p} if isinstance(p, list) else p for p in cfg["prompts"]]
    results = []
    for request in llm.generate(prompts, params, use_tqdm=False):
        completion = request.outputs[0]
        top2 = [
            sorted((lp.logprob for lp in step.values()), reverse=True)[:2]
            for step in completion.logprobs
        ]
        results.append(
            {
                "prompt_token_ids": list(request.prompt_token_ids),
                "token_ids": list(completion.token_ids),
                "text": completion.text,
                "top2": top2,
            }
        )
    # Real text as token ids: the logprob of each prompt token given the ones before.
    text_logprobs = []
    if cfg.get("text_ids"):
        text = [{"prompt_token_ids": ids} for ids in cfg["text_ids"]]
        outs = llm.generate(
            text,
            SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=detokenize),
            use_tqdm=False,
        )
        for ids, out in zip(cfg["text_ids"], outs):
            text_logprobs += [
                step[tok].logprob for tok, step in zip(ids[1:], out.prompt_logprobs[1:])
            ]
    with open(out_path, "w") as f:
        json.dump(
            {
                "platform": type(current_platform).__name__,
                "results": results,
                "text_logprobs": text_logprobs,
                "resident_mib": resident_mib(),
            },
            f,
        )
    # Stop the engine before the interpreter tears down: left to exit, the front end
    # once aborted ("terminate called without an active exception") after its work.
    llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
