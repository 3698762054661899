"""The machinery every streaming reader shares: a buffer, a cursor, and a state to run.

A reader is a small state machine. Text goes into a buffer; the current state
looks at it from the cursor, consumes what it is sure of and returns True, or
returns False when it needs more text. Nothing is consumed twice, and a state
never looks further back than the cursor, so a turn costs time in proportion to
its length whatever the chunking. Text that could still be the start of a marker
stays in the buffer until the next chunk (or the end) decides.

:class:`Reader` runs plain text, reasoning, and the leading text of a turn whose
reasoning may have been opened by the prompt; what opens a call hands over to a
:class:`Form`, which reads that family's call markup with the same primitives
and ends by emitting a call (or a failed call, or text) and handing back.
"""

from __future__ import annotations

import re
from typing import Callable, Container, Sequence

from ..catalog import Catalog
from ..items import FailedCall, Item, ParsedCall, Reasoning
from ..loose_json import loads
from ..scan import JsonSpan, Needles

HEADER_LIMIT = 200
"""Characters allowed in a call's name or header; longer means it was prose, not markup."""

STUCK_LIMIT = 64
"""State changes in a row without consuming anything; more means a reader is looping."""

_SPACE = re.compile(r"\s*")
_NOT_IN_NAME = frozenset("<>{}\"'")
State = Callable[[], bool]


def valid_name(text: str) -> bool:
    """A call's name as models write one in bare markup: no whitespace, tag or JSON characters."""
    return bool(text) and not any(c.isspace() or c in _NOT_IN_NAME for c in text)


class Form:
    """One way of writing calls inside text, read by a reader's primitives.

    ``openers`` start it from plain text; ``strays`` are closing markers that are
    dropped (not shown) when they directly follow a call, the way a model closes a
    wrapper it never opened. A form instance belongs to one reader.
    """

    openers: tuple[str, ...] = ()
    strays: tuple[str, ...] = ()
    r: Reader

    def bind(self, reader: Reader) -> None:
        self.r = reader

    def open(self, marker: str) -> None:
        """``marker`` (one of :attr:`openers`) was just taken: set the reader's state."""
        raise NotImplementedError


