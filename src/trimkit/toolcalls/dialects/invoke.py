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
from .engine import TagCallForm, Value, Wrapper

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


class InvokeForm(TagCallForm):
    """Reads ``<invoke>`` calls with the given tag prefixes and wrappers."""

    def __init__(self, prefixes: tuple[str, ...] = ("", PREFIX), wrappers: tuple[tuple[str, str], ...] = ()):
        self.wrappers = {opener: closer for opener, closer in wrappers}
        invokes = tuple(f"<{p}invoke name=" for p in prefixes)
        self.call_ends = tuple(f"</{p}invoke>" for p in prefixes)
        self.params = tuple(f"<{p}parameter name=" for p in prefixes)
        param_ends = tuple(f"</{p}parameter>" for p in prefixes)
        closers = tuple(closer for _, closer in wrappers)
        self.openers = (*self.wrappers, *invokes)
        self.strays = closers
        self.between_needles = Needles(*invokes, *closers)
        self.body_markers = Needles(*self.params, *self.call_ends, *closers, *invokes)
        self.value_end = Needles(*param_ends)
        self.value_follow = Needles(*self.params, *self.call_ends, *closers, *invokes)
        self.wrap_close = frozenset(closers)
        self.wrapper: Wrapper | None = None

    def between(self) -> bool:
        r = self.r
        piece, word = r.scan(self.between_needles)
        w = self.wrapper
        if w.made:
            r.emit_text(piece)
        elif piece:
            w.pending.append(piece)
        if word is None:
            if r.eof:
                return r.bail(w) if not w.made else self.leave_wrapper()
            return False
        if word in self.wrap_close:
            if not w.made:
                w.pending.append(word)
                return r.bail(w)
            return self.leave_wrapper()
        self.read_call(word)
        return True

    def call_name(self, header: str) -> str:
        return attributes(header).get("name", "")

    def param_value(self, header: str) -> Value:
        attrs = attributes(header)
        self.param, self.json_value = attrs.get("name", ""), attrs.get("string") == "false"
        return Value(self.value_end, self.value_follow)

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
