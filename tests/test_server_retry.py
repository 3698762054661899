"""The server's one retry of a failed tool call, on the replay backend with a dialect made for the test.

The dialect reads ``[[Name]]`` as a call to ``Name`` and ``[[?]]`` as a call it cannot read,
so these tests depend on no family's reader: they check what the server does with a
failed call — hold it, ask again with a correction, stream only the good result, or give
the text when the retry fails too.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.clients import sdk
from tests.support.sse import sse_events
from trimkit.backends.replay import ReplayBackend
from trimkit.profile import ModelProfile
from trimkit.testing import live_app
from trimkit.toolcalls.catalog import Catalog
from trimkit.toolcalls.dialects.base import Dialect
from trimkit.toolcalls.items import FailedCall

CALL = re.compile(r"\[\[([^\]]*)\]\]")


class BracketReader:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.text = ""

    def feed(self, text: str) -> list:
        self.text += text
        return []

    def finish(self, *, truncated: bool = False) -> list:
        items, at = [], 0
        for match in CALL.finditer(self.text):
            if match.start() > at:
                items.append(self.text[at:match.start()])
            name = match.group(1)
            if name == "?":
                items.append(FailedCall(None, match.group(0), "unreadable", "the arguments are not JSON"))
            else:
                items.append(self.catalog.call(name, {"path": "/a"}, match.group(0)))
            at = match.end()
        if at < len(self.text):
            items.append(self.text[at:])
        return items


BRACKETS = Dialect("brackets", lambda template, vocab: False, ("[[",), (), lambda catalog, _: BracketReader(catalog))


class RecordingReplay(ReplayBackend):
    """Replay turns, keeping every chat it was asked to generate from."""

    def __init__(self, turns, **options):
        super().__init__(turns, profile=ModelProfile(name="replay", context_window=200_000, tier="small"), **options)
        self.chats: list[list[dict]] = []

    async def generate(self, messages, params):
        self.chats.append(list(messages))
        async for event in super().generate(messages, params):
            yield event


TOOLS = [{"name": "Read", "description": "Read a file.",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
BODY = {"model": "claude-opus-4-8", "max_tokens": 200, "tools": TOOLS,
        "messages": [{"role": "user", "content": "read /a"}]}


@pytest.fixture(autouse=True)
def brackets(monkeypatch):
    """The server reads every model's output with the bracket dialect."""
    from trimkit.server import lanes

    monkeypatch.setattr(lanes, "dialect_for", lambda template, vocab: BRACKETS)


def serve(turns, **settings):
    backend = RecordingReplay(turns)
    return backend, live_app("replay", backend, **settings)


def client(server):
    return sdk(server.url)


def sse(server, body) -> list[dict]:
    with httpx.stream("POST", server.url + "/v1/messages", json={**body, "stream": True}, timeout=30) as response:
        return [data for _, data in sse_events("".join(response.iter_text()))]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_undeclared_tool_gets_one_retry_and_the_client_sees_only_the_good_call(stream):
    backend, live = serve(["Let me look. [[Frob]] and more", "[[Read]]"])
    with live as server:
        if stream:
            with client(server).messages.stream(**BODY) as events:
                message = events.get_final_message()
        else:
            message = client(server).messages.create(**BODY)
    assert [(b.type, getattr(b, "text", None) or getattr(b, "name", None)) for b in message.content] == [
        ("text", "Let me look."), ("tool_use", "Read")]
    assert message.stop_reason == "tool_use"
    assert len(backend.chats) == 2
    first, retry = backend.chats
    assert retry[: len(first)] == first  # the same conversation, then the correction: the prefix cache holds
    assert retry[-2] == {"role": "assistant", "content": "Let me look. [[Frob]] and more"}
    assert retry[-1]["role"] == "user"
    assert retry[-1]["content"].startswith("Your call to Frob was not made: no tool named")
    assert "Call one of the declared tools by its exact name" in retry[-1]["content"]


def test_nothing_of_the_failed_call_is_streamed():
    backend, live = serve(["[[Frob]]", "[[Read]]"])
    with live as server:
        events = sse(server, BODY)
    text = json.dumps(events)
    assert "Frob" not in text
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["tool_use"]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_an_unreadable_call_is_retried_with_its_own_correction():
    backend, live = serve(["[[?]]", "[[Read]]"])
    with live as server:
        message = client(server).messages.create(**BODY)
    assert [b.type for b in message.content] == ["tool_use"]
    assert backend.chats[1][-1]["content"] == (
        "Your call to a tool could not be read: the arguments are not JSON. "
        "Write the call again, whole, in the format you were shown.")


def test_when_the_retry_fails_too_the_client_gets_the_text():
    backend, live = serve(["[[Frob]]", "Sorry. [[Frob]]"])
    with live as server:
        message = client(server).messages.create(**BODY)
    assert [(b.type, b.text) for b in message.content] == [("text", "Sorry. [[Frob]]")]
    assert message.stop_reason == "end_turn"
    assert len(backend.chats) == 2


def test_without_room_for_a_retry_the_failed_call_is_text():
    backend, live = serve(["[[Frob]]" + " pad" * 40, "[[Read]]"], )
    with live as server:
        message = client(server).messages.create(**{**BODY, "max_tokens": 20})
    assert message.content[0].type == "text" and message.content[0].text.startswith("[[Frob]]")
    assert len(backend.chats) == 1


def test_retries_can_be_turned_off():
    backend, live = serve(["[[Frob]]", "[[Read]]"], retry_tool_calls=False)
    with live as server:
        message = client(server).messages.create(**BODY)
    assert [(b.type, b.text) for b in message.content] == [("text", "[[Frob]]")]
    assert len(backend.chats) == 1


def test_usage_adds_up_both_generations():
    backend, live = serve(["[[Frob]]", "[[Read]]"])
    with live as server:
        message = client(server).messages.create(**BODY)
    first, retry = (backend.count_tokens(chat) for chat in backend.chats)
    assert message.usage.input_tokens == first + retry
    assert message.usage.output_tokens == 2 + 2  # four characters a chunk, two chunks each
