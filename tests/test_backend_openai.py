"""The OpenAI-compatible upstream backend: the SDK suite through a real mlx_lm.server, and faults.

The tiny model's output is noise, so the real-engine tests assert shapes, stop
reasons and usage; scripted fakes (tests/upstreams.py) check text, tool calls and
every failure path.
"""

from __future__ import annotations

import asyncio
import json
import socket
import string
import threading

import anthropic
import httpx
import pytest

from trimkit.backends import upstream as upstream_module
from trimkit.backends.base import BackendError, Finished, GenerationParams
from trimkit.backends.openai import OpenAIBackend
from trimkit.backends.prefill_meter import MIN_PREFILL_FOR_MEASUREMENT
from trimkit.backends.upstream import UpstreamConfig, base_url
from trimkit.backends.upstream_errors import status_error, transport_error
from trimkit.backends.upstream_stream import NativeCalls
from trimkit.server import ServerSettings, create_app
from trimkit.testing import LiveServer, free_port, live_app, spawn_mlx_lm_server, spawn_server, stop_server

from tests.support.clients import created_and_streamed, sdk
from tests.support.polling import wait_until
from tests.support.sse import sse_events
from tests.upstreams import WRITE_TOOL, FakeUpstream, openai_chunk, openai_turn, openai_usage, sse

USER = [{"role": "user", "content": "hello there"}]


def trimkit_in_front_of(url: str, **settings) -> LiveServer:
    return live_app("openai", upstream=url, **settings)


# ---------------------------------------------------------------- a real engine: mlx_lm.server


@pytest.fixture(scope="session")
def mlx_lm_server(tiny_model_dir):
    """mlx-lm's own server on the tiny model (the tests that use it skip where MLX is not installed)."""
    proc, url = spawn_mlx_lm_server(tiny_model_dir)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def trimkit_openai(mlx_lm_server, tiny_model_dir):
    """``trimkit serve --backend openai`` as a process, in front of mlx_lm.server."""
    proc, url = spawn_server(
        ["--backend", "openai", "--upstream", mlx_lm_server + "/v1", "--upstream-model", str(tiny_model_dir)],
        env={"TRIMKIT_UPSTREAM_API_KEY": "engine-key"},
    )
    yield url
    stop_server(proc)


def test_health_names_the_upstream_and_its_model(trimkit_openai, tiny_model_dir):
    health = httpx.get(trimkit_openai + "/health").json()
    assert health["status"] == "ok" and health["backend"] == "openai"
    assert health["model"] == str(tiny_model_dir)
    assert "serving" in health["detail"]


def test_create_returns_text_blocks_a_stop_reason_and_the_engines_usage(trimkit_openai):
    message = sdk(trimkit_openai).messages.create(model="claude-opus-4-8", max_tokens=12, messages=USER)
    assert message.model == "claude-opus-4-8" and message.id.startswith("msg_")
    assert all(block.type == "text" and block.text.strip() for block in message.content)
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 0 < message.usage.output_tokens <= 12
    assert message.usage.input_tokens > 0


def test_a_repeated_prompt_is_reported_as_cache_reads(trimkit_openai):
    client = sdk(trimkit_openai)
    question = [{"role": "user", "content": "Read the parser and explain the nested block handling."}]
    first = client.messages.create(model="claude-x", max_tokens=4, messages=question)
    second = client.messages.create(model="claude-x", max_tokens=4, messages=question)
    total = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens == total
    assert second.usage.cache_read_input_tokens > (first.usage.cache_read_input_tokens or 0)


