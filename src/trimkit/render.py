"""How a (trimmed) request reads as text to a model that has no native tool blocks.

``chat_messages`` gives role/content pairs for a chat template; ``prompt_text`` is a
canonical plain rendering used to measure requests and to check prefix stability.
Tool turns are written in :mod:`trimkit.convention`, so the model sees its earlier
calls exactly the way it is taught to make them.
"""

from __future__ import annotations

from typing import Iterable

import msgspec

from . import convention
from .wire import (
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UnknownBlock,
    system_text,
)


def tool_names(messages: Iterable[Message]) -> dict[str, str]:
    """Map each ``tool_use`` id to its tool name."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolUseBlock):
                    names[block.id] = block.name
    return names


def result_text(block: ToolResultBlock) -> str:
    if isinstance(block.content, str):
        return block.content
    if not block.content:
        return ""
    return "\n".join(block_view(b, {}) for b in block.content)


def block_view(block: Block, names: dict[str, str]) -> str:
    """The text a model reads for one block (tool blocks in the convention)."""
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ToolUseBlock):
        return convention.format_calls([(block.name, block.input)])
    if isinstance(block, ToolResultBlock):
        return convention.format_results(
            [(names.get(block.tool_use_id, "tool"), result_text(block), bool(block.is_error))]
        )
    if isinstance(block, ImageBlock):
        return "[image]"
    if isinstance(block, DocumentBlock):
        return f"[document: {block.title}]" if block.title else "[document]"
    if isinstance(block, (ThinkingBlock, RedactedThinkingBlock)):
        return ""
    if isinstance(block, UnknownBlock):
        return f"[{block.block_type}]"
    return ""


def message_view(message: Message, names: dict[str, str]) -> str:
    """A message's text, with adjacent tool calls (or results) grouped in one block."""
    if isinstance(message.content, str):
        return message.content
    parts: list[str] = []
    calls: list[tuple[str, dict]] = []
    results: list[tuple[str, str, bool]] = []

    def flush() -> None:
        if calls:
            parts.append(convention.format_calls(list(calls)))
            calls.clear()
        if results:
            parts.append(convention.format_results(list(results)))
            results.clear()

    for block in message.content:
        if isinstance(block, ToolUseBlock):
            if results:
                flush()
            calls.append((block.name, block.input if isinstance(block.input, dict) else {}))
        elif isinstance(block, ToolResultBlock):
            if calls:
                flush()
            results.append((names.get(block.tool_use_id, "tool"), result_text(block), bool(block.is_error)))
        else:
            flush()
            text = block_view(block, names)
            if text:
                parts.append(text)
    flush()
    return "\n\n".join(parts)


def chat_messages(request: MessagesRequest) -> list[dict[str, str]]:
    """Role/content pairs for a chat template.

    ``role: "system"`` messages before the first turn join the system prompt; later
    ones become user turns, since most chat templates allow a system message only
    first. Consecutive turns of one role are merged, for templates that insist on
    alternation.
    """
    names = tool_names(request.messages)
    system = system_text(request)
    out: list[dict[str, str]] = []
    for message in request.messages:
        text = message_view(message, names)
        role = message.role
        if role == "system":
            if not out:
                system = f"{system}\n\n{text}" if system else text
                continue
            role = "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    if request.tools:
        system = f"{system}\n\n{tools_json(request)}" if system else tools_json(request)
    if system:
        out.insert(0, {"role": "system", "content": system})
    return out


def prompt_text(request: MessagesRequest) -> str:
    """A canonical plain-text rendering: what a model would read, tools included."""
    return "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in chat_messages(request))


def tools_json(request: MessagesRequest) -> str:
    """Tools the pipeline left as JSON (its tools stage disabled), as a model would read them."""
    if not request.tools:
        return ""
    return (
        "# Tools\nCall a tool by writing:\n"
        + convention.EXAMPLE_CALL
        + "\n\nAvailable tools (JSON Schema):\n"
        + msgspec.json.encode(request.tools).decode()
    )
