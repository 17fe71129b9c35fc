"""The request mix of the serving test: which prompts, of what length, on which endpoint,
and what the server must answer (a completion, or HTTP 400 for a prompt over the context
limit).

Prompts are slices of real English (Python's pydoc_data topics, tokenized by the model's
own tokenizer: vllm_forge.gguf.export.english_text_ids), taken at different offsets so
that they do not all share one cached prefix. A spec names its size in tokens; text and
chat specs are those tokens decoded back to text, so their tokenized length is close to,
not exactly, that size: the offline run measures it and the test checks each spec really
lands on its side of the limit.
"""

from dataclasses import asdict, dataclass

from vllm_forge.gguf.export import CHAT_QUESTIONS

# Short chat questions (the first of the real-model tests') whose greedy answers are real
# sentences, not the model's degenerate loops on raw text slices.
QUESTIONS = CHAT_QUESTIONS[:4]


@dataclass(frozen=True)
class PromptSpec:
    name: str
    form: str  # "ids" (completions, token ids), "text" (completions), "chat"
    tokens: int  # prompt size in corpus tokens (0: a chat question)
    max_tokens: int
    over_limit: bool = False  # the prompt alone reaches max_model_len: HTTP 400
    offset: int = 0  # where in the corpus the slice starts
    question: int = 0  # chat with tokens == 0: which of QUESTIONS
    # Streams the client cancels must still be running when it hangs up: no early EOS.
    ignore_eos: bool = False

    @property
    def endpoint(self) -> str:
        return "chat" if self.form == "chat" else "completions"


def mix(max_model_len: int) -> list[PromptSpec]:
    """Every kind of request, sized against max_model_len (512 in the test)."""
    L = max_model_len
    ids = [
        PromptSpec(f"ids-{n}", "ids", n, m, offset=37 * i)
        for i, (n, m) in enumerate(
            [(1, 16), (2, 16), (9, 24), (40, 24), (130, 24), (257, 16), (384, 16)]
        )
    ]
    edge = [
        PromptSpec("ids-fills-context", "ids", L - 32, 32, offset=11),  # ends at exactly L
        # prompt + max_tokens over L: the server caps the output at L - prompt tokens,
        # and the offline engine stops at L too.
        PromptSpec("ids-capped-output", "ids", L - 12, 24, offset=23),
        PromptSpec("ids-one-token-left", "ids", L - 1, 8, offset=5),
        PromptSpec("ids-exactly-limit", "ids", L, 8, over_limit=True),  # no room for output
        PromptSpec("ids-over-limit", "ids", L + 1, 8, over_limit=True, offset=3),
        PromptSpec("ids-far-over-limit", "ids", 3 * L, 8, over_limit=True, offset=7),
    ]
    text = [
        PromptSpec("text-short", "text", 12, 24, offset=101),
        PromptSpec("text-long", "text", 300, 24, offset=211),
        PromptSpec("text-over-limit", "text", L + 100, 8, over_limit=True, offset=307),
        # Rejected by vLLM's character-count check before tokenization.
        PromptSpec("text-huge", "text", 8 * L, 8, over_limit=True),
    ]
    chat = [PromptSpec(f"chat-q{i}", "chat", 0, 32, question=i) for i in range(len(QUESTIONS))]
    chat += [
        PromptSpec("chat-long", "chat", 350, 24, offset=401),
        PromptSpec("chat-over-limit", "chat", L + 150, 8, over_limit=True, offset=503),
    ]
    # Long generations for the streams the client closes mid-way.
    cancel = [
        PromptSpec("cancel-ids", "ids", 64, 128, offset=601, ignore_eos=True),
        PromptSpec("cancel-chat", "chat", 0, 128, question=1, ignore_eos=True),
    ]
    return ids + edge + text + chat + cancel


def corpus_tokens(specs: list[PromptSpec]) -> int:
    """How many corpus token ids the slices need."""
    return max(s.offset + s.tokens for s in specs)


def resolve(spec: PromptSpec, corpus_ids: list[int], decode) -> dict:
    """The spec's request payload: {"prompt": [ids] | str} or {"messages": [...]}.
    decode: token ids -> text (the model's tokenizer)."""
    piece = corpus_ids[spec.offset : spec.offset + spec.tokens]
    assert len(piece) == spec.tokens, f"{spec.name}: the corpus is too short"
    if spec.form == "ids":
        return {"prompt": piece}
    if spec.form == "text":
        return {"prompt": decode(piece)}
    content = (
        QUESTIONS[spec.question]
        if spec.tokens == 0
        else "Summarise this text in one sentence:\n\n" + decode(piece)
    )
    return {"messages": [{"role": "user", "content": content}]}


def to_json(spec: PromptSpec) -> dict:
    return asdict(spec)


def from_json(d: dict) -> PromptSpec:
    return PromptSpec(**d)
