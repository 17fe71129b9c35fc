"""Judging a load run: each function returns the problems it found, one readable line
each (which request, what it got, what it should have got), so a failing test lists
every problem at once."""

import json

from tests.serving.load import Outcome
from tests.serving.server import Shutdown

# Tokens the engine may still generate for a stream after its client hung up, before the
# disconnect reaches it (a few scheduler steps); far below a cancelled stream's max_tokens.
CANCEL_SLACK_TOKENS = 16


def mix_problems(requests: list[dict], max_model_len: int) -> list[str]:
    """Each prompt lands on the side of the context limit its spec says (text and chat
    prompts are sized in corpus tokens, and their real length is only measured)."""
    problems = []
    for r in requests:
        spec, n = r["spec"], r["prompt_len"]
        if (n >= max_model_len) != spec["over_limit"]:
            problems.append(
                f"mix: {spec['name']} has {n} prompt tokens, which is "
                f"{'not ' if spec['over_limit'] else ''}over the limit of "
                f"{max_model_len} its spec says"
            )
    return problems


def status_problems(outcomes: list[Outcome]) -> list[str]:
    """Every request answered: 200 for prompts that fit, a clean 400 (an OpenAI error
    object) for the ones over the limit, no 5xx, no broken or erroring stream."""
    problems = []
    for o in outcomes:
        spec = o.request.spec
        if o.status is None:
            problems.append(f"{o.describe()}: no answer: {o.error}")
        elif o.status >= 500:
            problems.append(f"{o.describe()}: HTTP {o.status}: {o.body}")
        elif spec.over_limit:
            try:
                error = json.loads(o.body)["error"]
                clean = o.status == 400 and error["code"] == 400 and error["message"]
            except (ValueError, KeyError, TypeError):
                clean = False
            if not clean:
                problems.append(
                    f"{o.describe()}: over the limit, wanted a 400 with an error "
                    f"object, got HTTP {o.status}: {o.body[:300]!r}"
                )
        elif o.status != 200:
            problems.append(f"{o.describe()}: HTTP {o.status}: {o.body}")
        elif o.error:
            problems.append(f"{o.describe()}: {o.error}")
        elif o.request.cancel_after and not o.cancelled:
            problems.append(
                f"{o.describe()}: the stream ended before the client could "
                f"cancel it ({len(o.token_ids)} tokens)"
            )
    return problems


def reference_problems(outcomes: list[Outcome], reference: dict[str, dict]) -> list[str]:
    """Every completed answer equals the offline greedy result for its prompt (token ids,
    text, finish reason, and the prompt's token ids); a cancelled stream is a prefix of
    it. A differing token is reported with the offline top-2 logprob gap at that step:
    a gap near 0 is a near-tie that batching may flip, a large one a real error."""
    problems = []
    for o in outcomes:
        if o.status != 200 or o.error:
            continue
        ref = reference[o.request.spec.name]
        if o.prompt_token_ids != ref["prompt_token_ids"]:
            problems.append(
                f"{o.describe()}: prompt token ids differ from the offline run's "
                f"(server {len(o.prompt_token_ids or [])} tokens, offline "
                f"{len(ref['prompt_token_ids'])})"
            )
            continue
        want = ref["token_ids"][: len(o.token_ids)] if o.cancelled else ref["token_ids"]
        if o.token_ids != want:
            step = next(
                (i for i, (a, b) in enumerate(zip(o.token_ids, want)) if a != b),
                min(len(o.token_ids), len(want)),
            )
            gap = (
                f"offline top-2 gap {ref['top2'][step][0] - ref['top2'][step][1]:.2e}"
                if step < len(ref["top2"]) and len(ref["top2"][step]) == 2
                else "no gap"
            )
            got = o.token_ids[step] if step < len(o.token_ids) else "end"
            exp = want[step] if step < len(want) else "end"
            problems.append(
                f"{o.describe()}: token {step} is {got}, offline {exp} ({gap}); "
                f"server {o.text!r}, offline {ref['text']!r}"
            )
        elif not o.cancelled and (o.text, o.finish_reason) != (ref["text"], ref["finish_reason"]):
            problems.append(
                f"{o.describe()}: same tokens, but text/finish reason "
                f"{o.text!r}/{o.finish_reason} vs offline "
                f"{ref['text']!r}/{ref['finish_reason']}"
            )
    return problems


def cancellation_problems(outcomes: list[Outcome], generated: float) -> list[str]:
    """The server stopped generating for streams whose clients hung up: of the tokens it
    generated during these requests (vllm:generation_tokens_total), all but a few per
    cancelled stream reached a client."""
    delivered = sum(len(o.token_ids) for o in outcomes if o.status == 200)
    cancelled = [o for o in outcomes if o.cancelled]
    excess = generated - delivered
    allowed = CANCEL_SLACK_TOKENS * len(cancelled)
    if excess > allowed:
        unread = sum(o.request.spec.max_tokens - len(o.token_ids) for o in cancelled)
        return [
            f"cancellation: the server generated {generated:.0f} tokens, clients got "
            f"{delivered}: {excess:.0f} more than delivered, over the {allowed} allowed "
            f"for {len(cancelled)} cancelled streams ({unread} more if none had been "
            f"aborted)"
        ]
    return []


def rss_problems(
    before: float, per_before: dict, after: float, per_after: dict, limit: float
) -> list[str]:
    """Resident memory of the server's tree, idle after the warm-up vs idle at the end."""
    if after > before * (1 + limit):
        return [
            f"resident memory grew from {before:.0f} MiB after the warm-up to "
            f"{after:.0f} MiB (over {limit:.0%}): {per_before} -> {per_after}"
        ]
    return []


def shutdown_problems(shutdown: Shutdown, timeout_s: float, log: str) -> list[str]:
    """The signal made the server exit in time, with status 0, taking its children."""
    problems = []
    if shutdown.seconds is None:
        problems.append(
            f"{shutdown.signal_name}: the server did not exit within "
            f"{timeout_s:.0f} s (killed); its log ends:\n{log[-3000:]}"
        )
    elif shutdown.returncode != 0:
        problems.append(
            f"{shutdown.signal_name}: the server exited with "
            f"{shutdown.returncode}; its log ends:\n{log[-3000:]}"
        )
    if shutdown.survivors:
        problems.append(
            f"{shutdown.signal_name}: processes outlived the server: {shutdown.survivors}"
        )
    return problems
