"""How a (trimmed) request reads to a model, as chat messages for its chat template.

Two conventions for tools:

* trimkit's XML (:mod:`trimkit.convention`), for any template: ``chat_messages`` gives
  role/content pairs in which earlier tool turns are written in the convention, so the
  model sees its calls exactly the way the tools stage taught it to make them;
* the model's own, for templates that render tools: ``native_chat`` gives OpenAI-style
  messages (assistant ``tool_calls``, ``role: "tool"`` results) and the tool definitions,
  which the template writes in the format the model was trained on.
  :mod:`trimkit.chat_template` adapts them to what a particular template takes.

Both return a :class:`Chat`. ``prompt_text`` is a canonical plain rendering used to
measure requests and to check prefix stability.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any, Iterable

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
    message_blocks,
    system_text,
)

_BASE62 = string.digits + string.ascii_letters


class Chat(list):
    """Chat messages for a template, with what else the template is given.

    It is the list of message dicts, so a backend that reads only messages takes it as
    it always did. ``tools`` are the function definitions a template renders (the
    model's own convention only), in the OpenAI shape Hugging Face templates read;
    ``thinking`` is the request's reasoning setting (None: the template's default).
    """

    def __init__(self, messages: Iterable[dict[str, Any]] = (), *, tools: list[dict[str, Any]] | None = None,
                 thinking: bool | None = None):
        super().__init__(messages)
        self.tools = tools
        self.thinking = thinking

    def with_messages(self, messages: Iterable[dict[str, Any]]) -> "Chat":
        return Chat(messages, tools=self.tools, thinking=self.thinking)


def thinking_setting(request: MessagesRequest) -> bool | None:
    """The request's ``thinking``: on (``enabled``, ``adaptive``), off (``disabled``), or not said."""
    if request.thinking is None:
        return None
    return request.thinking.type in ("enabled", "adaptive")


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


def chat_messages(request: MessagesRequest) -> Chat:
    """Role/content pairs for a chat template, tool turns in trimkit's XML convention.

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
    return Chat(out, thinking=thinking_setting(request))


def call_id(tool_use_id: str) -> str:
    """A short id for a call, derived from its ``tool_use`` id: nine letters and digits.

    Mistral's templates refuse any other length; derived rather than random, so a
    conversation renders the same bytes every turn.
    """
    number = int.from_bytes(hashlib.sha256(tool_use_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        out.append(_BASE62[digit])
    return "".join(out)


def function_tools(request: MessagesRequest) -> list[dict[str, Any]] | None:
    """The request's tools in the OpenAI function shape chat templates read."""
    if not request.tools:
        return None
    return [
        {"type": "function", "function": {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": tool.input_schema or {"type": "object", "properties": {}},
        }}
        for tool in request.tools
    ]


def _text_of(blocks: Iterable[Block], names: dict[str, str]) -> str:
    parts = [block_view(b, names) for b in blocks if not isinstance(b, (ToolUseBlock, ToolResultBlock))]
    return "\n\n".join(p for p in parts if p)


def _native_result(block: ToolResultBlock, names: dict[str, str]) -> dict[str, Any]:
    text = result_text(block)
    return {
        "role": "tool",
        "tool_call_id": call_id(block.tool_use_id),
        "name": names.get(block.tool_use_id, "tool"),
        "content": f"Error: {text}" if block.is_error else text,
    }


def native_chat(request: MessagesRequest) -> Chat:
    """OpenAI-style messages and tool definitions for a template that renders tools.

    ``tool_use`` blocks become the assistant's ``tool_calls`` (arguments as a dict),
    ``tool_result`` blocks ``role: "tool"`` messages placed before the rest of their user
    turn. Thinking blocks the client sends back are not shown: templates drop the
    reasoning of earlier turns, and showing it would change the prompt turn after turn.
    ``role: "system"`` messages and consecutive user turns are joined as in
    :func:`chat_messages`; an assistant turn with nothing left to show is left out.
    """
    names = tool_names(request.messages)
    system = system_text(request)
    out: list[dict[str, Any]] = []

    def add_user(text: str) -> None:
        if out and out[-1]["role"] == "user":
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n\n" + text}
        else:
            out.append({"role": "user", "content": text})

    for message in request.messages:
        blocks = message_blocks(message)
        if message.role == "system":
            text = _text_of(blocks, names)
            if not out:
                system = f"{system}\n\n{text}" if system else text
            elif text:
                add_user(text)
        elif message.role == "assistant":
            calls = [
                {"id": call_id(b.id), "type": "function",
                 "function": {"name": b.name, "arguments": b.input if isinstance(b.input, dict) else {}}}
                for b in blocks if isinstance(b, ToolUseBlock)
            ]
            text = _text_of(blocks, names)
            if calls:
                out.append({"role": "assistant", "content": text, "tool_calls": calls})
            elif text:
                out.append({"role": "assistant", "content": text})
        else:
            out.extend(_native_result(b, names) for b in blocks if isinstance(b, ToolResultBlock))
            text = _text_of(blocks, names)
            if text:
                add_user(text)
    if system:
        out.insert(0, {"role": "system", "content": system})
    return Chat(out, tools=function_tools(request), thinking=thinking_setting(request))


def chat_for(request: MessagesRequest, native_tools: bool) -> Chat:
    """The request as chat messages in the convention a profile says (``ModelProfile.native_tools``)."""
    return native_chat(request) if native_tools else chat_messages(request)


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
