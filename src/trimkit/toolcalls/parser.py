"""A streaming reader of the tool-call markup local models write, and of their ``<think>`` sections.

Text goes in as it is generated, in chunks split anywhere; out come plain text
pieces and :class:`ParsedCall` items, the same whatever the chunking. Three
dialects are read:

* trimkit's convention (:mod:`trimkit.convention`)::

      <function_calls><invoke name="X"><parameter name="k">v</parameter></invoke></function_calls>

  also without the ``<function_calls>`` wrapper, and with ``antml:``-prefixed tags;
* Qwen3-Coder's, with or without the ``<tool_call>`` wrapper (the one newline the
  model puts after ``<parameter=k>`` and before ``</parameter>`` is removed)::

      <tool_call>\\n<function=X>\\n<parameter=k>\\nv\\n</parameter>\\n</function>\\n</tool_call>

* Hermes-style JSON: ``<tool_call>{"name": "X", "arguments": {...}}</tool_call>``.

Only calls to declared tool names become calls. Markup for another name, markup
that cannot be read (bad JSON, a runaway tag) and markup still open at the end
come out as their raw text: nothing the model wrote is dropped except the
markup of calls that were made, and thinking.

Text is held back only while its end could still be the start of a tag. Each
character is looked at a small, bounded number of times, so a long stream costs
time in proportion to its length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Collection

from .items import Item, ParsedCall, Reasoning

from ..convention import unquote_attr

HEADER_LIMIT = 200
"""Characters allowed between an opening tag's ``name=`` and its ``>``; longer means it was prose."""

class Needles:
    """A fixed set of literal tags to look for in streamed text."""

    __slots__ = ("words", "prefixes", "longest", "lead")

    def __init__(self, *words: str):
        self.words = tuple(sorted(words, key=len, reverse=True))
        self.prefixes = frozenset(w[:i] for w in words for i in range(1, len(w)))
        self.longest = max(map(len, words), default=0)
        leads = {w[0] for w in words}
        self.lead = leads.pop() if len(leads) == 1 else None

    def find(self, text: str, start: int) -> tuple[int, str] | None:
        """The earliest tag in ``text[start:]`` (the longest one where two start together)."""
        if self.lead is not None:
            j = text.find(self.lead, start)
            while j >= 0:
                for word in self.words:
                    if text.startswith(word, j):
                        return j, word
                j = text.find(self.lead, j + 1)
            return None
        best: tuple[int, str] | None = None
        for word in self.words:
            j = text.find(word, start)
            if j >= 0 and (best is None or j < best[0]):
                best = (j, word)
        return best

    def held(self, text: str, start: int) -> int:
        """Length of the longest end of ``text[start:]`` that could still grow into a tag."""
        n = len(text)
        lo = max(start, n - self.longest + 1)
        if self.lead is not None:
            j = text.find(self.lead, lo)
            while j >= 0:
                if text[j:] in self.prefixes:
                    return n - j
                j = text.find(self.lead, j + 1)
            return 0
        for j in range(lo, n):
            if text[j:] in self.prefixes:
                return n - j
        return 0


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PREFIX = "antml:"
"""Anthropic's older tag prefix, which some models trained on its transcripts still write."""


def _with_prefix(tag: str) -> tuple[str, str]:
    cut = 2 if tag.startswith("</") else 1
    return tag, tag[:cut] + PREFIX + tag[cut:]


XML_CALLS = _with_prefix("<function_calls>")
XML_CALLS_END = _with_prefix("</function_calls>")
XML_INVOKE = _with_prefix("<invoke name=")
XML_INVOKE_END = _with_prefix("</invoke>")
XML_PARAM = _with_prefix("<parameter name=")
XML_PARAM_END = _with_prefix("</parameter>")
TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"
QWEN_FUNCTION, QWEN_FUNCTION_END = "<function=", "</function>"
QWEN_PARAM, QWEN_PARAM_END = "<parameter=", "</parameter>"
STRAY_CLOSERS = frozenset((TOOL_CALL_END, *XML_CALLS_END))