class CallForm(Form):
    """A form that reads one call at a time: its name, its arguments, the wrapper it is in.

    Subclasses set :attr:`value` (a :class:`Value`) and :attr:`param` before reading
    a value, and say in :meth:`after_call` where reading goes once a call is made.
    """

    wrapper: Wrapper | None = None
    wrappers: Container[str] = ()
    """Openers that start a :class:`Wrapper`, read by :meth:`between`; every other opener starts one call."""

    def start_call(self, marker: str) -> None:
        self.r.begin(marker)
        self.name: str | None = None
        self.arguments: dict = {}

    def open(self, marker: str) -> None:
        if marker in self.wrappers:
            self.wrapper = Wrapper(marker)
            self.r.state = self.between
        else:
            self.wrapper = None
            self.read_call(marker)

    def read_call(self, marker: str) -> None:
        """A call opened by ``marker``: read its head next."""
        self.start_call(marker)
        self.r.state = self.head

    def head(self) -> bool:
        raise NotImplementedError

    def between(self) -> bool:
        """Inside a wrapper, before or after a call (forms with :attr:`wrappers` say what stands there)."""
        raise NotImplementedError

    def leave_wrapper(self) -> bool:
        """The wrapper is over: back to text."""
        self.wrapper = None
        self.r.state = self.r.text_state
        return True

    def json_head(self, closers: Needles, *, gemma: bool = False) -> bool | None:
        """At a call's head, after whitespace: a bracket starts a JSON body that names its calls
        (read from here on) and the end of the turn makes the opener text, both True; None while
        more text is needed; False when something else (a name) comes first."""
        c = self.next_char()
        if c is None:
            return None
        if not c:
            return self.r.bail(self.wrapper)
        if c in "{[":
            self.begin_json(closers, gemma=gemma)
            return True
        return False

    def read_name(self, needles: Needles) -> bool | None:
        """The call's name, up to one of ``needles`` (left at the cursor): True once :attr:`name` is
        set, None while more text is needed, False when what stands there is no name."""
        got = self.r.header_until(needles, take=False)
        if got is None:
            return None
        name = got[0].strip() if got else ""
        if not valid_name(name):
            return False
        self.name = name
        return True

    def next_char(self) -> str | None:
        """Take whitespace; the character after it ("" when the turn is over), None while more text is needed."""
        r = self.r
        r.space()
        if r.waiting:
            return None
        return r.buf[r.pos : r.pos + 1]

    def after_call(self) -> State:
        return self.between if self.wrapper is not None else self.r.text_state

    def convert(self, text: str):
        """A value as it is stored in the arguments (raw text unless a form says otherwise)."""
        return text

    def read_body(self, needles: Needles, on_marker: Callable[[str], bool]) -> bool:
        """Between a call's parts: whitespace, then one of ``needles``; stray text is the call's markup."""
        r = self.r
        r.space()
        word = r.at(needles)
        if word is False:
            return False
        if word is None:
            if r.ended:
                return r.cut(self.name, self.wrapper) if r.truncated else self.complete()
            r.skip_to(needles)
            return True
        return on_marker(word)

    def no_param(self, body: State) -> bool:
        """What opened a parameter names none: at the end of the turn the call is cut, else it is markup
        and reading goes back to the call's ``body``."""
        r = self.r
        if r.eof:
            return r.cut(self.name, self.wrapper)
        r.state = body
        return True

    def read_value(self, then: State) -> bool:
        r = self.r
        result = self.value.read(r)
        if result == "more":
            return False
        if result == "cut":
            return r.cut(self.name, self.wrapper)
        if result == "end":
            self.arguments[self.param] = self.convert(self.value.text)
            r.state = then
        return True

    def complete(self) -> bool:
        r = self.r
        raw = r.end_raw()
        r.emit_call(r.catalog.call(self.name or "", self.arguments, raw), self.wrapper)
        r.state = self.after_call()
        return True

    # ------------------------------------------------------------------ JSON bodies

    def begin_json(self, closers: Needles, *, gemma: bool = False) -> None:
        """Read a JSON body from the bracket at the cursor: the arguments of :attr:`name`, or (name
        None) calls that name themselves. ``closers`` end it even with brackets open."""
        self.span = JsonSpan(closers, gemma=gemma)
        self.gemma = gemma
        self.body: list[str] = []
        self.r.state = self._json

    def _json(self) -> bool:
        r = self.r
        p, kind = self.span.run(r.buf, r.pos, r.eof)
        self.body.append(r.consume(p))
        if kind == "more":
            return self.json_done(cut=True) if r.eof else False
        r.state = self.after_json
        return True

    def after_json(self) -> bool:
        """What may follow the body's last bracket; by default nothing belongs to the call."""
        return self.json_done()

    def json_tail(self, ends: Needles) -> bool:
        """Text between the body and its closing marker: part of the body (which then fails to read)."""
        r = self.r
        piece, word = r.scan(ends)
        self.body.append(piece)
        if word is None and not r.eof:
            return False
        return self.json_done(cut=word is None)

    def json_done(self, cut: bool = False) -> bool:
        r = self.r
        if cut and r.truncated:
            return r.bail(self.wrapper)
        raw = r.end_raw()
        body = "".join(self.body)
        try:
            value = loads(body, gemma=self.gemma)
        except ValueError as exc:
            reason = "unfinished" if cut else "unreadable"
            what = f"the arguments of {self.name}" if self.name else "the call"
            r.emit_call(FailedCall(self.name, raw, reason, f"{what} could not be read as JSON: {exc}"), self.wrapper)
        else:
            if self.name is not None:
                r.emit_call(r.catalog.call(self.name, value, raw), self.wrapper)
            else:
                calls = r.catalog.calls_in(value, raw)
                if calls is None:
                    return self.not_a_call(raw)
                r.emit_results(calls, self.wrapper)
        r.state = self.after_call()
        return True

    def not_a_call(self, raw: str) -> bool:
        """JSON that names no call where a call was opened: a failed call."""
        detail = 'a call must be a JSON object with "name" and "arguments"'
        self.r.emit_call(FailedCall(None, raw, "unreadable", detail), self.wrapper)
        self.r.state = self.after_call()
        return True


