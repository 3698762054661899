"""Hermes-style JSON (Qwen2.5, Qwen3, many fine-tunes): ``<tool_call>{"name": "X", "arguments": {…}}</tool_call>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect
from .legacy import legacy_reader


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return "<tool_call>" in chat_template


DIALECT = Dialect(
    name="hermes",
    detect=detect,
    call_markers=("<tool_call>",),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=legacy_reader,
)
