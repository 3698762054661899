"""What the engine tests stand on, without building an engine: the build cache and the GGUF writer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from trimkit.testing import engines
from trimkit.testing.engines import COMPLETE, build_seconds, cache_root, cached_build
from trimkit.testing.gguf_export import _rotary_to_interleaved, tensor_name, write_gguf


def test_a_build_happens_once_and_lands_complete(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "bin").mkdir()
        (tmp / "bin" / "tool").write_text("built")

    target = tmp_path / "tool-1.0"
    assert cached_build(target, build) == target
    assert cached_build(target, build) == target
    assert len(calls) == 1 and calls[0] != target  # built elsewhere, then renamed into place
    assert (target / "bin" / "tool").read_text() == "built" and (target / COMPLETE).is_file()
    assert build_seconds(target) is not None


def test_a_half_finished_build_is_thrown_away_and_done_again(tmp_path):
    target = tmp_path / "tool-1.0"
    (target / "bin").mkdir(parents=True)  # an earlier build stopped before it was complete
    (target / "bin" / "half").write_text("?")
    stale = tmp_path / ".tool-1.0.tmp-99999"
    stale.mkdir()

    def failing(tmp):
        (tmp / "partial").write_text("x")
        raise RuntimeError("compiler died")

    with pytest.raises(RuntimeError, match="compiler died"):
        cached_build(target, failing)
    assert not target.exists() and not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tool-1.0.lock"]  # no temporary directory left behind

    cached_build(target, lambda tmp: (tmp / "ok").write_text("ok"))
    assert (target / "ok").is_file() and not (target / "bin").exists()


def test_two_processes_asking_at_once_build_once(tmp_path):
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow(tmp):
        calls.append(tmp)
        started.set()
        release.wait(10)
        (tmp / "done").write_text("1")

    target = tmp_path / "tool"
    first = threading.Thread(target=cached_build, args=(target, slow))
    first.start()
    started.wait(10)
    second = threading.Thread(target=cached_build, args=(target, slow))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and (target / "done").is_file()


def test_the_cache_follows_xdg_cache_home_and_can_be_named(monkeypatch, tmp_path):
    monkeypatch.delenv("TRIMKIT_ENGINE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "trimkit-tests" / "engines"
    monkeypatch.setenv("TRIMKIT_ENGINE_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_no_compiler_means_the_engine_is_unavailable_not_broken(monkeypatch):
    monkeypatch.setattr(engines.shutil, "which", lambda tool: None if tool == "cmake" else "/usr/bin/" + tool)
    with pytest.raises(engines.EngineUnavailable, match="cmake not installed"):
        engines.build_llama_server()


def test_the_gguf_carries_the_tiny_models_shape_tokenizer_and_template(tmp_path):
    from gguf import GGUFReader

    from trimkit.testing.tinymodel import CHAT_TEMPLATE, build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    reader = GGUFReader(write_gguf(model, tmp_path / "tiny.gguf"))

    def field(name):
        return reader.fields[name].contents()

    assert field("general.architecture") == "llama"
    assert field("llama.attention.key_length") == 32 and field("llama.block_count") == 2
    assert field("tokenizer.ggml.model") == "gpt2" and len(field("tokenizer.ggml.tokens")) == 768
    assert field("tokenizer.chat_template") == CHAT_TEMPLATE
    tokens = field("tokenizer.ggml.tokens")
    assert tokens[field("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output_norm.weight", "blk.1.attn_q.weight", "blk.0.ffn_down.weight"} <= names


def test_query_and_key_rows_are_interleaved_per_head_as_llama_cpp_rotates_them():
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)  # 2 heads of 4 dims: halves [0 1|2 3] [4 5|6 7]
    assert _rotary_to_interleaved(rows, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert tensor_name("model.layers.3.self_attn.o_proj.weight") == "blk.3.attn_output.weight"
    with pytest.raises(ValueError, match="no GGUF name"):
        tensor_name("model.layers.0.mlp.experts.weight")