def test_stream_events_and_final_message(trimkit_openai):
    client = sdk(trimkit_openai)
    with client.messages.stream(model="claude-x", max_tokens=10, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 0 < final.usage.output_tokens <= 10
    raw = httpx.post(
        trimkit_openai + "/v1/messages",
        json={"model": "claude-x", "max_tokens": 10, "messages": USER, "stream": True},
        timeout=60,
    ).text
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop")
    usage = sse_events(raw)[-2][1]["usage"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] > 0


def test_max_tokens_ends_with_max_tokens_after_exactly_that_many(trimkit_openai):
    message = sdk(trimkit_openai).messages.create(model="claude-x", max_tokens=3, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_stop_sequences_cut_the_upstreams_text(trimkit_openai):
    # The noise model's first character is unknown, so stop on any printable one.
    stops = sorted(set(string.printable) - {"\x0b", "\x0c"})
    message, streamed = created_and_streamed(sdk(trimkit_openai), model="claude-x", max_tokens=40, messages=USER,
                                             stop_sequences=stops)
    for msg in (message, streamed):
        assert msg.stop_reason == "stop_sequence" and msg.stop_sequence in stops
        assert msg.usage.output_tokens < 40


def test_count_tokens_counts_the_trimmed_prompt(trimkit_openai):
    client = sdk(trimkit_openai)
    short = client.messages.count_tokens(model="claude-x", messages=USER).input_tokens
    longer = client.messages.count_tokens(model="claude-x", messages=USER, tools=[WRITE_TOOL]).input_tokens
    assert 0 < short < longer


def test_models_listing_names_the_upstream_model(trimkit_openai, tiny_model_dir):
    ids = [m.id for m in sdk(trimkit_openai).models.list().data]
    assert str(tiny_model_dir) in ids


def test_a_local_tokenizer_counts_exactly_and_sets_the_profile(mlx_lm_server, tiny_model_dir):
    from trimkit.profile import ModelProfile

    backend = OpenAIBackend(UpstreamConfig(mlx_lm_server, str(tiny_model_dir), tokenizer=str(tiny_model_dir)))
    local = ModelProfile.from_model_dir(tiny_model_dir)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "def read_file(path)"}]
    assert backend.profile.exact_counts and backend.profile.tier == local.tier == "small"
    assert backend.profile.context_window == local.context_window
    assert backend.count_tokens(messages) == sum(local.count_tokens(m["content"]) + backend.profile.message_tokens for m in messages)


def test_prefill_speed_is_measured_from_time_to_first_token(mlx_lm_server, tiny_model_dir):
    backend = OpenAIBackend(UpstreamConfig(mlx_lm_server, str(tiny_model_dir)))
    estimate = backend.profile.prefill_tps
    long_prompt = " ".join(f"line {i}: the parser reads nested blocks" for i in range(120))

    async def run():
        return [e async for e in backend.generate([{"role": "user", "content": long_prompt}], GenerationParams(2))]

    finished = asyncio.run(run())[-1]
    assert isinstance(finished, Finished) and finished.input_tokens >= MIN_PREFILL_FOR_MEASUREMENT
    assert finished.prefill_tps and finished.prefill_tps > 0
    assert backend.profile.prefill_tps == finished.prefill_tps != estimate


# ---------------------------------------------------------------- scripted upstreams


@pytest.fixture(scope="module")
def scripted_pair():
    with FakeUpstream(models=[{"id": "served-name"}]) as up:
        with trimkit_in_front_of(up.url, upstream_api_key="engine-key", upstream_model="served-name") as server:
            yield up, server.url


@pytest.fixture
def scripted(scripted_pair):
    """A scripted upstream (``up.script(frames, ...)``) and the URL of a trimkit in front of it."""
    up, url = scripted_pair
    up.script()
    return up, url


def test_text_usage_and_the_key_from_config_not_from_the_client(scripted):
    up, url = scripted
    up.script(openai_turn("Hello", " there.", prompt=50, cached=30))
    message = sdk(url).messages.create(model="claude-x", max_tokens=64, messages=USER, extra_body={"temperature": 0.2})
    assert message.content[0].text == "Hello there."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (20, 30)
    assert message.usage.output_tokens == 2
    sent = up.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer engine-key"
    assert "client-key" not in json.dumps(sent["headers"])
    body = sent["body"]
    assert body["model"] == "served-name" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2 and "top_p" not in body
    assert body["messages"][-1] == {"role": "user", "content": "hello there"}
    assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in body["messages"])


def test_finish_reason_length_is_max_tokens(scripted):
    up, url = scripted
    up.script(openai_turn("one", " two", finish="length"))
    message = sdk(url).messages.create(model="claude-x", max_tokens=2, messages=USER)
    assert message.stop_reason == "max_tokens"


def test_native_tool_calls_become_tool_use_blocks(scripted):
    up, url = scripted
    frames = [
        openai_chunk("I'll write it."),
        openai_chunk(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "Write", "arguments": ""}}]),
        openai_chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"file_path": "/tmp/a.txt", '}}]),
        openai_chunk(tool_calls=[{"index": 0, "function": {"arguments": '"content": "hi", "mode": "644"}'}}]),
        openai_chunk(finish="tool_calls"),
        openai_usage(30, 12),
        sse("[DONE]"),
    ]
    up.script(frames)
    message, streamed = created_and_streamed(sdk(url), model="claude-x", max_tokens=100, messages=USER,
                                             tools=[WRITE_TOOL])
    for msg in (message, streamed):
        assert msg.stop_reason == "tool_use"
        assert msg.content[0].type == "text" and msg.content[0].text == "I'll write it."
        call = msg.content[-1]
        assert call.type == "tool_use" and call.name == "Write" and call.id.startswith("toolu_")
        assert call.input == {"file_path": "/tmp/a.txt", "content": "hi", "mode": 644}


