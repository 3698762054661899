"""Gemma 4: ``<|tool_call>call:X{k:<|"|>text<|"|>,n:1}<tool_call|>``, reasoning in ``<|channel>thought…<channel|>``."""

from __future__ import annotations

from typing import Collection

from .base import Dialect, in_template_or_vocab
from .legacy import legacy_reader

OPEN, CLOSE = "<|tool_call>", "<tool_call|>"


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN, CLOSE)


DIALECT = Dialect(
    name="gemma4",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=(("<|channel>", "<channel|>"),),
    make_reader=legacy_reader,
)
