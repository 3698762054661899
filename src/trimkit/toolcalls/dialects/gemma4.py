"""Gemma 4: ``<|tool_call>call:X{k:<|"|>text<|"|>,n:1}<tool_call|>``, reasoning in ``<|channel>thought…<channel|>``.

Arguments are written with bare keys, strings between ``<|"|>`` marks (raw, no
escapes), and numbers, booleans, lists and objects as in JSON. A string may
hold anything but ``<|"|>`` itself, so a ``<tool_call|>`` inside one is part of
the value. After its calls the model may write ``<|tool_response>``, expecting
the result: right after a call it is markup, not text.
"""

from __future__ import annotations

from typing import Collection

from ..scan import Needles
from .base import Dialect, in_template_or_vocab
from .engine import CallForm, Reader
from .invoke import convention_form

OPEN, CLOSE = "<|tool_call>", "<tool_call|>"
RESPONSE = "<|tool_response>"
CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"

_CLOSERS = Needles(CLOSE, OPEN, RESPONSE)
_CALL_PREFIX = Needles("call:")
_BRACE = Needles("{")
_CLOSE = Needles(CLOSE)


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN, CLOSE)


class GemmaForm(CallForm):
    openers = (OPEN,)
    strays = (CLOSE, RESPONSE)

    def head(self) -> bool:
        r = self.r
        done = self.json_head(_CLOSERS, gemma=True)
        if done is not False:
            return bool(done)
        if r.take_at(_CALL_PREFIX) is False:
            return False
        r.state = self._name
        return True

    def _name(self) -> bool:
        named = self.read_name(_BRACE)
        if named is None:
            return False
        if not named:
            return self.r.bail()
        self.begin_json(_CLOSERS, gemma=True)
        return True

    def after_json(self) -> bool:
        r = self.r
        r.space()
        word = r.at(_CLOSERS)
        if word is False:
            return False
        if word == CLOSE:
            r.consume(r.pos + len(word))
        if word or r.ended:
            return self.json_done()
        r.state = lambda: self.json_tail(_CLOSE)
        return True


class GemmaReader(Reader):
    reasoning = (CHANNEL_OPEN, CHANNEL_CLOSE)
    reasoning_prelude = ("thought\n", "thought")


DIALECT = Dialect(
    name="gemma4",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=((CHANNEL_OPEN, CHANNEL_CLOSE),),
    make_reader=lambda catalog, thinking_open: GemmaReader(catalog, thinking_open, [GemmaForm(), convention_form()]),
)
