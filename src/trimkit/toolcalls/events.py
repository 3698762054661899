"""Response events as the Messages API writes them: the ``data`` of each ``content_block_*`` event.

One place for the shape, shared by trimkit's server (which frames them as SSE) and
by the readers that rewrite someone else's stream (:mod:`trimkit.toolcalls.messages`).
"""

from __future__ import annotations

from typing import Any

from ..wire import TextBlock, ThinkingBlock, ToolUseBlock
from .response import BlockDelta, BlockStart, BlockStop, ResponseEvent

DELTA_KEYS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}
"""The field each kind of ``content_block_delta`` carries its value in."""


def block_start(index: int, block: TextBlock | ToolUseBlock | ThinkingBlock) -> dict[str, Any]:
    if isinstance(block, ToolUseBlock):
        content = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
    elif isinstance(block, ThinkingBlock):
        content = {"type": "thinking", "thinking": "", "signature": ""}  # the signature comes in a signature_delta
    else:
        content = {"type": "text", "text": ""}
    return {"type": "content_block_start", "index": index, "content_block": content}


def block_delta(index: int, kind: str, value: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, DELTA_KEYS[kind]: value}}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def event_data(event: ResponseEvent, offset: int = 0) -> dict[str, Any]:
    """The event's ``data`` object, its block index moved by ``offset``."""
    if isinstance(event, BlockStart):
        return block_start(event.index + offset, event.block)
    if isinstance(event, BlockDelta):
        return block_delta(event.index + offset, event.kind, event.value)
    if isinstance(event, BlockStop):
        return block_stop(event.index + offset)
    raise TypeError(f"not a response event: {event!r}")