def test_native_calls_with_unreadable_arguments_stay_text():
    calls = NativeCalls()
    calls.add(1, "Write", '{"file_path": "/b"}')
    calls.add(0, "Read", '{"file_path": ')
    text = calls.as_text()
    assert 'Read({"file_path": )' in text
    assert '<invoke name="Write">' in text and text.index("Read(") < text.index("<function_calls>")


def test_listing_gives_the_model_and_context_window():
    with FakeUpstream(models=[{"id": "Qwen/Qwen3-Coder-30B-A3B-Instruct", "max_model_len": 40960}]) as up:
        backend = OpenAIBackend(UpstreamConfig(up.url))
    assert backend.status().ready
    assert backend.model == backend.profile.name == "Qwen/Qwen3-Coder-30B-A3B-Instruct"
    assert backend.profile.context_window == 40960 and backend.profile.tier == "medium"


def test_a_llama_cpp_listing_gives_the_size_tier_but_not_its_training_window():
    listing = [{"id": "model.gguf", "meta": {"n_ctx_train": 262144, "n_params": 30_500_000_000}}]
    with FakeUpstream(models=listing) as up:
        backend = OpenAIBackend(UpstreamConfig(up.url))
    assert backend.profile.tier == "medium"
    assert backend.profile.context_window != 262144


def test_several_listed_models_need_upstream_model():
    with FakeUpstream(models=[{"id": "a"}, {"id": "b"}]) as up:
        status = OpenAIBackend(UpstreamConfig(up.url)).status()
        chosen = OpenAIBackend(UpstreamConfig(up.url, "b")).status()
    assert status.failed and "upstream_model" in status.detail
    assert chosen.ready


def test_base_url_takes_the_root_with_or_without_v1():
    assert base_url("http://127.0.0.1:8000/v1/") == base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert base_url("https://gpu.example/engine/v1") == "https://gpu.example/engine"
    with pytest.raises(ValueError):
        base_url("127.0.0.1:8000")


def test_an_upstream_backend_needs_an_upstream_url():
    with pytest.raises(ValueError, match="--upstream"):
        create_app(ServerSettings(backend="openai"))


# ---------------------------------------------------------------- faults


