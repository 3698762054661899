"""Qwen3-Coder (and Qwen3.5+): ``<tool_call>\\n<function=X>\\n<parameter=k>\\nv\\n</parameter>\\n</function>\\n</tool_call>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect
from .engine import Reader
from .invoke import convention_form
from .tool_call import ToolCallForm


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return "<tool_call>\n<function=" in chat_template or "<tool_call>\\n<function=" in chat_template


DIALECT = Dialect(
    name="qwen3_coder",
    detect=detect,
    call_markers=("<tool_call>", "<function="),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=lambda catalog, thinking_open: Reader(catalog, thinking_open, [convention_form(), ToolCallForm()]),
)
