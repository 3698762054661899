"""trimkit in front of real engines: llama.cpp's llama-server and vLLM (CPU), each with the
OpenAI backend and the Anthropic one, with the official SDK as the client.

The engines are built or installed once into ``~/.cache/trimkit-tests/engines`` (see
:mod:`trimkit.testing.engines`) and serve a tiny random model from trimkit's own
builder. Its answers are noise that never ends early, so the tests assert shapes,
usage, cache reads and the exact tokens; a tool call is forced through the fault
proxy (tests/engines.py): llama.cpp's ``grammar`` and vLLM's ``structured_outputs``
make the engine write exactly trimkit's tool-call markup, with real tokenization.
"""

from __future__ import annotations

import json
import threading

import anthropic
import httpx
import pytest

from trimkit import convention
from trimkit.testing.engines import start_llama_server

from tests.engines import FaultProxy, trimkit_in_front
from tests.fixtures.claude_code import first_request
from tests.support.clients import sdk
from tests.support.sse import sse_events

pytestmark = [pytest.mark.engines, pytest.mark.slow]

PAIRS = [("llama", "openai"), ("llama", "anthropic"), ("vllm", "openai"), ("vllm", "anthropic")]
SYSTEM = ("You are a careful assistant for a small Python project. Read the files before you change them, "
          "keep the tests passing, and answer in short sentences. ") * 8  # several cache blocks of prefix
USER = [{"role": "user", "content": "Read the parser and explain the nested block handling."}]
WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"},
                                                      "mode": {"type": "integer"}},
                     "required": ["file_path", "content"]},
}
FORCED_CALL = {"file_path": "/tmp/notes.txt", "content": "hello world", "mode": "644"}


def engine_for(request, name: str):
    return request.getfixturevalue(f"{name}_engine")


@pytest.fixture(params=PAIRS, ids=[f"{e}-{b}" for e, b in PAIRS])
def served(request, engine_model_dir):
    """(engine, backend, proxy, trimkit URL): trimkit → fault proxy → the real engine."""
    name, backend = request.param
    engine = engine_for(request, name)
    with FaultProxy(engine.url) as proxy, trimkit_in_front(
        proxy.url, backend, engine, upstream_tokenizer=str(engine_model_dir)
    ) as server:
        yield engine, backend, proxy, server.url


def create(url: str, **fields):
    fields = {"model": "claude-x", "max_tokens": 8, "messages": USER, **fields}
    return sdk(url).messages.create(**fields)


# ---------------------------------------------------------------- the SDK suite


def test_create_answers_with_text_and_the_engines_usage(served):
    engine, backend, proxy, url = served
    message = create(url, system=SYSTEM)
    assert message.content and all(block.type == "text" for block in message.content)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 8
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) > 100
    sent = proxy.sent[0]
    assert sent["path"] == ("/v1/chat/completions" if backend == "openai" else "/v1/messages")
    assert sent["body"]["model"] == engine.model and sent["body"]["max_tokens"] == 8


def test_stream_gives_every_event_in_order_and_the_same_usage(served):
    _, _, _, url = served
    with sdk(url).messages.stream(model="claude-x", max_tokens=8, messages=USER) as stream:
        final = stream.get_final_message()
    raw = httpx.post(url + "/v1/messages", timeout=120,
                     json={"model": "claude-x", "max_tokens": 8, "messages": USER, "stream": True}).text
    names = [name for name, _ in sse_events(raw)]
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 8
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") >= 1
    assert sse_events(raw)[-2][1]["usage"]["output_tokens"] == 8


def test_count_tokens_matches_what_the_engine_prefills(served):
    _, _, _, url = served
    counted = sdk(url).messages.count_tokens(model="claude-x", system=SYSTEM, messages=USER).input_tokens
    usage = create(url, system=SYSTEM).usage
    prefilled = usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert abs(counted - prefilled) <= 12  # the chat template's markers, estimated at 4 a message


def test_client_errors_are_anthropic_errors_and_never_reach_the_engine(served):
    _, _, proxy, url = served
    with pytest.raises(anthropic.NotFoundError):
        create(url, model="gpt-4o")
    with pytest.raises(anthropic.BadRequestError):
        create(url, messages=[])
    assert proxy.sent == []


def test_a_tool_call_the_engine_writes_comes_back_as_tool_use_with_the_clients_types(served):
    engine, backend, proxy, url = served
    if backend == "anthropic":
        pytest.skip(f"{engine.kind}'s /v1/messages ignores grammar and structured_outputs and does not "
                    "constrain a forced tool_choice: the random model cannot be made to write a call there")
    proxy.rewrite(force_output(engine, convention.format_calls([("Write", FORCED_CALL)])))
    client = sdk(url)
    message = client.messages.create(model="claude-x", max_tokens=300, messages=USER, tools=[WRITE_TOOL])
    with client.messages.stream(model="claude-x", max_tokens=300, messages=USER, tools=[WRITE_TOOL]) as stream:
        streamed = stream.get_final_message()
    for answer in (message, streamed):
        call = answer.content[-1]
        assert answer.stop_reason == "tool_use"
        assert call.type == "tool_use" and call.name == "Write" and call.id.startswith("toolu_")
        assert call.input == {"file_path": "/tmp/notes.txt", "content": "hello world", "mode": 644}