class TagCallForm(CallForm):
    """Calls written as tags: a call tag whose header names it, parameter tags whose headers name
    them, and the call's closing tag.

    Qwen3-Coder's ``<function=X><parameter=k>v</parameter></function>`` and the
    ``<invoke name="X"><parameter name="k">v</parameter></invoke>`` family are read the
    same way; they differ in their markers and in how a header gives a name, which
    subclasses set: :attr:`body_markers` (the markers that may come between parameters),
    :attr:`params` and :attr:`call_ends` (those that open a parameter and end the call),
    :meth:`call_name` and :meth:`param_value`.
    """

    body_markers: Needles
    params: Container[str]
    call_ends: Container[str]

    def call_name(self, header: str) -> str | None:
        """The name in a call tag's header (up to ``>``); None when it names no call, and the tag is text."""
        raise NotImplementedError

    def param_value(self, header: str) -> Value:
        """Set :attr:`param` from a parameter tag's header; the :class:`Value` that reads what follows."""
        raise NotImplementedError

    def head(self) -> bool:
        r = self.r
        header = r.header(">")
        if header is None:
            return False
        name = None if header is False else self.call_name(header)
        if name is None:
            return r.bail(self.wrapper)
        self.name = name
        r.state = self._tag_body
        return True

    def _tag_body(self) -> bool:
        return self.read_body(self.body_markers, self._tag_part)

    def _tag_part(self, word: str) -> bool:
        r = self.r
        if word in self.params:
            r.consume(r.pos + len(word))
            r.state = self._param_header
            return True
        if word in self.call_ends:
            r.consume(r.pos + len(word))
        return self.complete()  # a wrapper's close or a new call: this one's end tag is missing

    def _param_header(self) -> bool:
        header = self.r.header(">")
        if header is None:
            return False
        if header is False:
            return self.no_param(self._tag_body)
        self.value = self.param_value(header)
        self.r.state = self._tag_value
        return True

    def _tag_value(self) -> bool:
        return self.read_value(self._tag_body)


class Wrapper:
    """A block that can hold several calls (``<function_calls>``, ``<tool_call>``, DeepSeek's calls section).

    Its opening marker and what stands between its calls are markup once a call in
    it was made, and text if none was.
    """

    __slots__ = ("pending", "made")

    def __init__(self, opener: str):
        self.pending = [opener]
        self.made = 0


