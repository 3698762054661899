"""Server-sent event frames in the exact shape Anthropic clients dispatch on."""

from __future__ import annotations

from typing import Any

import msgspec

from ..toolcalls import events
from ..wire import TextBlock, ThinkingBlock, ToolUseBlock, to_builtins

_encode = msgspec.json.Encoder().encode


def frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def block_start(index: int, block: TextBlock | ToolUseBlock | ThinkingBlock) -> bytes:
    return frame("content_block_start", events.block_start(index, block))


def block_delta(index: int, kind: str, value: str) -> bytes:
    return frame("content_block_delta", events.block_delta(index, kind, value))


def block_stop(index: int) -> bytes:
    return frame("content_block_stop", events.block_stop(index))


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
