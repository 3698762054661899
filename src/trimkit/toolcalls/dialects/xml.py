"""trimkit's own convention, the default: ``<function_calls><invoke name="X"><parameter name="k">v</parameter>…``.

This is the format the tools stage teaches in the system prompt
(:mod:`trimkit.convention`). Its reader also reads the ``<tool_call>`` forms
(Qwen3-Coder's XML, Hermes JSON, GLM's ``<arg_key>``), because a model taught the
convention often falls back to the format it was trained on.
"""

from __future__ import annotations

from typing import Collection

from ...convention import CALLS_OPEN
from .base import Dialect
from .engine import Reader
from .invoke import convention_form
from .tool_call import ToolCallForm


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return True


DIALECT = Dialect(
    name="xml",
    detect=detect,
    call_markers=(CALLS_OPEN, "<invoke name="),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=lambda catalog, thinking_open: Reader(catalog, thinking_open, [convention_form(), ToolCallForm()]),
)