class Reader:
    """Streaming reader: plain text, reasoning, and hand-over to call forms."""

    reasoning: tuple[str, str] | None = ("<think>", "</think>")
    reasoning_prelude: tuple[str, ...] = ()
    """Dropped right after the reasoning opens (Gemma's channel name)."""

    def __init__(self, catalog: Catalog, thinking_open: bool | None, forms: Sequence[Form] = ()):
        self.catalog = catalog
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.truncated = False
        self.out: list[Item] = []
        self.raw: list[str] | None = None
        self.after_call = False
        self.forms = tuple(forms) if catalog else ()
        for form in self.forms:
            form.bind(self)
        self.openers = {marker: form for form in self.forms for marker in form.openers}
        self.strays = frozenset(m for form in self.forms for m in form.strays)
        marks = self.reasoning or ()
        self.text_needles = Needles(*self.openers, *self.strays, *marks)
        if self.reasoning:
            self.reasoning_open = Needles(self.reasoning[0])
            self.reasoning_close = Needles(self.reasoning[1])
            self.reasoning_marks = Needles(*self.reasoning)
            self.prelude = Needles(*self.reasoning_prelude)
            self._lead: list[str] = []
        if not self.reasoning or thinking_open is False:
            self.state: State = self.text_state
        elif thinking_open:
            self.state = self.reasoning_start
        else:
            self.state = self.leading_state

    # ------------------------------------------------------------------ driving

    def feed(self, text: str) -> list[Item]:
        if text:
            self.buf = self.buf[self.pos :] + text
            self.pos = 0
            self._run()
        return self._take()

    def finish(self, *, truncated: bool = False) -> list[Item]:
        self.eof, self.truncated = True, truncated
        self._run()
        if self.raw is not None or self.pos < len(self.buf):  # a state that forgot the end: keep every character
            self.emit_text("".join(self.raw or ()) + self.buf[self.pos :])
            self.raw = None
        self.buf, self.pos = "", 0
        return self._take()

    def _run(self) -> None:
        """Run states while they make progress. A state may change state without consuming, but
        never many times in a row: a reader stuck in place is a bug, raised rather than looped."""
        still, pos = 0, self.pos
        while self.state():
            if self.pos != pos:
                still, pos = 0, self.pos
            else:
                still += 1
                if still > STUCK_LIMIT:
                    raise RuntimeError(f"{type(self).__name__} made no progress at {self.buf[self.pos : self.pos + 40]!r}")

    def _take(self) -> list[Item]:
        out, self.out = self.out, []
        return out

    # ------------------------------------------------------------------ primitives for forms

    def consume(self, end: int) -> str:
        """Take ``buf[pos:end]``, recording it as markup while a call is being read."""
        piece = self.buf[self.pos : end]
        self.pos = end
        if self.raw is not None and piece:
            self.raw.append(piece)
        return piece

    def scan(self, needles: Needles) -> tuple[str, str | None]:
        """Take text up to and including the next marker; without one, all that cannot start one."""
        hit = needles.find(self.buf, self.pos, self.eof)
        if hit is not None and hit[1] is not None:
            i, word = hit
            piece = self.consume(i)
            self.consume(i + len(word))
            return piece, word
        end = hit[0] if hit is not None else len(self.buf) - (0 if self.eof else needles.held(self.buf, self.pos))
        return self.consume(end), None

    def skip_to(self, needles: Needles) -> bool:
        """Take text up to the next marker, leaving it at the cursor: True when one is there."""
        hit = needles.find(self.buf, self.pos, self.eof)
        if hit is not None:
            self.consume(hit[0])
            return hit[1] is not None
        self.consume(len(self.buf) - (0 if self.eof else needles.held(self.buf, self.pos)))
        return False

    def space(self) -> str:
        """Take the whitespace at the cursor."""
        return self.consume(_SPACE.match(self.buf, self.pos).end())

    def take_at(self, needles: Needles) -> str | None | bool:
        """Take the marker at the cursor if one of ``needles`` is there: as :meth:`at`, and what it found is taken."""
        word = self.at(needles)
        if word:
            self.consume(self.pos + len(word))
        return word

    def at(self, needles: Needles) -> str | None | bool:
        """The marker at the cursor (not taken); None if none; False if the text ends too soon to tell."""
        if self.pos >= len(self.buf):
            return None if self.eof else False
        return needles.at(self.buf, self.pos, self.eof)

    @property
    def ended(self) -> bool:
        """Everything there is has been read: the turn is over and the buffer empty."""
        return self.eof and self.pos >= len(self.buf)

    @property
    def waiting(self) -> bool:
        """The buffer is empty but more text may come."""
        return not self.eof and self.pos >= len(self.buf)

    def header(self, end: str, limit: int = HEADER_LIMIT) -> str | None | bool:
        """Take text up to ``end`` (a short header or name). None: more text needed; False: it is not one."""
        j = self.buf.find(end, self.pos, self.pos + limit + len(end))
        if j < 0:
            if self.eof or len(self.buf) - self.pos > limit + len(end):
                return False
            return None
        text = self.consume(j)
        self.consume(j + len(end))
        return text

    def header_until(self, needles: Needles, limit: int = HEADER_LIMIT, take: bool = True) -> tuple[str, str] | None | bool:
        """Take a short name up to one of ``needles`` as ``(name, marker)``. None: more text needed; False: not one.

        The name ends at the first character that can start a marker (``<`` for
        tags), which must then be one: a name holds no such character. ``take``
        False leaves the marker at the cursor.
        """
        j = needles.lead(self.buf, self.pos, self.pos + limit + 1)
        if j < 0:
            return False if self.eof or len(self.buf) - self.pos > limit else None
        word = needles.at(self.buf, j, self.eof)
        if word is False:
            return None
        if not word:
            return False
        text = self.consume(j)
        if take:
            self.consume(j + len(word))
        return text, word

    # ------------------------------------------------------------------ emitting

    def emit_text(self, text: str) -> None:
        if text:
            self.out.append(text)
            if self.after_call and not text.isspace():
                self.after_call = False

    def begin(self, marker: str) -> None:
        """A call's markup starts with ``marker`` (already taken)."""
        self.raw = [marker]

    def end_raw(self) -> str:
        raw = "".join(self.raw or ())
        self.raw = None
        return raw

    def emit_call(self, result: ParsedCall | FailedCall, wrapper: Wrapper | None = None) -> None:
        """A call read to its end. In a wrapper none of whose calls was made yet, a failed call's
        markup starts with the wrapper's own, so that text stays whole."""
        if wrapper is not None:
            if isinstance(result, ParsedCall):
                wrapper.made += 1
                wrapper.pending = []
            elif wrapper.made == 0 and wrapper.pending:
                pending = "".join(wrapper.pending)
                result = FailedCall(result.name, pending + result.raw, result.reason, result.detail)
                wrapper.pending = []
        self.out.append(result)
        self.after_call = True

    def emit_results(self, results: Sequence[ParsedCall | FailedCall], wrapper: Wrapper | None = None) -> None:
        for result in results:
            self.emit_call(result, wrapper)

    def bail(self, wrapper: Wrapper | None = None) -> bool:
        """Not markup after all: what was taken for it is text, and reading goes on at the cursor."""
        pending = "".join(wrapper.pending) if wrapper is not None and not wrapper.made else ""
        self.emit_text(pending + self.end_raw())
        self.state = self.text_state
        return True

    def cut(self, name: str | None, wrapper: Wrapper | None = None) -> bool:
        """The turn ended inside a call: text if the output was cut short, else a failed call."""
        self.consume(len(self.buf))
        if self.truncated or name is None:
            return self.bail(wrapper)
        raw = self.end_raw()
        self.emit_call(FailedCall(name, raw, "unfinished", f"the call to {name} was not finished"), wrapper)
        self.state = self.text_state
        return True

    # ------------------------------------------------------------------ text and reasoning

    def text_state(self) -> bool:
        piece, word = self.scan(self.text_needles)
        self.emit_text(piece)
        if word is None:
            return False
        if self.reasoning and word == self.reasoning[0]:
            self.state = self.reasoning_start
        elif self.reasoning and word == self.reasoning[1]:
            pass  # a close without an open: markup, not text
        elif word in self.strays:
            if not self.after_call:
                self.emit_text(word)
        else:
            self.openers[word].open(word)
        return True

    def reasoning_start(self) -> bool:
        if self.reasoning_prelude and self.take_at(self.prelude) is False:
            return False
        self.state = self.reasoning_body
        return True

    def reasoning_body(self) -> bool:
        piece, word = self.scan(self.reasoning_close)
        if piece:
            self.out.append(Reasoning(piece))
        if word is None:
            return False
        self.state = self.text_state
        return True

    def leading_state(self) -> bool:
        """Text before any reasoning marker, held while it may yet turn out to be reasoning."""
        piece, word = self.scan(self.reasoning_marks)
        self._lead.append(piece)
        if word is None and not self.eof:
            return False
        lead, self._lead = "".join(self._lead), []
        if word == self.reasoning[1]:
            if lead:
                self.out.append(Reasoning(lead))
            self.state = self.text_state
            return True
        self.buf = lead + (word or "") + self.buf[self.pos :]
        self.pos = 0
        self.state = self.text_state
        return True


