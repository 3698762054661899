"""MiniMax-M2: ``<minimax:tool_call><invoke name="X"><parameter name="k">v</parameter></invoke></minimax:tool_call>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .legacy import legacy_reader

OPEN, CLOSE = "<minimax:tool_call>", "</minimax:tool_call>"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN)


DIALECT = Dialect(
    name="minimax_m2",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=legacy_reader,
)
