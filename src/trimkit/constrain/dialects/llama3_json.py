"""Llama 3.1 to 3.3: ``{"name": "X", "parameters": {…}}`` as the whole turn, one call a turn.

The reader looks for a call only at the start of the turn (or after
``<|python_tag|>``), so free text is text that does not start with a bracket: a
turn that starts with one is a call. The template renders one call per message.
"""

from __future__ import annotations

from typing import Sequence

from ..values import avoiding, json_value, lark_regex
from .base import CONVENTION_OPENERS, CallGrammar, Marks, Mode, ToolSchema
from .hermes import named_calls

PYTHON_TAG = "<|python_tag|>"
NOT_JSON = r"\s*(?:[^\s{\[](?s:.*))?"
"""Text whose first character after whitespace is no bracket (or no text at all)."""


class Llama3Json(CallGrammar):
    name = "llama3_json"
    opener = PYTHON_TAG
    avoid = CONVENTION_OPENERS
    parallel_calls = False

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        return f"calls: {json_value(named_calls(tools, 'parameters'))}"

    def turn(self, mode: Mode, marks: Marks) -> tuple[list[str], str]:
        if mode == "call":
            return [], "calls"
        if mode == "output":
            return [], "output"
        if mode == "output_or_call":
            return [], f"output | {marks(PYTHON_TAG)} calls"
        free = f"FREE: {lark_regex(NOT_JSON)} & {lark_regex(avoiding((PYTHON_TAG, *self.avoid)))}"
        if mode == "none":
            return [free], "FREE"
        return [free], f"FREE | calls | {marks(PYTHON_TAG)} calls"


LLAMA3_JSON = Llama3Json()
