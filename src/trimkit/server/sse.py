"""Server-sent event frames in the exact shape Anthropic clients dispatch on."""

from __future__ import annotations

from typing import Any

import msgspec

from ..wire import TextBlock, ThinkingBlock, ToolUseBlock, to_builtins

_encode = msgspec.json.Encoder().encode


def frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


DELTA_KEYS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}
"""The field each kind of ``content_block_delta`` carries its value in."""


def block_start(index: int, block: TextBlock | ToolUseBlock | ThinkingBlock) -> bytes:
    if isinstance(block, ToolUseBlock):
        content = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
    elif isinstance(block, ThinkingBlock):
        content = {"type": "thinking", "thinking": "", "signature": ""}  # the signature comes in a signature_delta
    else:
        content = {"type": "text", "text": ""}
    return frame("content_block_start", {"type": "content_block_start", "index": index, "content_block": content})


def block_delta(index: int, kind: str, value: str) -> bytes:
    key = DELTA_KEYS[kind]
    return frame(
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: value}},
    )


def block_stop(index: int) -> bytes:
    return frame("content_block_stop", {"type": "content_block_stop", "index": index})


def message_start(message: Any) -> bytes:
    return frame("message_start", {"type": "message_start", "message": to_builtins(message)})


def message_delta(stop_reason: str | None, stop_sequence: str | None, usage: dict[str, int]) -> bytes:
    return frame(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage,
        },
    )


MESSAGE_STOP = frame("message_stop", {"type": "message_stop"})
PING = frame("ping", {"type": "ping"})


def error(error_type: str, message: str) -> bytes:
    return frame("error", {"type": "error", "error": {"type": error_type, "message": message}})
