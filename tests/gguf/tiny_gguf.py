"""Tiny random GGUF files named and laid out as llama.cpp writes them, for the
architectures we load: unit tests read their config and names, end-to-end tests serve
them (prompts as token ids: the vocabulary is placeholder strings)."""

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T

# Mixed types on purpose: q/k/v and gate/up shards of different packed formats (one part
# each), Q4_0 and Q4_1 (one format), a 5-bit type (8-bit codes), a packed embedding and
# a separate packed LM head.
QUANTISED = {"attn_q.weight": T.Q4_0, "attn_k.weight": T.Q8_0, "attn_v.weight": T.Q4_1,
             "attn_output.weight": T.Q5_0, "ffn_gate.weight": T.Q4_1, "ffn_up.weight": T.Q8_0,
             "ffn_down.weight": T.Q5_1, "token_embd.weight": T.Q4_0, "output.weight": T.Q8_0}


def head_size(gguf_arch: str, hidden: int = 128, heads: int = 4) -> int:
    """64, not hidden / heads, where the model class takes the head size from the config
    (from the file's key_length); vLLM's Qwen2 always divides. (vLLM's CPU attention
    has no head size 16.)"""
    return hidden // heads if gguf_arch == "qwen2" else 64


def write_tiny_gguf(path: Path, gguf_arch: str, quantised: bool = False, layers: int = 2,
                    hidden: int = 128, ffn: int = 256, heads: int = 4, kv: int = 2,
                    vocab: int = 256) -> None:
    """A tiny GGUF, F32 throughout or with `QUANTISED`'s types for the matrices."""
    import gguf
    from gguf.quants import quantize

    head = head_size(gguf_arch, hidden, heads)

    w = gguf.GGUFWriter(str(path), gguf_arch)
    w.add_block_count(layers)
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head)
    w.add_value_length(head)
    w.add_rope_dimension_count(head)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    rng = np.random.default_rng(0)

    def add(name, *shape, scale=0.1, offset=0.0):
        data = (rng.standard_normal(shape) * scale + offset).astype(np.float32)
        qtype = QUANTISED.get(name.split(".", 2)[-1] if name.startswith("blk.") else name)
        if quantised and qtype is not None:
            w.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    add("token_embd.weight", vocab, hidden, scale=1.0)
    add("output_norm.weight", hidden, offset=1.0)
    add("output.weight", vocab, hidden)
    for i in range(layers):
        b = f"blk.{i}."
        add(b + "attn_norm.weight", hidden, offset=1.0)
        add(b + "ffn_norm.weight", hidden, offset=1.0)
        add(b + "attn_q.weight", heads * head, hidden)
        add(b + "attn_k.weight", kv * head, hidden)
        add(b + "attn_v.weight", kv * head, hidden)
        add(b + "attn_output.weight", hidden, heads * head)
        add(b + "ffn_gate.weight", ffn, hidden)
        add(b + "ffn_up.weight", ffn, hidden)
        add(b + "ffn_down.weight", hidden, ffn)
        if gguf_arch == "qwen2":
            add(b + "attn_q.bias", heads * head)
            add(b + "attn_k.bias", kv * head)
            add(b + "attn_v.bias", kv * head)
        if gguf_arch == "qwen3":
            add(b + "attn_q_norm.weight", head, offset=1.0)
            add(b + "attn_k_norm.weight", head, offset=1.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
