"""Write a tiny model directory (see :mod:`.tinymodel`) as a GGUF file that llama.cpp loads.

llama.cpp's own ``convert_hf_to_gguf.py`` refuses a freshly trained tokenizer: it
recognises pre-tokenizers by hashing known ones, and ours is new. The tiny model is
a plain llama with a byte-level BPE tokenizer, which GGUF describes directly, so the
file is written here with the ``gguf`` package (numpy and safetensors, no torch).

The weights are renamed to llama.cpp's tensor names, and the query and key
projections are permuted back from Hugging Face's rotary layout (halves) to the
interleaved one llama.cpp's ``llama`` architecture applies, as the official
converter does, so llama.cpp computes what mlx-lm computes.
"""

from __future__ import annotations

import json
from pathlib import Path

LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3


def _rotary_to_interleaved(weight, heads: int):
    rows = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, rows, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_name(name: str) -> str:
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".", 3)
    if len(parts) < 4 or parts[:2] != ["model", "layers"] or parts[3] not in LAYER_NAMES:
        raise ValueError(f"no GGUF name for tensor {name}")
    return f"blk.{parts[2]}.{LAYER_NAMES[parts[3]]}"


def write_gguf(model_dir: str | Path, out: str | Path, *, name: str = "tiny") -> Path:
    """``model_dir`` (config.json, model.safetensors, tokenizer files) as the GGUF file ``out``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ValueError(f"{model_dir}: only llama models are written as GGUF here")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = tokenizer["model"]["vocab"]
    specials = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    tokens = [""] * config["vocab_size"]
    for text, index in {**vocab, **specials}.items():
        tokens[index] = text
    types = [TOKEN_CONTROL if text in specials else TOKEN_NORMAL for text in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(specials[tokenizer_config["eos_token"]])
    writer.add_pad_token_id(specials[tokenizer_config["pad_token"]])
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer_config["chat_template"])

    for name_, weight in sorted(load_file(str(model_dir / "model.safetensors")).items()):
        weight = weight.astype(np.float32)
        if name_.endswith("self_attn.q_proj.weight"):
            weight = _rotary_to_interleaved(weight, heads)
        elif name_.endswith("self_attn.k_proj.weight"):
            weight = _rotary_to_interleaved(weight, kv_heads)
        writer.add_tensor(tensor_name(name_), np.ascontiguousarray(weight))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
