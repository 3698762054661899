"""The ``<invoke>`` form: trimkit's convention, MiniMax-M2's, and DeepSeek V3.2's DSML.

::

    <function_calls>
    <invoke name="Write">
    <parameter name="file_path">/tmp/a.txt</parameter>
    <parameter name="content">…</parameter>
    </invoke>
    </function_calls>

Tags may carry a prefix (``antml:``, DeepSeek's ``｜DSML｜``), the wrapper may be
another (``<minimax:tool_call>``) or missing. A value ends at ``</parameter>``
only when whitespace and then ``<parameter name=``, ``</invoke>``, a wrapper's
close, another ``<invoke name=``, or the end of the turn follow it; anywhere else
the closing tag is part of the value. Values are taken raw (no entity decoding);
a DSML parameter marked ``string="false"`` holds JSON.
"""

from __future__ import annotations

import re

from ...convention import CALLS_CLOSE, CALLS_OPEN, unquote_attr
from ..loose_json import loads
from ..scan import Needles
from .engine import CallForm, Value, Wrapper

PREFIX = "antml:"
"""Anthropic's older tag prefix, which some models trained on its transcripts still write."""

CONVENTION_WRAPPERS = ((CALLS_OPEN, CALLS_CLOSE), (f"<{PREFIX}function_calls>", f"</{PREFIX}function_calls>"))

_FIRST = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_ATTRIBUTE = re.compile(r"""\s+([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def attributes(header: str) -> dict[str, str]:
    """What follows ``name=`` up to ``>``: ``"X" string="true"`` is ``{"name": "X", "string": "true"}``.

    When the rest does not read as attributes, all of it is the name (quotes removed).
    """
    text = header.strip()
    first = _FIRST.match(text)
    found = {"name": unquote_attr(next(g for g in first.groups() if g is not None))} if first else {}
    pos = first.end() if first else 0
    while (m := _ATTRIBUTE.match(text, pos)) is not None:
        found[m.group(1)] = unquote_attr(next(g for g in m.groups()[1:] if g is not None))
        pos = m.end()
    if pos < len(text) or not found:
        value = text[1:-1] if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0] else text
        return {"name": unquote_attr(value)}
    return found


class InvokeForm(CallForm):
    """Reads ``<invoke>`` calls with the given tag prefixes and wrappers."""

    def __init__(self, prefixes: tuple[str, ...] = ("", PREFIX), wrappers: tuple[tuple[str, str], ...] = ()):
        self.wrap_open = {opener: closer for opener, closer in wrappers}
        self.invokes = tuple(f"<{p}invoke name=" for p in prefixes)
        self.invoke_ends = tuple(f"</{p}invoke>" for p in prefixes)
        self.params = tuple(f"<{p}parameter name=" for p in prefixes)
        param_ends = tuple(f"</{p}parameter>" for p in prefixes)
        closers = tuple(closer for _, closer in wrappers)
        self.openers = (*self.wrap_open, *self.invokes)
        self.strays = closers
        self.between = Needles(*self.invokes, *closers)
        self.body = Needles(*self.params, *self.invoke_ends, *closers, *self.invokes)
        self.value_end = Needles(*param_ends)
        self.value_follow = Needles(*self.params, *self.invoke_ends, *closers, *self.invokes)
        self.wrap_close = frozenset(closers)
        self.wrapper: Wrapper | None = None

    def open(self, marker: str) -> None:
        if marker in self.wrap_open:
            self.wrapper = Wrapper(marker)
            self.r.state = self._between
        else:
            self.wrapper = None
            self._invoke(marker)

    # ------------------------------------------------------------------ the wrapper

    def _between(self) -> bool:
        r = self.r
        piece, word = r.scan(self.between)
        w = self.wrapper
        if w.made:
            r.emit_text(piece)
        elif piece:
            w.pending.append(piece)
        if word is None:
            if r.eof:
                return r.bail(w) if not w.made else self._leave()
            return False
        if word in self.wrap_close:
            if not w.made:
                w.pending.append(word)
                return r.bail(w)
            return self._leave()
        self._invoke(word)
        return True

    def _leave(self) -> bool:
        r = self.r
        self.wrapper = None
        r.state = r.text_state
        return True

    # ------------------------------------------------------------------ one call

    def after_call(self):
        return self._between if self.wrapper is not None else self.r.text_state

    def _invoke(self, marker: str) -> None:
        self.start_call(marker)
        self.r.state = self._header

    def _header(self) -> bool:
        r = self.r
        header = r.header(">")
        if header is None:
            return False
        if header is False:
            return r.bail(self.wrapper)
        self.name = attributes(header).get("name", "")
        r.state = self._body
        return True

    def _body(self) -> bool:
        return self.read_body(self.body, self._part)

    def _part(self, word: str) -> bool:
        r = self.r
        if word in self.params:
            r.consume(r.pos + len(word))
            r.state = self._param_header
            return True
        if word in self.invoke_ends:
            r.consume(r.pos + len(word))
        return self.complete()  # a wrapper's close or a new invoke: this one's end tag is missing

    def _param_header(self) -> bool:
        r = self.r
        header = r.header(">")
        if header is None:
            return False
        if header is False:
            if r.eof:
                return r.cut(self.name, self.wrapper)
            r.state = self._body
            return True
        attrs = attributes(header)
        self.param, self.json_value = attrs.get("name", ""), attrs.get("string") == "false"
        self.value = Value(self.value_end, self.value_follow)
        r.state = self._value
        return True

    def _value(self) -> bool:
        return self.read_value(self._body)

    def convert(self, text: str):
        if self.json_value:
            try:
                return loads(text)
            except ValueError:
                pass
        return text


def convention_form() -> InvokeForm:
    """trimkit's own convention (:mod:`trimkit.convention`), with and without the ``antml:`` prefix."""
    return InvokeForm(("", PREFIX), wrappers=CONVENTION_WRAPPERS)
