"""DeepSeek V3, R1, V3.1 and V3.2 tool calls.

V3 and R1::

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>X
    ```json
    {…}
    ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>

V3.1: ``<｜tool▁call▁begin｜>X<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`` inside the same
section markers. V3.2 writes trimkit-like XML with a ``｜DSML｜`` prefix:
``<｜DSML｜function_calls><｜DSML｜invoke name="X"><｜DSML｜parameter name="k"
string="true">v</｜DSML｜parameter>…``, where ``string="false"`` marks a JSON value.
The bars are U+FF5C and the spaces U+2581, as in the tokenizer. R1's template
opens ``<think>`` in the prompt.
"""

from __future__ import annotations

from typing import Collection

from ..scan import Needles
from .base import Dialect, in_template_or_vocab
from .engine import CallForm, Reader
from .invoke import InvokeForm, convention_form

CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
DSML = "｜DSML｜"
FENCE, JSON_FENCE = "```", "```json"

_BETWEEN = Needles(CALL_BEGIN, CALLS_END)
_SEP = Needles(SEP)
_FENCES = Needles(JSON_FENCE, FENCE)
_CLOSERS = Needles(CALL_END, CALLS_END, CALL_BEGIN, FENCE)
_AFTER = Needles(FENCE, CALL_END, CALLS_END, CALL_BEGIN)
_CALL_END = Needles(CALL_END)


def detect(chat_template: str, vocab: Collection[str]) -> bool:
    return DSML in chat_template or in_template_or_vocab(chat_template, vocab, CALLS_BEGIN)


class DeepSeekForm(CallForm):
    openers = (CALLS_BEGIN, CALL_BEGIN)
    strays = (CALLS_END, CALL_END)
    wrappers = (CALLS_BEGIN,)

    def between(self) -> bool:
        r, w = self.r, self.wrapper
        space = r.space()
        if space and not w.made:
            w.pending.append(space)
        word = r.at(_BETWEEN)
        if word is False:
            return False
        if word == CALL_BEGIN:
            r.consume(r.pos + len(word))
            self.read_call(word)
            return True
        if word == CALLS_END:
            r.consume(r.pos + len(word))
            if not w.made:
                w.pending.append(word)
                return r.bail(w)
        elif not w.made:
            return r.bail(w)
        return self.leave_wrapper()

    def head(self) -> bool:
        """``function<｜tool▁sep｜>X\\n`` (V3, R1) or ``X<｜tool▁sep｜>`` (V3.1)."""
        r = self.r
        got = r.header_until(_SEP)
        if got is None:
            return False
        if got is False:
            return r.bail(self.wrapper)
        head = got[0].strip()
        if head == "function":
            r.state = self._r1_name
        else:
            self.name = head
            r.state = self._args
        return True

    def _r1_name(self) -> bool:
        r = self.r
        name = r.header("\n")
        if name is None:
            return False
        if name is False:
            return r.bail(self.wrapper)
        self.name = name.strip()
        r.state = self._args
        return True

    def _args(self) -> bool:
        r = self.r
        r.space()
        if r.take_at(_FENCES) is False:
            return False
        c = self.next_char()
        if c is None:
            return False
        if not c:
            return r.cut(self.name, self.wrapper)
        if c in "{[":
            self.begin_json(_CLOSERS)
        else:
            r.state = lambda: self.json_tail(_CALL_END)
        return True

    def after_json(self) -> bool:
        r = self.r
        r.space()
        word = r.at(_AFTER)
        if word is False:
            return False
        if word == FENCE:
            r.consume(r.pos + len(word))
            return True
        if word == CALL_END:
            r.consume(r.pos + len(word))
        if word or r.ended:
            return self.json_done()
        r.state = lambda: self.json_tail(_CALL_END)
        return True


def dsml_form() -> InvokeForm:
    """DeepSeek V3.2's DSML calls."""
    return InvokeForm((DSML,), wrappers=((f"<{DSML}function_calls>", f"</{DSML}function_calls>"),))


DIALECT = Dialect(
    name="deepseek",
    detect=detect,
    call_markers=(CALLS_BEGIN, CALL_BEGIN, f"<{DSML}function_calls>"),
    reasoning_markers=(("<think>", "</think>"),),
    make_reader=lambda catalog, thinking_open: Reader(catalog, thinking_open, [DeepSeekForm(), dsml_form(), convention_form()]),
)
