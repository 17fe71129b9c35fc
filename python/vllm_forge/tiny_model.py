"""Tiny random models with a locally trained tokenizer, for the demo and the tests.

No model hub is reachable here, so everything is made on the spot: a byte-level BPE
tokenizer trained on a small built-in text, and a randomly initialised model of a few
layers saved as safetensors. Deterministic for a given seed.
"""

import argparse
import json
from pathlib import Path

# Text to train the tokenizer on (and to build prompts from).
CORPUS = """\
The quick brown fox jumps over the lazy dog. A paged attention kernel reads keys and
values through a block table. vLLM schedules decodes, prefills and chunked prefills in
one batch. Large language models predict the next token from the ones before it. The
cache grows by one block at a time; each block holds a fixed number of tokens. Rotary
embeddings rotate query and key vectors by their position. Normalisation keeps the
activations in range; the residual stream carries them between layers. Soft-capping
bends large logits back towards a bound. A sliding window limits how far back a token
may look. Grouped-query attention shares one key and value head among several query
heads. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Punctuation: , . ; : ! ? ( ) [ ] { }.
"""

ARCHITECTURES = {
    # GQA Llama: 4 query heads share 2 KV heads; head size 64.
    "llama": dict(
        model_type="llama",
        architectures=["LlamaForCausalLM"],
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
    ),
    # Qwen2: biased q/k/v projections, 8 query heads over 2 KV heads of size 32.
    "qwen2": dict(
        model_type="qwen2",
        architectures=["Qwen2ForCausalLM"],
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=True,
        use_sliding_window=False,
    ),
    # Mixture of experts (vLLM's CPU MoE wants hidden and expert sizes multiples of 32).
    # Mixtral: 4 experts of size 128, top-2, routing weights always renormalised.
    "mixtral": dict(
        model_type="mixtral",
        architectures=["MixtralForCausalLM"],
        hidden_size=256,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        sliding_window=None,
    ),
    # Qwen2-MoE: 4 experts of size 128, top-2, weights not renormalised
    # (norm_topk_prob=False), plus a gated shared expert; MoE in every layer.
    "qwen2_moe": dict(
        model_type="qwen2_moe",
        architectures=["Qwen2MoeForCausalLM"],
        hidden_size=256,
        intermediate_size=512,
        moe_intermediate_size=128,
        shared_expert_intermediate_size=128,
        num_experts=4,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        use_sliding_window=False,
    ),
}
VOCAB_SIZE = 512
# The final norm's weight scales the logits. At 0.4 the top logits stay below about 4,
# where bf16 resolves steps of 1/64 or finer: a bf16 run then tells apart choices that
# differ by more than the end-to-end tests' 0.02 near-tie threshold. (At the default 1.0
# the top logits reach 4-8, where one bf16 step is 0.031 and every 1-step gap would be
# a coin toss between two correct kernels.) Attention weights are left as initialised.
FINAL_NORM_WEIGHT = 0.4


def train_tokenizer(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(out_dir)


def make_tiny_model(
    out_dir: str | Path,
    arch: str = "llama",
    seed: int = 0,
    max_position_embeddings: int = 4096,
    **overrides,
) -> Path:
    """Write a random `arch` model and its tokenizer to out_dir (reused if present).
    `overrides` replace entries of the architecture's config (e.g. num_hidden_layers)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    out = Path(out_dir)
    stamp = out / "forge_tiny_model.json"
    spec = {
        "arch": arch,
        "seed": seed,
        "max_position_embeddings": max_position_embeddings,
        "final_norm_weight": FINAL_NORM_WEIGHT,
        **overrides,
    }
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return out
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out)
    params = {**ARCHITECTURES[arch], **overrides}
    model_type = params.pop("model_type")
    config = AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=0,
        eos_token_id=1,
        dtype="float32",
        # Larger than the usual 0.02 so that greedy choices
        # are clear-cut rather than near-ties.
        initializer_range=0.1,
        **params,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.fill_(FINAL_NORM_WEIGHT)
    model.save_pretrained(out, safe_serialization=True)
    stamp.write_text(json.dumps(spec))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--arch", default="llama", choices=sorted(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_tiny_model(args.out_dir, args.arch, args.seed))


if __name__ == "__main__":
    main()
