"""The offline reference of the serving test: every prompt of the mix resolved to its
request payload with the model's tokenizer, and every one that fits the context run once
through vLLM's LLM.generate / LLM.chat with our plugin, greedy, with the server's
settings (tests/serving/settings.py).

Usage: python tests/serving/offline.py MODEL_FOLDER SPECS.json OUT.json
(a subprocess: vLLM picks its platform once per process, and its engine processes
re-import this file, hence the __main__ guard).

OUT.json: {"platform", "sampling_defaults", "requests": [{"spec", "payload",
"prompt_len"}], "results": {name: {"prompt_token_ids", "token_ids", "text",
"finish_reason", "top2"}}} where top2 holds the two best logprobs at each step (the
margin of each greedy choice, for reporting near-ties).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.serving import prompts, settings  # noqa: E402


def prompt_len(tokenizer, payload: dict) -> int:
    """Prompt tokens as the server counts them (chat: the template applied)."""
    if "messages" in payload:
        text = tokenizer.apply_chat_template(
            payload["messages"], tokenize=False, add_generation_prompt=True
        )
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if isinstance(payload["prompt"], list):
        return len(payload["prompt"])
    return len(tokenizer(payload["prompt"])["input_ids"])


def sampling(llm, spec: prompts.PromptSpec):
    # The model's defaults first, as the server applies them to every request, then the
    # request's own fields.
    params = llm.get_default_sampling_params()
    params.temperature = 0.0
    params.max_tokens = spec.max_tokens
    params.ignore_eos = spec.ignore_eos
    params.logprobs = 2
    return params


def record(output) -> dict:
    completion = output.outputs[0]
    top2 = [
        sorted((lp.logprob for lp in step.values()), reverse=True)[:2]
        for step in completion.logprobs
    ]
    return {
        "prompt_token_ids": list(output.prompt_token_ids),
        "token_ids": list(completion.token_ids),
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "top2": top2,
    }


def main(model: str, specs_path: str, out_path: str) -> None:
    from vllm import LLM
    from vllm.platforms import current_platform

    from vllm_forge.gguf.export import english_text_ids

    specs = [prompts.from_json(d) for d in json.loads(Path(specs_path).read_text())]
    llm = LLM(model=model, **settings.ENGINE)
    tokenizer = llm.get_tokenizer()
    corpus = english_text_ids(
        tokenizer, prompts.corpus_tokens(specs), chunk=prompts.corpus_tokens(specs)
    )[0]
    requests = []
    for spec in specs:
        payload = prompts.resolve(spec, corpus, tokenizer.decode)
        requests.append(
            {
                "spec": prompts.to_json(spec),
                "payload": payload,
                "prompt_len": prompt_len(tokenizer, payload),
            }
        )
    limit = settings.ENGINE["max_model_len"]
    fits = [(spec, r["payload"]) for spec, r in zip(specs, requests) if r["prompt_len"] < limit]
    results = {}
    completions = [(s, p) for s, p in fits if s.endpoint == "completions"]
    outs = llm.generate(
        [
            {"prompt_token_ids": p["prompt"]} if isinstance(p["prompt"], list) else p["prompt"]
            for _, p in completions
        ],
        [sampling(llm, s) for s, _ in completions],
        use_tqdm=False,
    )
    results.update({s.name: record(o) for (s, _), o in zip(completions, outs)})
    chats = [(s, p) for s, p in fits if s.endpoint == "chat"]
    outs = llm.chat(
        [p["messages"] for _, p in chats], [sampling(llm, s) for s, _ in chats], use_tqdm=False
    )
    results.update({s.name: record(o) for (s, _), o in zip(chats, outs)})
    Path(out_path).write_text(
        json.dumps(
            {
                "platform": type(current_platform).__name__,
                "sampling_defaults": repr(llm.get_default_sampling_params()),
                "requests": requests,
                "results": results,
            }
        )
    )
    # Stop the engine before the interpreter tears down (see tests/e2e/generate_gguf.py).
    llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
