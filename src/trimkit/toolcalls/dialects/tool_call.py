"""The ``<tool_call>`` forms: Hermes JSON, Qwen3-Coder's XML, and GLM's ``<arg_key>`` pairs.

What follows ``<tool_call>`` decides::

    <tool_call>{"name": "X", "arguments": {…}}</tool_call>             Hermes (also a list of calls)
    <tool_call><function=X><parameter=k>v</parameter></function></tool_call>   Qwen3-Coder
    <tool_call>X<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>       GLM-4.5 to 4.7

Anything else after ``<tool_call>`` is prose, and the tag is text. Qwen's
``<function=X>`` is also read without the wrapper. A JSON body ends where its
brackets close, outside strings; a ``</tool_call>`` inside a string is part of
the value. An XML value ends at its closing tag only when whitespace and then the
next tag of the grammar (or the end of the turn) follow it.
"""

from __future__ import annotations

from ..scan import Needles
from .engine import TagCallForm, Value, valid_name

TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
FUNCTION, FUNCTION_END = "<function=", "</function>"
PARAM, PARAM_END = "<parameter=", "</parameter>"
ARG_KEY, ARG_KEY_END, ARG_VALUE, ARG_VALUE_END = "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"

_INSIDE = Needles(FUNCTION, TOOL_CALL_END)
_JSON_CLOSERS = Needles(TOOL_CALL_END, TOOL_CALL)
_JSON_END = Needles(TOOL_CALL_END)
_FN_BODY = Needles(PARAM, FUNCTION_END, TOOL_CALL_END, FUNCTION)
_FN_VALUE_END = Needles(PARAM_END)
_FN_VALUE_FOLLOW = Needles(PARAM, FUNCTION_END, TOOL_CALL_END, FUNCTION)
_GLM_NAME_END = Needles(ARG_KEY, TOOL_CALL_END)
_GLM_KEY_END = Needles(ARG_KEY_END)
_GLM_VALUE = Needles(ARG_VALUE)
_GLM_VALUE_END = Needles(ARG_VALUE_END)
_GLM_FOLLOW = Needles(ARG_KEY, TOOL_CALL_END)


class ToolCallForm(TagCallForm):
    """Reads what follows ``<tool_call>``, and Qwen's bare ``<function=X>``."""

    openers = (TOOL_CALL, FUNCTION)
    strays = (TOOL_CALL_END,)
    wrappers = (TOOL_CALL,)
    body_markers = _FN_BODY
    params = (PARAM,)
    call_ends = (FUNCTION_END,)

    def between(self) -> bool:
        """After ``<tool_call>``, or after a Qwen function inside one."""
        r, w = self.r, self.wrapper
        space = r.space()
        if space and not w.made:
            w.pending.append(space)
        if r.pos >= len(r.buf):
            if not r.eof:
                return False
            return self.leave_wrapper() if w.made else r.bail(w)
        if r.buf[r.pos] in "{[" and not w.made:
            self.start_call("")
            self.begin_json(_JSON_CLOSERS)
            return True
        word = r.at(_INSIDE)
        if word is False:
            return False
        if word == FUNCTION:
            r.consume(r.pos + len(word))
            self.read_call(word)
            return True
        if word == TOOL_CALL_END:
            r.consume(r.pos + len(word))
            if w.made:
                return self.leave_wrapper()
            w.pending.append(word)
            return r.bail(w)
        if w.made:
            return self.leave_wrapper()
        self.start_call("")
        r.state = self._glm_name
        return True

    # ------------------------------------------------------------------ Hermes JSON

    def after_json(self) -> bool:
        r = self.r
        r.space()
        word = r.at(_JSON_CLOSERS)
        if word is False:
            return False
        if word == TOOL_CALL_END:
            r.consume(r.pos + len(word))
            return self.json_done()
        if word == TOOL_CALL or r.ended:
            return self.json_done()
        r.state = lambda: self.json_tail(_JSON_END)
        return True

    # ------------------------------------------------------------------ Qwen3-Coder XML

    def call_name(self, header: str) -> str | None:
        name = header.strip()
        return name if valid_name(name) else None

    def param_value(self, header: str) -> Value:
        self.param, self.strip_newlines = header.strip(), True
        return Value(_FN_VALUE_END, _FN_VALUE_FOLLOW)

    def convert(self, text: str):
        """Qwen's template puts a newline after ``<parameter=k>`` and before ``</parameter>``: one each is markup."""
        if self.strip_newlines:
            text = text[1:] if text.startswith("\n") else text
            text = text[:-1] if text.endswith("\n") else text
        return text

    # ------------------------------------------------------------------ GLM

    def _glm_name(self) -> bool:
        r = self.r
        got = r.header_until(_GLM_NAME_END)
        if got is None:
            return False
        if got is False or not valid_name(got[0].strip()):
            return self._not_glm(got)
        self.name = got[0].strip()
        if got[1] == TOOL_CALL_END:
            return self._glm_complete()
        r.state = self._glm_key
        return True

    def _not_glm(self, got) -> bool:
        """Prose after ``<tool_call>``: give back what the name search took, and the tag is text."""
        r = self.r
        if got:
            taken = "".join(r.raw or ())
            r.raw = None
            r.buf = taken + r.buf[r.pos :]
            r.pos = 0
        return r.bail(self.wrapper)

    def _glm_body(self) -> bool:
        return self.read_body(_GLM_NAME_END, self._glm_part)

    def _glm_part(self, word: str) -> bool:
        r = self.r
        r.consume(r.pos + len(word))
        if word == TOOL_CALL_END:
            return self._glm_complete()
        r.state = self._glm_key
        return True

    def _glm_key(self) -> bool:
        r = self.r
        got = r.header_until(_GLM_KEY_END)
        if got is None:
            return False
        if got is False:
            return self.no_param(self._glm_body)
        self.param = got[0].strip()
        r.state = self._glm_value_open
        return True

    def _glm_value_open(self) -> bool:
        r = self.r
        r.space()
        word = r.at(_GLM_VALUE)
        if word is False:
            return False
        if word is None:
            if r.ended:
                return r.cut(self.name, self.wrapper)
            r.state = self._glm_body
            return True
        r.consume(r.pos + len(word))
        self.strip_newlines = False
        self.value = Value(_GLM_VALUE_END, _GLM_FOLLOW)
        r.state = self._glm_value
        return True

    def _glm_value(self) -> bool:
        return self.read_value(self._glm_body)

    def _glm_complete(self) -> bool:
        self.complete()
        return self.leave_wrapper()
