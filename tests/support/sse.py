"""Reading a Messages API event stream the way a test asserts on it."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_events(raw: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of each frame of a raw SSE body.

    Strict on purpose: every frame must be an ``event:`` line followed by a ``data:``
    line, since Anthropic clients dispatch on the event line and a bare ``data:`` frame
    reaches them as nothing at all.
    """
    events = []
    for frame in raw.strip().split("\n\n"):
        lines = frame.split("\n")
        assert len(lines) >= 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        events.append((lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))))
    return events


def streamed_text(raw: str) -> str:
    """The text of a stream's ``text_delta`` events, joined in order."""
    return "".join(
        data["delta"]["text"]
        for name, data in sse_events(raw)
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta"
    )


def read_until_first_delta(response: httpx.Response) -> list[str]:
    """The lines of a streaming response up to its first ``content_block_delta`` event line.

    Leaves the rest unread, so closing the response afterwards is a client that leaves
    mid-stream.
    """
    lines = []
    for line in response.iter_lines():
        lines.append(line)
        if line == "event: content_block_delta":
            break
    return lines
