"""Tiny random GGUF files named and laid out as llama.cpp writes them, for the
architectures we load: unit tests read their config and names, end-to-end tests serve
them (prompts as token ids: the vocabulary is placeholder strings).

Llama and Qwen files are written directly (their reference is transformers' reading of
the file); Gemma ones are converted from a Hugging Face model the way llama.cpp's
converter does it (`tiny_gemma`, `write_hf_as_gguf`), so the original model is the
reference: transformers cannot read Gemma files back."""

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T

# Mixed types on purpose: q/k/v and gate/up shards of different packed formats (one part
# each), Q4_0 and Q4_1 (one format), a 5-bit type (8-bit codes), a packed embedding and
# a separate packed LM head.
QUANTISED = {
    "attn_q.weight": T.Q4_0,
    "attn_k.weight": T.Q8_0,
    "attn_v.weight": T.Q4_1,
    "attn_output.weight": T.Q5_0,
    "ffn_gate.weight": T.Q4_1,
    "ffn_up.weight": T.Q8_0,
    "ffn_down.weight": T.Q5_1,
    "token_embd.weight": T.Q4_0,
    "output.weight": T.Q8_0,
}


def head_size(gguf_arch: str, hidden: int = 128, heads: int = 4) -> int:
    """64, not hidden / heads, where the model class takes the head size from the config
    (from the file's key_length); vLLM's Qwen2 always divides. (vLLM's CPU attention
    has no head size 16.)"""
    return hidden // heads if gguf_arch == "qwen2" else 64


def write_tiny_gguf(
    path: Path,
    gguf_arch: str,
    quantised: bool = False,
    layers: int = 2,
    hidden: int = 128,
    ffn: int = 256,
    heads: int = 4,
    kv: int = 2,
    vocab: int = 256,
) -> None:
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
    _add_placeholder_vocab(w, vocab)
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


def _add_placeholder_vocab(w, vocab: int) -> None:
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)


SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
WORDS = "the quick brown fox jumps over lazy dog a paged attention kernel reads keys".split()


def _add_sentencepiece_vocab(w, vocab: int) -> None:
    """A Gemma-like sentencepiece vocabulary (tokenizer model `llama`, as llama.cpp's
    _set_vocab_sentencepiece writes it, with no merges): Gemma's special tokens and ids,
    single characters, the prefixes of WORDS (so merges can be rebuilt), `<unused*>`."""
    chars = ["\u2581", *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?"]
    pieces = [
        f"\u2581{word[:i]}" for word in WORDS for i in range(1, len(word) + 1)
    ]  # "\u2581t", "\u2581th", "\u2581the", ...
    tokens = list(SPECIALS) + chars + list(dict.fromkeys(pieces))
    normal = len(tokens) - len(SPECIALS)
    tokens += [f"<unused{i}>" for i in range(vocab - len(tokens))]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_token_types([3] * len(SPECIALS) + [1] * normal + [3] * (vocab - len(SPECIALS) - normal))
    w.add_pad_token_id(0)
    w.add_eos_token_id(1)
    w.add_bos_token_id(2)
    w.add_unk_token_id(3)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)


def tiny_gemma(gguf_arch: str, seed: int = 0):
    """A random fp32 Gemma or Gemma 2 (GemmaForCausalLM, Gemma2ForCausalLM): head size
    64, weights of scale 0.1 (attention scores of order 1, so the soft-caps bend them),
    but the embedding's 0.03 (Gemma scales it by sqrt(hidden): at 0.1 it outweighs the
    layers and greedy decoding only repeats the last token), norm weights random too (a
    fresh model's are 0, which would hide a 1 missed or subtracted twice), a sliding
    window the prompts outgrow."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        rms_norm_eps=1e-6,
        max_position_embeddings=512,
        initializer_range=0.1,
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
    )
    if gguf_arch == "gemma2":
        fields |= dict(
            query_pre_attn_scalar=64,  # the head size: llama.cpp's value below 46 layers
            sliding_window=32,
            attn_logit_softcapping=1.5,
            final_logit_softcapping=2.0,
        )
    config = AutoConfig.for_model(gguf_arch, **fields)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0.0, 0.1)
            elif name == "model.embed_tokens.weight":
                param.normal_(0.0, 0.03)
    return model.eval()


def write_hf_as_gguf(path: Path, model, quantised: bool = False) -> None:
    """A Hugging Face Gemma or Gemma 2 written as llama.cpp's converter writes it
    (convert_hf_to_gguf.py: GemmaModel, Gemma2Model): their metadata keys (no rope base,
    no query scale), tensors named by gguf-py's TensorNameMap, every norm weight plus one
    (in fp32, F32), no `lm_head` (the embedding is the head); matrices F32 or, with
    `quantised`, in `QUANTISED`'s types, when the model's matrices are set to what the
    file holds (their dequantisation), so that it stays the reference."""
    import gguf
    import torch
    from gguf.quants import dequantize, quantize

    c = model.config
    gguf_arch = c.model_type
    w = gguf.GGUFWriter(str(path), gguf_arch)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    if gguf_arch == "gemma2":
        w.add_attn_logit_softcapping(c.attn_logit_softcapping)
        w.add_final_logit_softcapping(c.final_logit_softcapping)
        w.add_sliding_window(c.sliding_window)
    _add_sentencepiece_vocab(w, c.vocab_size)
    arch_id = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[gguf_arch]
    name_map = gguf.get_tensor_name_map(arch_id, c.num_hidden_layers)
    params = dict(model.named_parameters())
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue
        base, _, suffix = hf_name.rpartition(".")
        name = f"{name_map.get_name(base)}.{suffix}"
        data = tensor.detach().float().numpy().copy()
        if hf_name.endswith("norm.weight"):
            w.add_tensor(name, data + np.float32(1.0))
            continue
        qtype = QUANTISED.get(name.split(".", 2)[-1] if name.startswith("blk.") else name)
        if quantised and qtype is not None:
            raw = quantize(data, qtype)
            with torch.no_grad():
                params[hf_name].copy_(torch.from_numpy(dequantize(raw, qtype)))
            w.add_tensor(name, raw, raw_dtype=qtype)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