def test_vllms_native_tool_use_blocks_reach_the_client_without_an_error(vllm_engine, engine_model_dir):
    """vLLM answers a forced tool choice with a tool_use block (its arguments noise from the random
    model): trimkit turns it into a call when the arguments are an object, else into text."""
    tool = {"name": "Write", "description": "Write a file", "input_schema": WRITE_TOOL["input_schema"]}
    with FaultProxy(vllm_engine.url) as proxy, trimkit_in_front(proxy.url, "anthropic", vllm_engine) as server:
        proxy.rewrite(lambda body: {**body, "tools": [tool], "tool_choice": {"type": "tool", "name": "Write"}})
        message = create(server.url, max_tokens=40, tools=[WRITE_TOOL])
    last = message.content[-1]
    assert (last.type == "tool_use" and last.name == "Write") or (last.type == "text" and "Write(" in last.text)


def test_a_tool_result_goes_back_to_the_engine_in_the_rendered_chat(served):
    _, _, proxy, url = served
    history = [*USER,
               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "Write",
                                                  "input": {"file_path": "/tmp/notes.txt", "content": "hi"}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                             "content": "wrote 2 bytes to /tmp/notes.txt"}]}]
    answer = create(url, messages=history, tools=[WRITE_TOOL])
    rendered = json.dumps(proxy.sent[0]["body"])
    assert answer.stop_reason == "max_tokens" and answer.content[0].type == "text"
    assert "wrote 2 bytes to /tmp/notes.txt" in rendered and '<invoke name=\\"Write\\">' in rendered


def force_output(engine, text: str):
    """A body rewrite that makes the engine say exactly ``text``: a grammar, or a choice of one."""
    if engine.kind == "llama-server":
        grammar = 'root ::= "' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        return lambda body: {**body, "grammar": grammar}
    return lambda body: {**body, "structured_outputs": {"choice": [text]}}


# ---------------------------------------------------------------- the prefix cache


def test_turn_two_reads_turn_one_from_the_engines_prefix_cache(served):
    _, _, _, url = served
    first = create(url, system=SYSTEM)
    turn_one = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
    second = create(url, system=SYSTEM, messages=[*USER, {"role": "assistant", "content": first.content[0].text},
                                                  {"role": "user", "content": "And the error path?"}])
    assert second.usage.cache_read_input_tokens >= turn_one * 0.5
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens > turn_one


# ---------------------------------------------------------------- a Claude Code request


