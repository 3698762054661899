"""MiniMax-M2: ``<minimax:tool_call><invoke name="X"><parameter name="k">v</parameter></invoke></minimax:tool_call>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .engine import Reader
from .invoke import CONVENTION_WRAPPERS, PREFIX, InvokeForm
from .tool_call import ToolCallForm

OPEN, CLOSE = "<minimax:tool_call>", "</minimax:tool_call>"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN)


def reader(catalog, thinking_open) -> Reader:
    invoke = InvokeForm(("", PREFIX), wrappers=((OPEN, CLOSE), *CONVENTION_WRAPPERS))
    return Reader(catalog, thinking_open, [invoke, ToolCallForm()])


DIALECT = Dialect(
    name="minimax_m2",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=reader,
)
