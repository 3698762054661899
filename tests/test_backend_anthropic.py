"""The Anthropic-compatible upstream backend: trimkit in front of another trimkit, and faults."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from trimkit.backends.anthropic_upstream import AnthropicBackend
from trimkit.backends.upstream import UpstreamConfig
from trimkit.testing import LiveServer, live_app

from tests.support.clients import created_and_streamed, sdk
from tests.support.servers import replay_server
from tests.support.sse import sse_events
from tests.upstreams import WRITE_TOOL, FakeUpstream, anthropic_event

USER = [{"role": "user", "content": "write hello to /tmp/hello.txt"}]
SCRIPTED_CALL = (
    "Writing it now.\n<function_calls>\n<invoke name=\"Write\">\n"
    "<parameter name=\"file_path\">/tmp/hello.txt</parameter>\n<parameter name=\"content\">hello</parameter>\n"
    "<parameter name=\"mode\">644</parameter>\n</invoke>\n</function_calls>"
)


def inner_trimkit(turns: list[str], window: int = 50_000) -> LiveServer:
    """A trimkit with the replay backend, keyed, to be the upstream."""
    return replay_server(turns, name="inner-model", window=window, tier="large", api_key="inner-key")


def outer_trimkit(upstream: str, **settings) -> LiveServer:
    return live_app("anthropic", upstream=upstream, **settings)


def test_a_scripted_tool_call_passes_through_and_becomes_tool_use():
    with inner_trimkit([SCRIPTED_CALL, SCRIPTED_CALL]) as inner:
        with outer_trimkit(inner.url, upstream_api_key="inner-key") as outer:
            message, streamed = created_and_streamed(sdk(outer.url), model="claude-opus-4-8", max_tokens=200,
                                                     messages=USER, tools=[WRITE_TOOL])
    for msg in (message, streamed):
        assert msg.stop_reason == "tool_use"
        assert msg.content[0].type == "text" and msg.content[0].text == "Writing it now."
        call = msg.content[1]
        assert call.type == "tool_use" and call.name == "Write"
        assert call.input == {"file_path": "/tmp/hello.txt", "content": "hello", "mode": 644}
        assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_the_profile_comes_from_the_upstreams_listing_and_the_key_from_config():
    with inner_trimkit(["fine"]) as inner:
        with outer_trimkit(inner.url, upstream_api_key="inner-key") as outer:
            health = httpx.get(outer.url + "/health").json()
            models = [m.id for m in sdk(outer.url).models.list().data]
    assert health["status"] == "ok" and health["backend"] == "anthropic"
    assert health["model"] == "inner-model" and health["context_window"] == 50_000
    assert "inner-model" in models


def test_the_request_sent_upstream_is_the_rendered_chat():
    frames = [
        anthropic_event("message_start", message={"usage": {"input_tokens": 12, "cache_read_input_tokens": 30,
                                                            "output_tokens": 1}}),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        anthropic_event("content_block_stop", index=0),
        anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 3}),
        anthropic_event("message_stop"),
    ]
    with FakeUpstream(frames, models=[{"id": "engine-model"}]) as up, outer_trimkit(up.url) as outer:
        message = sdk(outer.url).messages.create(
            model="claude-x", max_tokens=50, system="Be brief.", messages=USER, extra_body={"top_k": 5}
        )
    assert message.content[0].text == "Hi" and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (12, 30, 3)
    sent = up.requests[0]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in sent["headers"]  # none configured; the client's key is never forwarded
    body = sent["body"]
    assert body["model"] == "engine-model" and body["stream"] is True and body["top_k"] == 5
    assert body["system"].startswith("Be brief.")
    assert body["messages"] == [{"role": "user", "content": USER[0]["content"]}]


def test_native_tool_use_blocks_and_max_tokens_come_back_in_the_convention():
    frames = [
        anthropic_event("message_start", message={"usage": {"input_tokens": 20, "output_tokens": 1}}),
        anthropic_event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        anthropic_event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}),
        anthropic_event("content_block_stop", index=0),
        anthropic_event("content_block_start", index=1,
                        content_block={"type": "tool_use", "id": "toolu_x", "name": "Write", "input": {}}),
        anthropic_event("content_block_delta", index=1,
                        delta={"type": "input_json_delta", "partial_json": '{"file_path": "/tmp/b", '}),
        anthropic_event("content_block_delta", index=1,
                        delta={"type": "input_json_delta", "partial_json": '"content": "x", "mode": "7"}'}),
        anthropic_event("content_block_stop", index=1),
        anthropic_event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 9}),
        anthropic_event("message_stop"),
    ]
    with FakeUpstream(frames) as up, outer_trimkit(up.url) as outer:
        message = sdk(outer.url).messages.create(model="claude-x", max_tokens=50, messages=USER, tools=[WRITE_TOOL])
        up.script([
            anthropic_event("message_start", message={"usage": {"input_tokens": 20, "output_tokens": 1}}),
            anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "cut off"}),
            anthropic_event("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 2}),
            anthropic_event("message_stop"),
        ])
        cut = sdk(outer.url).messages.create(model="claude-x", max_tokens=2, messages=USER)
    assert [block.type for block in message.content] == ["tool_use"]
    assert message.content[0].input == {"file_path": "/tmp/b", "content": "x", "mode": 7}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 9
    assert cut.stop_reason == "max_tokens" and cut.content[0].text == "cut off"


def test_an_error_event_midstream_keeps_its_type():
    frames = [
        anthropic_event("message_start", message={"usage": {"input_tokens": 5, "output_tokens": 1}}),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "par"}),
        anthropic_event("error", error={"type": "overloaded_error", "message": "engine overloaded"}),
    ]
    with FakeUpstream(frames) as up, outer_trimkit(up.url) as outer:
        raw = httpx.post(outer.url + "/v1/messages", timeout=30,
                         json={"model": "claude-x", "max_tokens": 50, "messages": USER, "stream": True}).text
        with pytest.raises(anthropic.APIStatusError) as caught:
            sdk(outer.url).messages.create(model="claude-x", max_tokens=50, messages=USER)
    name, data = sse_events(raw)[-1]
    assert name == "error" and data["error"] == {"type": "overloaded_error", "message": "upstream error: engine overloaded"}
    assert caught.value.status_code == 529


def test_a_stream_cut_midway_ends_with_an_error_event():
    frames = [
        anthropic_event("message_start", message={"usage": {"input_tokens": 5, "output_tokens": 1}}),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "partial"}),
    ]
    with FakeUpstream(frames, cut=True) as up, outer_trimkit(up.url) as outer:
        raw = httpx.post(outer.url + "/v1/messages", timeout=30,
                         json={"model": "claude-x", "max_tokens": 50, "messages": USER, "stream": True}).text
    events = sse_events(raw)
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert "upstream stream broke" in events[-1][1]["error"]["message"]


def test_a_rejected_upstream_key_is_a_configuration_error():
    with inner_trimkit(["never"]) as inner:
        backend = AnthropicBackend(UpstreamConfig(inner.url, api_key="wrong"))
        with outer_trimkit(inner.url, upstream_api_key="wrong", upstream_model="inner-model") as outer:
            with pytest.raises(anthropic.APIStatusError) as caught:
                sdk(outer.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
    status = backend.status()
    assert status.failed and "401" in status.detail
    assert caught.value.status_code == 502 and "upstream_api_key" in caught.value.body["error"]["message"]
    assert caught.value.body["error"]["type"] == "api_error" and caught.value.response.headers["x-should-retry"] == "false"


def test_upstream_4xx_passes_its_message_through_as_400():
    with inner_trimkit(["never"], window=50_000) as inner:
        with outer_trimkit(inner.url, upstream_api_key="inner-key", upstream_model="gpt-4o") as outer:
            with pytest.raises(anthropic.BadRequestError) as caught:
                sdk(outer.url).messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "gpt-4o is not served here" in caught.value.body["error"]["message"]