def test_upstream_down_is_529_with_the_reason_and_health_still_answers():
    url = f"http://127.0.0.1:{free_port()}"
    with trimkit_in_front_of(url, upstream_model="m") as server:
        health = httpx.get(server.url + "/health")
        with pytest.raises(anthropic.APIStatusError) as caught:
            sdk(server.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
        again = httpx.get(server.url + "/health")
    assert health.status_code == again.status_code == 503
    assert health.json()["status"] == "loading" and "unreachable" in health.json()["detail"]
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert "unreachable" in caught.value.body["error"]["message"]


def test_an_upstream_that_comes_up_later_is_found(monkeypatch):
    monkeypatch.setattr(upstream_module, "PROBE_RETRY_SECONDS", 0.05)
    port = free_port()
    with trimkit_in_front_of(f"http://127.0.0.1:{port}", upstream_model="fake-model") as server:
        assert httpx.get(server.url + "/health").status_code == 503
        with FakeUpstream(openai_turn("back"), port=port):
            assert wait_until(lambda: httpx.get(server.url + "/health").status_code == 200, 60)
            message = sdk(server.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert message.content[0].text == "back"


def test_an_upstream_lost_after_start_is_529():
    with FakeUpstream(openai_turn("fine")) as up:
        app = create_app(ServerSettings(backend="openai", upstream=up.url))
    with LiveServer(app) as server:
        assert httpx.get(server.url + "/health").status_code == 200
        with pytest.raises(anthropic.APIStatusError) as caught:
            sdk(server.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
        health = httpx.get(server.url + "/health")
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert health.status_code == 503 and "unreachable" in health.json()["detail"]


@pytest.mark.parametrize(
    "status, answer, error_type",
    [(500, 500, "api_error"), (503, 529, "overloaded_error"), (400, 400, "invalid_request_error"),
     (404, 400, "invalid_request_error"), (401, 502, "api_error"), (403, 502, "api_error"),
     (413, 413, "request_too_large"), (429, 429, "rate_limit_error")],
)
def test_upstream_http_errors_map_to_anthropic_errors(scripted, status, answer, error_type):
    up, url = scripted
    up.script(status=status, error_body={"error": {"message": "engine says no", "type": "x"}})
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(url).messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert caught.value.status_code == answer
    assert caught.value.body["error"]["type"] == error_type
    assert "engine says no" in caught.value.body["error"]["message"]


def test_error_bodies_of_every_engine_shape_give_their_message():
    for body in ({"error": "plain"}, {"error": {"message": "plain"}}, {"object": "error", "message": "plain"},
                 {"detail": "plain"}):
        assert str(status_error(400, json.dumps(body).encode(), "POST /x")).endswith(": plain")
    assert "not json" in str(status_error(500, b"not json", "POST /x"))


def test_a_stream_cut_midway_ends_with_an_error_event(scripted):
    up, url = scripted
    up.script([openai_chunk(role="assistant", content=""), openai_chunk("partial "), openai_chunk("answer")], cut=True)
    raw = httpx.post(
        url + "/v1/messages",
        json={"model": "claude-x", "max_tokens": 50, "messages": USER, "stream": True},
        timeout=30,
    ).text
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(url).messages.create(model="claude-x", max_tokens=50, messages=USER)
    events = sse_events(raw)
    assert events[0][0] == "message_start"
    assert any(name == "content_block_delta" for name, _ in events)
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "upstream stream broke" in events[-1][1]["error"]["message"]
    assert caught.value.status_code == 500


def test_a_stream_that_ends_early_without_finishing_is_an_error(scripted):
    up, url = scripted
    up.script([openai_chunk("half")])
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(url).messages.create(model="claude-x", max_tokens=50, messages=USER)
    assert caught.value.status_code == 500
    assert "ended before the response finished" in caught.value.body["error"]["message"]


def test_a_silent_upstream_times_out_as_configured():
    with FakeUpstream(openai_turn("late"), delay=1) as up:
        with trimkit_in_front_of(up.url, upstream_timeout=0.3) as server:
            with pytest.raises(anthropic.APIStatusError) as caught:
                sdk(server.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert caught.value.status_code == 500
    assert "sent nothing for 0.3 s" in caught.value.body["error"]["message"]


def test_a_slow_upstream_does_not_hold_up_other_requests(scripted):
    up, url = scripted
    release = threading.Event()
    up.script(openai_turn("slow"), hold=release)
    done = threading.Event()

    def slow_request():
        sdk(url).messages.create(model="claude-x", max_tokens=5, messages=USER)
        done.set()

    worker = threading.Thread(target=slow_request)
    worker.start()
    assert wait_until(lambda: up.requests, 60)
    health = httpx.get(url + "/health", timeout=5)
    counted = httpx.post(url + "/v1/messages/count_tokens", json={"model": "claude-x", "messages": USER})
    answered_while_waiting = not done.is_set()
    release.set()
    worker.join(timeout=60)
    assert health.status_code == 200 and counted.status_code == 200
    assert answered_while_waiting and done.is_set()


def test_name_resolution_failures_are_configuration_errors():
    cause = socket.gaierror(-2, "Name or service not known")
    exc = httpx.ConnectError("[Errno -2] Name or service not known")
    exc.__cause__ = cause
    error = transport_error(exc, "http://gpu-box:8000", 300, streaming=False)
    refused = transport_error(httpx.ConnectError("[Errno 111] Connection refused"), "http://x", 300, streaming=False)
    assert (error.status, error.error_type, error.lasting) == (500, "api_error", True)
    assert (refused.status, refused.error_type, refused.lasting) == (529, "overloaded_error", False)


def test_closing_the_stream_early_leaves_the_backend_usable_and_close_refuses_more():
    frames = [openai_chunk(f"word{i} ") for i in range(50)]
    with FakeUpstream(frames) as up:
        backend = OpenAIBackend(UpstreamConfig(up.url))

        async def first_two():
            generation = backend.generate(USER, GenerationParams(100))
            items = [await anext(generation), await anext(generation)]
            await generation.aclose()
            return items

        items = asyncio.run(first_two())
        again = asyncio.run(first_two())
        backend.close()
    assert [i.text for i in items] == [i.text for i in again] == ["word0 ", "word1 "]
    assert backend.status().detail == "closed"
    with pytest.raises(BackendError, match="closed"):
        asyncio.run(anext(backend.generate(USER, GenerationParams(5))))
