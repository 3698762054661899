"""Mistral and Devstral: ``[TOOL_CALLS]`` then a JSON list of calls, or ``X[ARGS]{…}`` per call.

Tokenizers before v11 write ``[TOOL_CALLS] [{"name": …, "arguments": {…}, "id": …}]``;
v11 and later write ``[TOOL_CALLS]X[ARGS]{…}`` (``[CALL_ID]id`` may come before
``[ARGS]``), one ``[TOOL_CALLS]`` per call; ``X{…}`` without ``[ARGS]`` is read too.
There is no closing marker: a call ends where its JSON's brackets close, outside
strings, and what follows is text. Magistral reasons in ``[THINK]…[/THINK]``.
"""

from __future__ import annotations

from typing import Collection

from ..items import FailedCall
from ..scan import Needles
from .base import Dialect, in_template_or_vocab
from .engine import CallForm, Reader
from .invoke import convention_form

OPEN, ARGS, CALL_ID, EOS = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "</s>"
THINK_OPEN, THINK_CLOSE = "[THINK]", "[/THINK]"

_CLOSERS = Needles(OPEN, EOS)
_AFTER_NAME = Needles(ARGS, CALL_ID, "{")
_ARGS = Needles(ARGS)


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return in_template_or_vocab(chat_template, vocab, OPEN)


class MistralForm(CallForm):
    openers = (OPEN,)
    strays = (EOS,)

    def head(self) -> bool:
        r = self.r
        done = self.json_head(_CLOSERS)
        if done is not False:
            return bool(done)
        named = self.read_name(_AFTER_NAME)
        if named is None:
            return False
        if not named:
            return r.bail()
        r.state = self._after_name
        return True

    def _after_name(self) -> bool:
        r = self.r
        word = r.at(_AFTER_NAME)
        if word is False:
            return False
        if word == CALL_ID:
            r.consume(r.pos + len(word))
            r.state = self._call_id
            return True
        if word == ARGS:
            r.consume(r.pos + len(word))
        r.state = self._args
        return True

    def _call_id(self) -> bool:
        got = self.r.header_until(_ARGS)
        if got is None:
            return False
        if got is False:
            return self.r.cut(self.name) if self.r.eof else self._not_args()
        self.r.state = self._args
        return True

    def _args(self) -> bool:
        c = self.next_char()
        if c is None:
            return False
        if not c:
            return self.r.cut(self.name)
        if c not in "{[":
            return self._not_args()
        self.begin_json(_CLOSERS)
        return True

    def _not_args(self) -> bool:
        """A name with no JSON after it: the model did not finish the call; what follows is text."""
        r = self.r
        raw = r.end_raw()
        r.emit_call(FailedCall(self.name, raw, "unreadable", f"the call to {self.name} has no JSON arguments"))
        r.state = r.text_state
        return True


class MistralReader(Reader):
    reasoning = (THINK_OPEN, THINK_CLOSE)


DIALECT = Dialect(
    name="mistral",
    detect=detect,
    call_markers=(OPEN,),
    reasoning_markers=((THINK_OPEN, THINK_CLOSE),),
    make_reader=lambda catalog, thinking_open: MistralReader(catalog, thinking_open, [MistralForm(), convention_form()]),
)
