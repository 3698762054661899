import json

import pytest

pytest.importorskip("mlx_lm")

import mlx.core as mx
import mlx_lm
from tokenizers import Tokenizer

from trimkit.testing.tinymodel import CONTEXT_WINDOW, SPECIAL_TOKENS, build_tiny_model, main


def test_directory_has_a_llama_config_and_weights(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["max_position_embeddings"] >= 65_536 == CONTEXT_WINDOW


def test_tokenizer_is_byte_level_with_single_special_tokens(tiny_model_dir):
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    for special in SPECIAL_TOKENS:
        assert len(tokenizer.encode(special, add_special_tokens=False).ids) == 1
    text = "naïve café 日本語 🙂 {\"a\": [1, 2]}\n\tdef f(): pass"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert tokenizer.get_vocab_size() <= config["vocab_size"]
    assert config["eos_token_id"] == tokenizer.token_to_id("<|im_end|>")


def test_loads_offline_and_renders_chatml(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = mlx_lm.load(str(tiny_model_dir))
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    logits = model(mx.array(ids)[None])
    assert logits.shape == (1, len(ids), model.args.vocab_size)


def test_building_is_deterministic_and_the_model_small(tiny_model_dir, tmp_path):
    build_tiny_model(tmp_path / "again")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    # Its size, not a stopwatch, is what keeps building, loading and generating quick.
    assert sum(path.stat().st_size for path in tiny_model_dir.iterdir()) < 1_000_000


def test_seed_and_shape_options_change_the_model(tiny_model_dir, tmp_path):
    build_tiny_model(tmp_path / "other", seed=1, layers=1, heads=2)
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (1, 2)
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()


def test_command_line_writes_a_loadable_model(tmp_path, capsys):
    main([str(tmp_path / "cli"), "--layers", "1"])
    assert "wrote" in capsys.readouterr().out
    model, _ = mlx_lm.load(str(tmp_path / "cli"))
    assert len(model.layers) == 1