class Value:
    """A parameter value read up to a closing marker that the grammar lets end it.

    A closing marker ends the value only when what follows it (after whitespace) is
    one of ``follow`` or the end of the turn; otherwise the marker and the
    whitespace are part of the value and reading goes on. So a value holding
    ``</parameter>`` (or any other closer) comes through whole.
    """

    __slots__ = ("closers", "follow", "pieces", "closer", "gap")

    def __init__(self, closers: Needles, follow: Needles):
        self.closers, self.follow = closers, follow
        self.pieces: list[str] = []
        self.closer: str | None = None
        self.gap: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def read(self, r: Reader) -> str:
        """``"end"``: the value is complete (what follows is not taken); ``"cut"``: the turn ended
        inside it; ``"more"``: more text is needed; ``"on"``: progress, call again."""
        if self.closer is None:
            piece, word = r.scan(self.closers)
            self.pieces.append(piece)
            if word is None:
                return "cut" if r.eof else "more"
            self.closer, self.gap = word, []
            return "on"
        self.gap.append(r.space())
        if r.pos >= len(r.buf):
            return "end" if r.eof else "more"
        word = r.at(self.follow)
        if word is False:
            return "more"
        if word:
            return "end"
        self.pieces += [self.closer, *self.gap]
        self.closer = None
        return "on"