def test_a_claude_code_request_is_trimmed_to_fit_and_answered(request, engine_model_dir):
    for name, backend in PAIRS:
        engine = engine_for(request, name)
        body = first_request("what does the parser do with nested blocks?")
        with FaultProxy(engine.url) as proxy, trimkit_in_front(
            proxy.url, backend, engine, upstream_tokenizer=str(engine_model_dir), max_output_tokens=16
        ) as server:
            raw = httpx.post(server.url + "/v1/messages?beta=true", json=body, timeout=300, headers={
                "x-api-key": "client-key", "anthropic-version": "2023-06-01",
                "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}).text
            sent = proxy.sent[0]["body"]
        events = sse_events(raw)
        assert events[-1][0] == "message_stop", (name, backend, raw[-500:])
        assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
        assert len(json.dumps(sent)) < len(json.dumps(body)) / 8  # ~88 KB in, a few KB to the engine
        text = json.dumps(sent)
        assert "nested blocks" in text and '<tool name=\\"Read\\">' in text
        assert "x-anthropic-billing-header" not in text


# ---------------------------------------------------------------- temperature 0


def test_temperature_zero_gives_the_same_tokens_through_trimkit_as_directly(served):
    engine, backend, proxy, url = served
    via = create(url, system="You are terse.", max_tokens=24, extra_body={"temperature": 0})
    assert proxy.sent[0]["body"]["messages"][-1] == {"role": "user", "content": USER[0]["content"]}
    headers = {"authorization": f"Bearer {engine.api_key}"}
    if backend == "openai":
        direct = httpx.post(engine.url + "/v1/chat/completions", headers=headers, timeout=120, json={
            "model": engine.model, "max_tokens": 24, "temperature": 0,
            "messages": [{"role": "system", "content": "You are terse."}, *USER]}).json()
        direct_text = direct["choices"][0]["message"]["content"]
    else:
        direct = httpx.post(engine.url + "/v1/messages", headers=headers, timeout=120, json={
            "model": engine.model, "max_tokens": 24, "temperature": 0, "system": "You are terse.",
            "messages": USER}).json()
        direct_text = "".join(block["text"] for block in direct["content"] if block["type"] == "text")
    assert via.usage.output_tokens == 24
    assert "".join(block.text for block in via.content) == direct_text


# ---------------------------------------------------------------- upstream faults


def test_a_wrong_key_is_a_configuration_error_naming_the_key_setting(request, engine_model_dir):
    for name, backend in PAIRS:
        engine = engine_for(request, name)
        with trimkit_in_front(engine.url, backend, engine, upstream_api_key="wrong") as server:
            with pytest.raises(anthropic.InternalServerError) as caught:
                create(server.url)
            health = httpx.get(server.url + "/health")
        assert "401" in str(caught.value) and "upstream_api_key" in str(caught.value), (name, backend)
        assert health.status_code == 503 and health.json()["status"] == "error"


@pytest.mark.parametrize("status, error_type, client_status", [(401, "api_error", 502), (500, "api_error", 500),
                                                               (503, "overloaded_error", 529)])
def test_engine_errors_become_anthropic_errors(served, status, error_type, client_status):
    _, _, proxy, url = served
    proxy.fail(status, {"error": {"code": status, "message": f"scripted {status}", "type": "server_error"}})
    response = httpx.post(url + "/v1/messages", timeout=60,
                          json={"model": "claude-x", "max_tokens": 8, "messages": USER})
    assert response.status_code == client_status
    assert response.json()["error"]["type"] == error_type
    assert f"scripted {status}" in response.json()["error"]["message"]


def test_garbage_from_the_engine_is_a_clean_error(served):
    _, _, proxy, url = served
    proxy.garbage()
    request = {"model": "claude-x", "max_tokens": 8, "messages": USER}
    plain = httpx.post(url + "/v1/messages", timeout=60, json=request)
    streamed = httpx.post(url + "/v1/messages", timeout=60, json={**request, "stream": True})
    for response in (plain, streamed):  # nothing was sent yet, so a stream gets the status too
        assert response.status_code == 500 and "unreadable" in response.json()["error"]["message"]


def test_garbage_after_the_engines_first_words_ends_the_stream_with_an_error_event(served):
    _, _, proxy, url = served
    proxy.garbage(midway=True)
    raw = httpx.post(url + "/v1/messages", timeout=60, json={"model": "claude-x", "max_tokens": 32,
                                                             "messages": USER, "stream": True}).text
    events = sse_events(raw)
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert "unreadable" in events[-1][1]["error"]["message"] and "Traceback" not in raw


def stream_until_first_text_then(url: str, action) -> list[tuple[str, dict]]:
    """Stream a long answer, run ``action`` once the first text arrives, and return every event."""
    events: list[tuple[str, dict]] = []
    body = {"model": "claude-x", "max_tokens": 4000, "messages": USER, "stream": True}
    with httpx.stream("POST", url + "/v1/messages", json=body, timeout=300) as response:
        event = ""
        done = False
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                events.append((event, data))
                if event == "content_block_delta" and not done:
                    done = True
                    action()
    return events


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_llama_server_killed_mid_stream_ends_the_stream_with_an_error_and_the_next_request_gets_529(
        backend, engine_gguf, tmp_path):
    engine = start_llama_server(engine_gguf, log_dir=tmp_path)
    try:
        with trimkit_in_front(engine.url, backend, engine) as server:
            events = stream_until_first_text_then(server.url, engine.kill)
            after = httpx.post(server.url + "/v1/messages", timeout=60,
                               json={"model": "claude-x", "max_tokens": 8, "messages": USER})
    finally:
        engine.stop()
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert sum(1 for name, _ in events if name == "content_block_delta") < 4000
    assert after.status_code == 529 and after.json()["error"]["type"] == "overloaded_error"


def test_the_engines_served_window_is_what_trimkit_budgets_for(request):
    for name in ("llama", "vllm"):
        engine = engine_for(request, name)
        with trimkit_in_front(engine.url, "openai", engine) as server:
            health = httpx.get(server.url + "/health").json()
        assert health["context_window"] == 8192, (name, health)


def test_concurrent_streams_through_one_trimkit_all_finish(request):
    engine = engine_for(request, "llama")
    with trimkit_in_front(engine.url, "openai", engine) as server:
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(create(server.url).usage.output_tokens))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [8] * 6


def test_vllm_killed_mid_stream_ends_the_stream_with_an_error_and_the_next_request_gets_529(vllm_engine):
    """Kills the shared vLLM (the next test that needs one starts another, so this one runs late)."""
    with trimkit_in_front(vllm_engine.url, "anthropic", vllm_engine) as server:
        events = stream_until_first_text_then(server.url, vllm_engine.kill)
        after = httpx.post(server.url + "/v1/messages", timeout=60,
                           json={"model": "claude-x", "max_tokens": 8, "messages": USER})
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "Traceback" not in json.dumps(events)
    assert after.status_code == 529 and after.json()["error"]["type"] == "overloaded_error"
