"""Hermes-style JSON (Qwen2.5, Qwen3, many fine-tunes): ``<tool_call>{"name": "X", "arguments": {…}}</tool_call>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect
from .engine import Reader
from .invoke import convention_form
from .tool_call import ToolCallForm


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return "<tool_call>" in chat_template


DIALECT = Dialect(
    name="hermes",
    detect=detect,
    call_markers=("<tool_call>",),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=lambda catalog, thinking_open: Reader(catalog, thinking_open, [convention_form(), ToolCallForm()]),
)
