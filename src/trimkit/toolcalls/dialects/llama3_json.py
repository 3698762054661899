"""Llama 3.x: a JSON call ``{"name": "X", "parameters": {…}}`` at the start of the turn, or after ``<|python_tag|>``.

Several calls may follow one another, separated by ``;`` or whitespace. A turn
that starts with JSON that is not a call (an answer the user asked for in JSON)
is text. JSON is looked for only there, not in the middle of prose, where it
would hold back every line starting with ``{`` until its brackets close.
"""

from __future__ import annotations

from typing import Collection

from ..items import FailedCall
from ..scan import Needles
from .base import Dialect
from .engine import CallForm, Reader
from .invoke import convention_form

PYTHON_TAG = "<|python_tag|>"
EOM, EOT = "<|eom_id|>", "<|eot_id|>"

_CLOSERS = Needles(EOM, EOT, PYTHON_TAG)
_ENDS = Needles(EOM, EOT)


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return PYTHON_TAG in chat_template or '"parameters": dictionary of argument name' in chat_template


class Llama3Form(CallForm):
    openers = (PYTHON_TAG,)
    strays = (EOM, EOT)

    def open(self, marker: str) -> None:
        self.tagged = True
        super().open(marker)

    def open_at_start(self, space: str) -> None:
        """The turn starts with a bracket: maybe a call, maybe an answer in JSON."""
        self.tagged = False
        self.start_call(space)
        self.begin_json(_CLOSERS)

    def head(self) -> bool:
        done = self.json_head(_CLOSERS)
        if done is False:
            self.r.state = self._not_json
        return done is not None

    def _not_json(self) -> bool:
        """``<|python_tag|>`` and then no JSON: a built-in tool call (``brave_search.call(…)``), not a declared one."""
        r = self.r
        piece, word = r.scan(_ENDS)
        if word is None and not r.eof:
            return False
        raw = r.end_raw()
        name = raw.removeprefix(PYTHON_TAG).strip().split(".call(")[0].split("(")[0] or None
        r.emit_call(FailedCall(name, raw, "unreadable", "after <|python_tag|> a call is JSON naming a declared tool"))
        r.state = r.text_state
        return True

    def not_a_call(self, raw: str) -> bool:
        if self.tagged:
            return super().not_a_call(raw)
        self.r.emit_text(raw)
        self.r.state = self.r.text_state
        return True

    def after_call(self):
        self.gap: list[str] = []
        return self._next

    def _next(self) -> bool:
        """After a call: ``;`` or whitespace and another JSON call, or the end of the calls."""
        r = self.r
        self.gap.append(r.space())
        if r.waiting:
            return False
        c = r.buf[r.pos : r.pos + 1]
        if c == ";":
            self.gap.append(r.consume(r.pos + 1))
            return True
        if c and c in "{[":
            self.tagged = True
            self.start_call("")
            self.begin_json(_CLOSERS)
            return True
        r.emit_text("".join(self.gap))
        r.state = r.text_state
        return True


class Llama3Reader(Reader):
    reasoning = None

    def __init__(self, catalog, thinking_open, forms):
        super().__init__(catalog, thinking_open, forms)
        self._space: list[str] = []
        if self.forms:
            self.state = self.start_state

    def start_state(self) -> bool:
        """The turn's first non-space character decides: a bracket may open a call, anything else is text."""
        self._space.append(self.space())
        if self.waiting:
            return False
        space, self._space = "".join(self._space), []
        if self.buf[self.pos : self.pos + 1] in ("{", "["):
            self.forms[0].open_at_start(space)
            return True
        self.emit_text(space)
        self.state = self.text_state
        return True


DIALECT = Dialect(
    name="llama3_json",
    detect=detect,
    call_markers=(PYTHON_TAG, "{"),
    reasoning_markers=(),
    make_reader=lambda catalog, thinking_open: Llama3Reader(catalog, thinking_open, [Llama3Form(), convention_form()]),
)
