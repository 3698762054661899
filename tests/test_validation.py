"""Requests the real API refuses get its 400 here too; what it accepts is accepted."""

from __future__ import annotations

import importlib
import typing

import httpx
import pytest

from trimkit.server.validation import MAX_STOP_SEQUENCE_CHARS, MAX_STOP_SEQUENCES
from trimkit.wire import API_BLOCK_TYPES, decode_request

from tests.support.servers import replay_backend, replay_server

USER = [{"role": "user", "content": "hi"}]
TOOL = {"name": "Count", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}
CALL = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Count", "input": {"n": 1}}]}
RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "1"}]}


def body(**fields):
    return {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": USER, **fields}


REFUSED = {
    "max_tokens as a string": body(max_tokens="5"),
    "temperature as a string": body(temperature="0.5"),
    "stream as a string": body(stream="true"),
    "tool_choice naming an undeclared tool": body(tools=[TOOL], tool_choice={"type": "tool", "name": "Missing"}),
    "tool_choice of type tool without a name": body(tools=[TOOL], tool_choice={"type": "tool"}),
    "a tool_result with no tool_use before it": body(messages=[RESULT]),
    "a tool_result answering another turn's tool_use": body(
        messages=[USER[0], CALL, RESULT, {"role": "assistant", "content": "done"},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]),
    "a tool_result whose id matches no tool_use": body(
        messages=[USER[0], CALL, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]),
    "a content block of an unknown type": body(messages=[{"role": "user", "content": [{"type": "banana"}]}]),
    "an unknown block type inside a tool_result": body(messages=[USER[0], CALL, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "banana"}]}]}]),
    "too many stop sequences": body(stop_sequences=[f"s{i}" for i in range(MAX_STOP_SEQUENCES + 1)]),
    "a stop sequence too long": body(stop_sequences=["x" * (MAX_STOP_SEQUENCE_CHARS + 1)]),
}

ACCEPTED = {
    "unknown top-level fields": body(some_future_field={"a": 1}, context_management={"edits": []}),
    "a tool round trip": body(tools=[TOOL], messages=[USER[0], CALL, RESULT]),
    "a system message between the call and its result": body(
        tools=[TOOL], messages=[USER[0], CALL, {"role": "system", "content": "note"}, RESULT]),
    "a call split over two assistant messages": body(
        tools=[TOOL], messages=[USER[0], {"role": "assistant", "content": "thinking aloud"}, CALL, RESULT]),
    "block types of the API that trimkit does not model": body(messages=[{"role": "user", "content": [
        {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]},
        {"type": "text", "text": "hi"}]}]),
    "tool_choice naming a declared tool": body(tools=[TOOL], tool_choice={"type": "tool", "name": "Count"}),
    "the most stop sequences allowed": body(stop_sequences=["y" * MAX_STOP_SEQUENCE_CHARS] * 2
                                            + [f"s{i}" for i in range(MAX_STOP_SEQUENCES - 2)]),
}


@pytest.fixture(scope="module")
def server():
    with replay_server(backend=replay_backend(["ok"], loop=True)) as live:
        yield live


@pytest.mark.parametrize("case", REFUSED)
def test_what_the_api_refuses_is_a_400_invalid_request_error(server, case):
    for route in ("/v1/messages", "/v1/messages/count_tokens"):
        response = httpx.post(server.url + route, json=REFUSED[case], timeout=30)
        assert response.status_code == 400, (route, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("case", ACCEPTED)
def test_what_the_api_accepts_is_answered(server, case):
    headers = {"anthropic-beta": "some-future-beta-2099-01-01,interleaved-thinking-2025-05-14"}
    response = httpx.post(server.url + "/v1/messages?beta=true", json=ACCEPTED[case], headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "ok"


def _literal_types(union_module: str, union_name: str) -> set[str]:
    union = getattr(importlib.import_module(union_module), union_name)
    found = set()
    for member in typing.get_args(union):
        for arg in typing.get_args(member) or (member,):
            hints = typing.get_type_hints(arg, include_extras=True) if isinstance(arg, type) else {}
            kind = hints.get("type")
            while kind is not None and typing.get_origin(kind) is not typing.Literal and typing.get_args(kind):
                kind = typing.get_args(kind)[0]
            if kind is not None and typing.get_origin(kind) is typing.Literal:
                found |= set(typing.get_args(kind))
    return found


def test_every_block_type_the_installed_sdk_can_send_is_one_the_server_accepts():
    sent = _literal_types("anthropic.types.content_block_param", "ContentBlockParam")
    sent |= _literal_types("anthropic.types.beta.beta_content_block_param", "BetaContentBlockParam")
    assert {"text", "tool_result", "mcp_tool_use", "compaction"} <= sent  # the reading works
    assert sent <= API_BLOCK_TYPES, f"types the SDK sends that trimkit refuses: {sorted(sent - API_BLOCK_TYPES)}"


def test_a_known_api_block_type_round_trips_unchanged_through_decoding():
    block = {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "x", "server_name": "s", "input": {}}
    request = decode_request(body(messages=[{"role": "assistant", "content": [block]}]))
    assert request.messages[0].content[0].data == block
