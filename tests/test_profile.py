"""ModelProfile: sizes from names and config files, tiers, token counts exact and estimated."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimkit.profile import (
    CHARS_PER_TOKEN_ESTIMATE,
    DEFAULT_CONTEXT_WINDOW,
    ModelProfile,
    TokenCountCache,
    count_parameters,
    estimate_prefill_tps,
    tier_for,
)

QWEN3_MOE = {
    "model_type": "qwen3_moe",
    "hidden_size": 2048,
    "num_hidden_layers": 48,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 768,
    "intermediate_size": 6144,
    "vocab_size": 151936,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "tie_word_embeddings": False,
    "max_position_embeddings": 262144,
}

# ---------------------------------------------------------------- from a name


@pytest.mark.parametrize(
    ("name", "total", "active", "tier"),
    [
        ("Qwen3-Coder-30B-A3B-Instruct-4bit", 30e9, 3e9, "medium"),
        ("mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit", 30e9, 3e9, "medium"),
        ("qwen3-coder:30b-a3b-q4_K_M", 30e9, 3e9, "medium"),
        ("Qwen2.5-Coder-7B-Instruct-4bit", 7e9, 7e9, "small"),
        ("mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", 7e9, 7e9, "small"),
        ("Llama-3.3-70B-Instruct", 70e9, 70e9, "large"),
        ("mlx-community/Llama-3.3-70B-Instruct-4bit", 70e9, 70e9, "large"),
        ("gpt-oss-120b", 120e9, 120e9, "large"),
        ("openai/gpt-oss-20b", 20e9, 20e9, "medium"),
        ("Qwen3-235B-A22B-Instruct-2507-4bit", 235e9, 22e9, "large"),
        ("Qwen3-0.6B-8bit", 0.6e9, 0.6e9, "small"),
        ("SmolLM2-135M-Instruct", 135e6, 135e6, "small"),
        ("Mixtral-8x7B-Instruct-v0.1", 56e9, 56e9, "large"),
    ],
)
def test_sizes_and_tier_from_the_name(name, total, active, tier):
    profile = ModelProfile.from_name(name)
    assert (profile.total_params, profile.active_params, profile.tier) == (pytest.approx(total), pytest.approx(active), tier)
    assert profile.name == name
    assert profile.prefill_tps == pytest.approx(estimate_prefill_tps(active))
    assert profile.tokenizer is None and not profile.exact_counts


@pytest.mark.parametrize("name", ["mistral-large-instruct", "Phi-3.5-mini-instruct", "mlx-community/DeepSeek-V3-0324-4bit"])
def test_a_name_without_a_size_is_medium_with_estimated_speed(name):
    profile = ModelProfile.from_name(name)
    assert (profile.total_params, profile.active_params, profile.tier) == (None, None, "medium")
    assert profile.prefill_tps == estimate_prefill_tps(None)
    assert profile.context_window == DEFAULT_CONTEXT_WINDOW


def test_a_quantisation_suffix_is_not_a_size():
    assert ModelProfile.from_name("Some-Model-4bit").total_params is None
    assert ModelProfile.from_name("Some-Model-8b-mlx").total_params == 8e9


def test_overrides_win_over_the_guess():
    profile = ModelProfile.from_name("Qwen2.5-Coder-7B-Instruct-4bit", tier="large", context_window=8192)
    assert (profile.tier, profile.context_window, profile.total_params) == ("large", 8192, 7e9)


# ---------------------------------------------------------------- tiers


@pytest.mark.parametrize(
    ("name", "tier"),
    [("m-8B", "small"), ("m-8.1B", "medium"), ("m-32B", "medium"), ("m-33B", "large")],
)
def test_tier_boundaries(name, tier):
    assert ModelProfile.from_name(name).tier == tier


@pytest.mark.parametrize(
    ("params", "tier"),
    [(None, "medium"), (8e9, "small"), (8e9 + 1, "medium"), (32e9, "medium"), (32e9 + 1, "large"), (1e6, "small")],
)
def test_tier_for(params, tier):
    assert tier_for(params) == tier


def test_with_tier_copies_and_shares_the_token_count_cache():
    profile = ModelProfile.from_name("Qwen3-Coder-30B-A3B-Instruct-4bit")
    small = profile.with_tier("small")
    assert (profile.tier, small.tier) == ("medium", "small")
    assert small.total_params == profile.total_params
    assert small.token_counts is profile.token_counts


# ---------------------------------------------------------------- parameters from a config


def real_parameter_count(path) -> int:
    import mlx.core as mx

    return sum(array.size for array in mx.load(str(path)).values())


def test_count_parameters_of_the_tiny_model_matches_its_weights(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    total, active = count_parameters(config)
    assert total == active == real_parameter_count(tiny_model_dir / "model.safetensors")


@pytest.mark.parametrize(
    "shape",
    [
        {"heads": 4, "head_dim": 16, "hidden": 64, "layers": 3},
        {"heads": 2, "head_dim": 32, "hidden": 48, "layers": 1},
    ],
)
def test_count_parameters_is_exact_for_llama_shapes(tmp_path, shape):
    pytest.importorskip("mlx_lm")
    from trimkit.testing.tinymodel import build_tiny_model

    path = build_tiny_model(tmp_path, **shape)
    config = json.loads((path / "config.json").read_text())
    assert count_parameters(config) == (real_parameter_count(path / "model.safetensors"),) * 2


@pytest.mark.parametrize("tied", [True, False])
def test_count_parameters_is_exact_for_llama_with_and_without_tied_embeddings(tied):
    pytest.importorskip("mlx_lm")
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    config = {
        "model_type": "llama", "hidden_size": 96, "intermediate_size": 160, "num_hidden_layers": 2,
        "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": tied,
    }
    model = llama.Model(llama.ModelArgs.from_dict(config))
    real = sum(array.size for _, array in tree_flatten(model.parameters()))
    assert count_parameters(config) == (real, real)


def test_moe_config_counts_every_expert_in_the_total_and_the_routed_ones_as_active():
    total, active = count_parameters(QWEN3_MOE)
    assert total == pytest.approx(30.5e9, rel=0.10)
    assert active == pytest.approx(3.3e9, rel=0.10)
    assert tier_for(total) == "medium"


def test_moe_config_nested_under_text_config_counts_the_same():
    assert count_parameters({"model_type": "wrapper", "text_config": QWEN3_MOE}) == count_parameters(QWEN3_MOE)


# ---------------------------------------------------------------- from a model directory


def test_from_model_dir_reads_window_sizes_and_tokenizer(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    profile = ModelProfile.from_model_dir(tiny_model_dir)
    assert profile.name == tiny_model_dir.name
    assert profile.context_window == config["max_position_embeddings"]
    assert profile.total_params == count_parameters(config)[0]
    assert profile.tier == "small"
    assert profile.exact_counts


def test_from_model_dir_with_a_moe_config_and_no_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_MOE))
    profile = ModelProfile.from_model_dir(tmp_path, tier="small")
    assert profile.context_window == 262144
    assert profile.active_params < profile.total_params
    assert profile.prefill_tps == pytest.approx(estimate_prefill_tps(profile.active_params))
    assert profile.tier == "small"
    assert profile.tokenizer is None and profile.count_tokens("x" * 35) == 10


def test_from_model_dir_without_a_window_uses_the_default(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in QWEN3_MOE.items() if k != "max_position_embeddings"}))
    assert ModelProfile.from_model_dir(tmp_path).context_window == DEFAULT_CONTEXT_WINDOW


# ---------------------------------------------------------------- token counts

TEXTS = [
    "",
    "hi",
    "def read_file(path: str) -> list[str]:\n    return open(path).readlines()\n",
    "naïve café 日本語 🙂 " * 20,
    '{"type": "object", "properties": {"file_path": {"type": "string"}}}' * 40,
    "The quick brown fox jumps over the lazy dog. " * 200,
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_counts_are_exact(tiny_model_dir, tokenizer, text):
    profile = ModelProfile.from_model_dir(tiny_model_dir)
    expected = len(tokenizer.encode(text, add_special_tokens=False).ids)
    assert profile.count_tokens(text) == expected
    assert profile.count_tokens(text) == expected  # again, possibly from the cache


def test_exact_counts_differ_from_the_estimate(tiny_model_dir):
    text = TEXTS[-1]
    exact = ModelProfile.from_model_dir(tiny_model_dir).count_tokens(text)
    assert exact != math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)


class CountingTokenizer:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def encode(self, text, add_special_tokens=True):
        self.calls += 1
        return self.inner.encode(text, add_special_tokens=add_special_tokens)


def test_long_texts_are_counted_once_and_short_ones_every_time(tokenizer):
    counting = CountingTokenizer(tokenizer)
    profile = ModelProfile(tokenizer=counting)
    long_text = TEXTS[-1]
    short_text = "x" * (TokenCountCache.MIN_CHARS - 1)
    first = profile.count_tokens(long_text)
    assert profile.token_counts.get(long_text) == first == len(tokenizer.encode(long_text, add_special_tokens=False).ids)
    assert profile.count_tokens(long_text) == first
    assert profile.with_tier("small").count_tokens(long_text) == first
    assert counting.calls == 1
    profile.count_tokens(short_text)
    profile.count_tokens(short_text)
    assert counting.calls == 3
    assert profile.token_counts.get(short_text) is None


def test_the_cache_is_bounded_by_characters_and_drops_the_least_recently_used():
    cache = TokenCountCache(max_chars=3000)
    texts = [str(n) * 1000 for n in range(4)]
    for n, text in enumerate(texts[:3]):
        cache.put(text, n)
    assert cache.get(texts[0]) == 0  # now the most recently used
    cache.put(texts[3], 3)
    assert cache.chars == 3000
    assert [cache.get(t) for t in texts] == [0, None, 2, 3]
    cache.put("y" * 3001, 9)
    assert cache.get("y" * 3001) is None and cache.chars == 3000


def test_putting_a_text_twice_counts_its_characters_once():
    cache = TokenCountCache(max_chars=3000)
    cache.put("a" * 1000, 1)
    cache.put("a" * 1000, 1)
    assert cache.chars == 1000


@given(st.text(max_size=2000))
def test_the_estimate_is_characters_over_three_and_a_half_rounded_up(text):
    assert ModelProfile().count_tokens(text) == math.ceil(len(text) / 3.5)


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (7, 2), (8, 3), (35, 10), (36, 11)])
def test_estimate_examples(chars, tokens):
    assert ModelProfile.for_tier("small").count_tokens("a" * chars) == tokens


def test_a_broken_tokenizer_file_is_a_value_error_naming_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_MOE))
    (tmp_path / "tokenizer.json").write_text("not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        ModelProfile.from_model_dir(tmp_path)