_THINK_TAGS = Needles(THINK_OPEN, THINK_CLOSE)
_THINK_END = Needles(THINK_CLOSE)
_XML_BLOCK = Needles(*XML_INVOKE, *XML_CALLS_END)
_QWEN_BLOCK = Needles(QWEN_FUNCTION, TOOL_CALL_END)
_HERMES_END = Needles(TOOL_CALL_END)


@dataclass(frozen=True)
class _Dialect:
    call_body: Needles
    param_end: Needles
    param_opens: frozenset[str]
    name: Callable[[str], str]
    value: Callable[[str], str]


def _attribute(header: str) -> str:
    """The value of ``name="…"`` (quotes optional), unescaped as :func:`~trimkit.convention.unquote_attr` does."""
    text = header.strip()
    if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        text = text[1:-1]
    return unquote_attr(text)


def _qwen_value(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


_XML = _Dialect(
    call_body=Needles(*XML_PARAM, *XML_INVOKE_END),
    param_end=Needles(*XML_PARAM_END),
    param_opens=frozenset(XML_PARAM),
    name=_attribute,
    value=lambda value: value,
)
_QWEN = _Dialect(
    call_body=Needles(QWEN_PARAM, QWEN_FUNCTION_END),
    param_end=Needles(QWEN_PARAM_END),
    param_opens=frozenset((QWEN_PARAM,)),
    name=str.strip,
    value=_qwen_value,
)


def hermes_call(body: str) -> tuple[str, dict[str, Any]] | None:
    """Name and arguments of a Hermes-style JSON call, or None when it is not one."""
    try:
        data = json.loads(body, strict=False)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
        except ValueError:
            return None
    if arguments is None:
        arguments = {}
    return (data["name"], arguments) if isinstance(arguments, dict) else None


@dataclass
class _Markup:
    """The wrapper block and call being read, and their raw text so far."""

    block: Needles | None = None  # what ends or continues the wrapper; None outside one
    used: bool = False  # a call in this wrapper was made: its tags are no longer text
    pending: list[str] = field(default_factory=list)  # the wrapper's opening tag and what followed it
    element: list[str] = field(default_factory=list)  # raw text of the call being read
    dialect: _Dialect = _XML
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    param: str = ""
    value: list[str] = field(default_factory=list)


class ToolCallParser:
    """Feed raw model text; get text pieces and calls back in order.

    ``tool_names`` are the declared tools (empty: all markup is text).
    ``strip_thinking`` drops ``<think>…</think>``. ``thinking_open`` says whether the
    prompt already opened a think section: True drops everything up to the first
    ``</think>``; None (unknown) holds the leading text back until a ``<think>`` or
    ``</think>`` tells, or the end (then it is text); False starts in plain text.
    """

    def __init__(
        self,
        tool_names: Collection[str] = (),
        *,
        strip_thinking: bool = True,
        thinking_open: bool | None = None,
    ):
        self.tool_names = frozenset(tool_names)
        openers: list[str] = []
        if self.tool_names:
            openers += [*XML_CALLS, *XML_INVOKE, TOOL_CALL, QWEN_FUNCTION, *STRAY_CLOSERS]
        if strip_thinking:
            openers += [THINK_OPEN, THINK_CLOSE]
        self._text_needles = Needles(*openers) if openers else None
        self._buf = ""
        self._pos = 0
        self._out: list[Item] = []
        self._after_call = False
        self._markup = _Markup()
        self._lead: list[str] = []
        self._on_header: Callable[[str], None] = self._call_named
        if not strip_thinking or thinking_open is False:
            self._state = self._text
        elif thinking_open:
            self._state = self._think
        else:
            self._state = self._leading

    # ------------------------------------------------------------------ driving

    def feed(self, text: str) -> list[Item]:
        if text:
            self._buf = self._buf[self._pos :] + text
            self._pos = 0
            while self._state(False):
                pass
        return self._take()

    def finish(self) -> list[Item]:
        """Everything still held, as text where it did not complete."""
        while True:
            while self._state(False):
                pass
            if not self._state(True):
                break
        self._buf, self._pos = "", 0
        return self._take()

    def _take(self) -> list[Item]:
        out, self._out = self._out, []
        return out

    def _text_out(self, text: str) -> None:
        if text:
            self._out.append(text)
            if self._after_call and not text.isspace():
                self._after_call = False

    def _advance(self, needles: Needles, final: bool) -> tuple[str, str | None]:
        """Consume up to and including the next tag; without one, all that cannot start one."""
        buf, pos = self._buf, self._pos
        hit = needles.find(buf, pos)
        if hit is not None:
            i, word = hit
            self._pos = i + len(word)
            return buf[pos:i], word
        end = len(buf) if final else len(buf) - needles.held(buf, pos)
        self._pos = end
        return buf[pos:end], None

    # ------------------------------------------------------------------ text and thinking

    def _text(self, final: bool) -> bool:
        needles = self._text_needles
        if needles is None:
            self._text_out(self._buf[self._pos :])
            self._pos = len(self._buf)
            return False
        before, word = self._advance(needles, final)
        self._text_out(before)
        if word is None:
            return False
        if word == THINK_OPEN:
            self._state = self._think
        elif word == THINK_CLOSE:
            pass
        elif word in STRAY_CLOSERS:
            if not self._after_call:
                self._text_out(word)
        elif word in XML_CALLS:
            self._markup = _Markup(block=_XML_BLOCK, pending=[word])
            self._state = self._block
        elif word == TOOL_CALL:
            self._markup = _Markup(block=_QWEN_BLOCK, pending=[word])
            self._state = self._tool_call_start
        else:
            self._markup = _Markup()
            self._open_call(word)
        return True

    def _think(self, final: bool) -> bool:
        thought, word = self._advance(_THINK_END, final)
        if thought:
            self._out.append(Reasoning(thought))
        if word is None:
            return False
        self._state = self._text
        return True

    def _leading(self, final: bool) -> bool:
        """Text before any think tag, held while it may still turn out to be thinking."""
        buf, pos = self._buf, self._pos
        hit = _THINK_TAGS.find(buf, pos)
        if hit is None and not final:
            end = len(buf) - _THINK_TAGS.held(buf, pos)
            self._lead.append(buf[pos:end])
            self._pos = end
            return False
        if hit is not None and hit[1] == THINK_CLOSE:
            thought = "".join(self._lead) + buf[pos : hit[0]]
            if thought:
                self._out.append(Reasoning(thought))
            self._pos = hit[0] + len(THINK_CLOSE)
        else:
            self._buf, self._pos = "".join(self._lead) + buf[pos:], 0
        self._lead = []
        self._state = self._text
        return True

    # ------------------------------------------------------------------ markup

    def _open_call(self, word: str) -> None:
        m = self._markup
        m.element = [word]
        m.dialect = _QWEN if word == QWEN_FUNCTION else _XML
        self._read_header(self._call_named)

    def _read_header(self, then: Callable[[str], None]) -> None:
        self._on_header = then
        self._state = self._header

    def _header(self, final: bool) -> bool:
        if final:
            return self._abandon()
        buf, pos = self._buf, self._pos
        end = buf.find(">", pos, pos + HEADER_LIMIT + 1)
        if end < 0:
            if len(buf) - pos > HEADER_LIMIT:
                return self._bail()
            return False
        header = buf[pos:end]
        self._markup.element.append(header + ">")
        self._pos = end + 1
        self._on_header(header)
        return True

    def _call_named(self, header: str) -> None:
        m = self._markup
        m.name, m.arguments = m.dialect.name(header), {}
        self._state = self._call_body

    def _element_advance(self, needles: Needles) -> tuple[str, str | None]:
        """:meth:`_advance` inside a call, keeping the raw text it consumes."""
        piece, word = self._advance(needles, False)
        self._markup.element.append(piece + (word or ""))
        return piece, word

    def _call_body(self, final: bool) -> bool:
        if final:
            return self._abandon()
        m = self._markup
        _, word = self._element_advance(m.dialect.call_body)
        if word is None:
            return False
        if word in m.dialect.param_opens:
            self._read_header(self._param_named)
        else:
            self._complete()
        return True

    def _param_named(self, header: str) -> None:
        m = self._markup
        m.param, m.value = m.dialect.name(header), []
        self._state = self._param_value

    def _param_value(self, final: bool) -> bool:
        if final:
            return self._abandon()
        m = self._markup
        piece, word = self._element_advance(m.dialect.param_end)
        m.value.append(piece)
        if word is None:
            return False
        m.arguments[m.param] = m.dialect.value("".join(m.value))
        self._state = self._call_body
        return True

    def _block(self, final: bool) -> bool:
        """Inside a wrapper, between calls."""
        if final:
            return self._abandon()
        m = self._markup
        between, word = self._advance(m.block, final)
        self._wrapper_text(between)
        if word is None:
            return False
        if word in XML_INVOKE or word == QWEN_FUNCTION:
            self._open_call(word)
            return True
        if not m.used:
            self._text_out("".join(m.pending) + word)
        self._markup = _Markup()
        self._state = self._text
        return True

    def _tool_call_start(self, final: bool) -> bool:
        """After ``<tool_call>``: JSON, a Qwen function, or (anything else) just text."""
        buf, pos = self._buf, self._pos
        start = pos
        while pos < len(buf) and buf[pos].isspace():
            pos += 1
        if pos == len(buf):
            return self._abandon() if final else False
        self._markup.pending.append(buf[start:pos])
        self._pos = pos
        if buf.startswith("{", pos):
            self._state = self._hermes
        elif buf.startswith(QWEN_FUNCTION, pos):
            self._pos += len(QWEN_FUNCTION)
            self._open_call(QWEN_FUNCTION)
        elif len(buf) - pos < len(QWEN_FUNCTION) and QWEN_FUNCTION.startswith(buf[pos:]) and not final:
            return False
        else:
            return self._bail()
        return True

    def _hermes(self, final: bool) -> bool:
        if final:
            return self._abandon()
        m = self._markup
        piece, word = self._element_advance(_HERMES_END)
        if word is None:
            return False
        call = hermes_call("".join(m.element)[: -len(word)])
        raw = "".join(m.pending) + "".join(m.element)
        if call is not None and call[0] in self.tool_names:
            self._made(ParsedCall(call[0], call[1], raw))
        else:
            self._text_out(raw)
        self._markup = _Markup()
        self._state = self._text
        return True

    def _complete(self) -> None:
        """A call read to its end: made if its tool is declared, else kept as text."""
        m = self._markup
        raw = "".join(m.element)
        m.element = []
        if m.name in self.tool_names:
            self._made(ParsedCall(m.name, m.arguments, raw))
        elif m.block is not None and not m.used:
            m.pending.append(raw)
        else:
            self._text_out(raw)
        self._state = self._text if m.block is None else self._block

    def _made(self, call: ParsedCall) -> None:
        m = self._markup
        if not m.used:
            self._text_out("".join(m.pending[1:]))
            m.used, m.pending = True, []
        self._out.append(call)
        self._after_call = True

    def _wrapper_text(self, text: str) -> None:
        m = self._markup
        if m.used:
            self._text_out(text)
        elif text:
            m.pending.append(text)

    def _abandon(self) -> bool:
        """At the end, markup still open is given back as text."""
        m = self._markup
        self._text_out("".join(m.pending) + "".join(m.element) + self._buf[self._pos :])
        self._pos = len(self._buf)
        self._markup = _Markup()
        self._state = self._text
        return False

    def _bail(self) -> bool:
        """Not markup after all: what was taken for it is text, and reading goes on from here."""
        m = self._markup
        self._text_out("".join(m.pending) + "".join(m.element))
        self._markup = _Markup()
        self._state = self._text
        return True
