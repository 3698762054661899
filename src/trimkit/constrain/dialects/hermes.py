"""Hermes-style JSON (Qwen2.5, Qwen3): ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>`` per call."""

from __future__ import annotations

from typing import Sequence

from ..values import json_value
from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, need_tools, properties

TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"


def named_calls(tools: Sequence[ToolSchema], arguments: str) -> dict:
    """A JSON schema for ``{"name": …, arguments: {…}}`` naming one of ``tools``, with its arguments."""
    need_tools(tools)
    options = []
    for tool in tools:
        properties(tool.schema)  # the same root shapes as the other dialects
        options.append({
            "type": "object",
            "properties": {"name": {"const": tool.name}, arguments: tool.schema},
            "required": ["name", arguments],
            "additionalProperties": False,
        })
    return {"anyOf": options}


class Hermes(CallGrammar):
    name = "hermes"
    opener = TOOL_CALL
    avoid = (*CONVENTION_OPENERS, "<function=")
    markers = (TOOL_CALL_END,)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        body = json_value(named_calls(tools, "arguments"), (TOOL_CALL_END,))
        end = marks.seq("\n", TOOL_CALL_END)
        more = f" ({marks.seq(chr(10), TOOL_CALL, chr(10))} hcall {end})*" if parallel else ""
        return f'hcall: {body}\ncalls: "\\n" hcall {end}{more}'


HERMES = Hermes()
