"""Tool calls out of an OpenAI chat completion whose model wrote them as text.

The OpenAI-shaped twin of :func:`trimkit.toolcalls.messages.read_message`, for a
proxy that speaks to its clients in the chat-completions format: the markup in a
choice's ``content`` becomes ``tool_calls`` (arguments as JSON text, typed by the
tool's schema), reasoning becomes ``reasoning_content`` when asked for, and a
``stop`` finish becomes ``tool_calls`` when calls were made. Calls the engine
parsed itself stay, first. A finished completion only; imports no web framework.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..render import call_id
from ..wire import TextBlock, ThinkingBlock, ToolUseBlock
from .dialects import Dialect
from .messages import ToolsLike, declared_tools
from .response import ResponseBuilder


def read_chat_completion(
    completion: Mapping[str, Any],
    tools: ToolsLike,
    *,
    dialect: Dialect | None = None,
    thinking: bool = False,
) -> dict[str, Any]:
    """``completion`` with the calls written in each choice's text made ``tool_calls``; a new dict."""
    declared = declared_tools(tools)
    choices = completion.get("choices")
    if not declared and not thinking or not isinstance(choices, list):
        return dict(completion)
    return {**completion, "choices": [_read_choice(c, declared, dialect, thinking) for c in choices]}


def _read_choice(choice: Any, tools, dialect: Dialect | None, thinking: bool) -> Any:
    message = choice.get("message") if isinstance(choice, Mapping) else None
    text = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(text, str) or not text:
        return choice
    builder = ResponseBuilder(tools, dialect=dialect, thinking=thinking, thinking_open=False)
    builder.feed(text)
    builder.finish("length" if choice.get("finish_reason") == "length" else "stop")
    content = builder.content
    calls = [
        {"id": f"call_{call_id(block.id)}", "type": "function",
         "function": {"name": block.name, "arguments": json.dumps(block.input)}}
        for block in content if isinstance(block, ToolUseBlock)
    ]
    reasoning = "\n\n".join(block.thinking for block in content if isinstance(block, ThinkingBlock))
    answer = "\n\n".join(block.text for block in content if isinstance(block, TextBlock))
    if not calls and not reasoning and answer.strip() == text.strip():
        return choice
    new_message = {**message, "content": answer or None}
    if calls:
        new_message["tool_calls"] = [*(message.get("tool_calls") or []), *calls]
    if reasoning:
        new_message["reasoning_content"] = reasoning
    finish = choice.get("finish_reason")
    return {**choice, "message": new_message, "finish_reason": "tool_calls" if calls and finish == "stop" else finish}
