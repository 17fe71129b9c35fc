"""A bounded load on an OpenAI-compatible server: a fixed, seeded plan of requests (every
prompt of the mix on /v1/completions or /v1/chat/completions, streamed or not, some
streams closed by the client after a few chunks) sent by N concurrent clients, each
request with its own timeout and the whole run with a deadline. Returns what every
request got; judging it is the caller's job (tests/serving/check.py).

Clients are asyncio + aiohttp (a dependency of vLLM itself). Every request asks for
return_token_ids, so outputs are compared as token ids, streamed or not.
"""

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import aiohttp

from tests.serving.prompts import PromptSpec

REQUEST_TIMEOUT_S = 300  # a request may queue behind 15 others on a busy 2-core machine
READ_TIMEOUT_S = 120  # silence on an open stream longer than this is a hang


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    spec: PromptSpec
    payload: dict  # {"prompt": ...} or {"messages": ...}
    stream: bool
    cancel_after: int | None = None  # close the connection after this many token chunks


@dataclass
class Outcome:
    request: PlannedRequest
    status: int | None = None  # HTTP status; None: no response (error says why)
    body: str = ""  # the body of a non-200 answer (truncated)
    error: str = ""  # client-side failure, or an error event in a stream
    cancelled: bool = False  # the client closed the stream on purpose
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        r = self.request
        return (
            f"request {r.index} ({r.spec.name}, {r.spec.endpoint}, "
            f"{'stream' if r.stream else 'no stream'}"
            f"{f', cancel after {r.cancel_after}' if r.cancel_after else ''})"
        )


def plan(
    requests: list[tuple[PromptSpec, dict]], count: int, seed: int = 0
) -> list[PlannedRequest]:
    """count requests: rounds over every spec in a seeded shuffled order, each round
    alternating streamed and not; cancel specs always stream and are closed after 2-6
    chunks. The first round (one of each spec) is the warm-up."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        round_ = list(requests)
        rng.shuffle(round_)
        for spec, payload in round_:
            if len(out) == count:
                break
            cancel = spec.name.startswith("cancel")
            stream = cancel or rng.random() < 0.5
            out.append(
                PlannedRequest(
                    len(out), spec, payload, stream, rng.randint(2, 6) if cancel else None
                )
            )
    return out


def body(req: PlannedRequest, model: str) -> dict:
    b = dict(
        req.payload,
        model=model,
        max_tokens=req.spec.max_tokens,
        temperature=0.0,
        stream=req.stream,
        return_token_ids=True,
    )
    if req.spec.ignore_eos:
        b["ignore_eos"] = True
    return b


def _take(outcome: Outcome, data: dict) -> None:
    """Fold a response (or one stream chunk) into outcome."""
    if data.get("prompt_token_ids"):  # chat: on the response or the first chunk
        outcome.prompt_token_ids = data["prompt_token_ids"]
    for choice in data.get("choices", []):
        if choice.get("prompt_token_ids"):  # completions: on the choice
            outcome.prompt_token_ids = choice["prompt_token_ids"]
        outcome.token_ids += choice.get("token_ids") or []
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or choice.get("delta") or {}).get("content")
        outcome.text += text or ""
        outcome.finish_reason = choice.get("finish_reason") or outcome.finish_reason


async def _stream(resp: aiohttp.ClientResponse, outcome: Outcome) -> None:
    chunks = 0
    async for raw in resp.content:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        if "error" in chunk:  # vLLM reports errors after the 200 as a stream event
            outcome.error = f"error event in the stream: {json.dumps(chunk)[:500]}"
            return
        _take(outcome, chunk)
        if any(c.get("token_ids") for c in chunk.get("choices", [])):
            chunks += 1
        if outcome.request.cancel_after and chunks >= outcome.request.cancel_after:
            outcome.cancelled = True
            resp.close()  # drops the connection: the server must notice and abort
            return
    outcome.error = "the stream ended without [DONE]"


async def send(
    session: aiohttp.ClientSession, url: str, model: str, req: PlannedRequest
) -> Outcome:
    outcome = Outcome(req)
    path = "/v1/chat/completions" if req.spec.endpoint == "chat" else "/v1/completions"
    start = time.monotonic()
    try:
        async with session.post(url + path, json=body(req, model)) as resp:
            outcome.status = resp.status
            if resp.status != 200:
                outcome.body = (await resp.text())[:500]
            elif req.stream:
                await _stream(resp, outcome)
            else:
                _take(outcome, await resp.json())
    except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as e:
        outcome.error = f"{type(e).__name__}: {e}"
    outcome.seconds = time.monotonic() - start
    return outcome


async def _run(
    url: str, model: str, requests: list[PlannedRequest], clients: int, outcomes: list[Outcome]
) -> None:
    queue: asyncio.Queue[PlannedRequest] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    timeout = aiohttp.ClientTimeout(
        total=REQUEST_TIMEOUT_S, sock_connect=10, sock_read=READ_TIMEOUT_S
    )

    async def client() -> None:
        # One connection per client, as 16 independent users would have.
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=1)
        ) as session:
            while not queue.empty():
                outcomes.append(await send(session, url, model, queue.get_nowait()))

    await asyncio.gather(*(client() for _ in range(clients)))


class LoadTimeout(AssertionError):
    pass


def run(
    url: str, model: str, requests: list[PlannedRequest], clients: int, deadline_s: float
) -> list[Outcome]:
    """Send requests from `clients` concurrent clients; every outcome, in plan order."""
    outcomes: list[Outcome] = []
    try:
        asyncio.run(asyncio.wait_for(_run(url, model, requests, clients, outcomes), deadline_s))
    except asyncio.TimeoutError:
        raise LoadTimeout(
            f"only {len(outcomes)} of {len(requests)} requests from {clients} "
            f"clients finished within {deadline_s:.0f} s"
        ) from None
    return sorted(outcomes, key=lambda o: o.request.index)
