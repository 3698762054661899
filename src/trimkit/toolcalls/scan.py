"""Finding fixed markers in streamed text, a bounded number of looks per character.

:class:`Needles` finds the earliest of a set of literal markers and tells how much
of a buffer's end could still grow into one, so a reader can stream everything
else at once. It walks a trie from each position where a marker's first
character occurs, so its cost is the text's length times the longest marker at
worst, however many markers there are.

Build it from fixed markup (a dialect's tags, a tokenizer's special tokens), never
from strings a client sends: it keeps a node per prefix of every marker, so a
client's megabyte-long stop sequence would cost that much memory and time per
position. Stop sequences are matched by :class:`~trimkit.toolcalls.stops.StopMatcher`.
"""

from __future__ import annotations

import re

_END = ""
"""Trie key marking that the path so far is a whole marker."""


class Needles:
    """A fixed set of literal markers to look for in streamed text."""

    __slots__ = ("words", "longest", "_trie", "_leads")

    def __init__(self, *words: str):
        self.words = frozenset(w for w in words if w)
        self.longest = max(map(len, self.words), default=0)
        self._trie: dict = {}
        for word in self.words:
            node = self._trie
            for ch in word:
                node = node.setdefault(ch, {})
            node[_END] = word
        leads = "".join(sorted(self._trie))
        self._leads = re.compile("[" + re.escape(leads) + "]") if leads else None

    def __bool__(self) -> bool:
        return bool(self.words)

    def _walk(self, text: str, j: int) -> tuple[str | None, bool]:
        """The longest marker starting at ``j``, and whether a longer one could follow past the text's end."""
        node, found, k, n = self._trie, None, j, len(text)
        while True:
            word = node.get(_END)
            if word is not None:
                found = word
            if k >= n:
                return found, len(node) > (1 if word is not None else 0)
            node = node.get(text[k])
            if node is None:
                return found, False
            k += 1

    def find(self, text: str, start: int = 0, final: bool = True, stop: int | None = None) -> tuple[int, str | None] | None:
        """The earliest marker in ``text[start:]`` as ``(index, marker)``, the longest where several start together.

        With ``final`` False, ``(index, None)`` means a marker may start at ``index``
        but the text ends before it is certain which (or whether one does). ``stop``
        bounds where a marker may start, so a search for a nearby marker costs
        only the distance searched.
        """
        if self._leads is None:
            return None
        stop = len(text) if stop is None else min(stop, len(text))
        m = self._leads.search(text, start, stop)
        while m is not None:
            j = m.start()
            word, more = self._walk(text, j)
            if more and not final:
                return j, None
            if word is not None:
                return j, word
            m = self._leads.search(text, j + 1, stop)
        return None

    def lead(self, text: str, start: int, stop: int) -> int:
        """Where the first character that can start a marker is in ``text[start:stop]``; -1 if nowhere."""
        m = self._leads.search(text, start, stop) if self._leads is not None else None
        return m.start() if m is not None else -1

    def held(self, text: str, start: int = 0) -> int:
        """Length of the longest end of ``text[start:]`` that could still grow into a marker."""
        n = len(text)
        for j in range(max(start, n - self.longest + 1), n):
            node = self._trie
            for ch in text[j:]:
                node = node.get(ch)
                if node is None:
                    break
            else:
                return n - j
        return 0

    def at(self, text: str, j: int, final: bool) -> str | None | bool:
        """The marker starting exactly at ``j``; None when none does; False when the text ends too soon to tell."""
        word, more = self._walk(text, j)
        if more and not final:
            return False
        return word


class TokenFilter:
    """Removes every occurrence of some strings (a tokenizer's special tokens) from streamed text.

    ``feed`` returns the text that is certainly free of them; the end that could
    still grow into one is held until the next ``feed`` or :meth:`flush`.
    """

    __slots__ = ("_needles", "_held")

    def __init__(self, tokens):
        self._needles = Needles(*tokens)
        self._held = ""

    def __bool__(self) -> bool:
        return bool(self._needles)

    def feed(self, text: str) -> str:
        if not self._needles:
            return text
        text = self._held + text
        out: list[str] = []
        pos = 0
        while True:
            hit = self._needles.find(text, pos, final=False)
            if hit is None:
                keep = self._needles.held(text, pos)
                out.append(text[pos : len(text) - keep])
                self._held = text[len(text) - keep :] if keep else ""
                return "".join(out)
            j, word = hit
            out.append(text[pos:j])
            if word is None:
                self._held = text[j:]
                return "".join(out)
            pos = j + len(word)

    def flush(self) -> str:
        """What was held, with any whole token in it removed."""
        text, self._held = self._held, ""
        if not text:
            return ""
        out, pos = [], 0
        while (hit := self._needles.find(text, pos)) is not None:
            out.append(text[pos : hit[0]])
            pos = hit[0] + len(hit[1])
        out.append(text[pos:])
        return "".join(out)


GEMMA_QUOTE = '<|"|>'
_IN_DOUBLE = re.compile(r'["\\]')
_IN_SINGLE = re.compile(r"['\\]")


class JsonSpan:
    """Follows a JSON value (as models write it) through streamed text, to find where it ends.

    Give it the text from the value's opening ``{`` or ``[``. It tracks strings
    (double-quoted, single-quoted, and with ``gemma`` Gemma 4's ``<|"|>`` ones) and
    bracket depth, so a closing marker inside a string never ends the value. A
    closing marker outside any string (``closers``) does end it even while
    brackets are open, since it cannot be part of JSON: the reader then repairs
    the missing brackets. Each character is looked at once; runs without
    anything of interest are skipped by one regex search.
    """

    __slots__ = ("closers", "gemma", "depth", "quote", "escape", "_out", "_lead")

    def __init__(self, closers: Needles | None = None, *, gemma: bool = False):
        self.closers = closers if closers else None
        self.gemma = gemma
        self.depth = 0
        self.quote: str | None = None
        self.escape = False
        leads = set(self.closers._trie) if self.closers else set()
        if gemma:
            leads.add("<")
        self._lead = frozenset(leads)
        self._out = re.compile("[" + re.escape("\"'{}[]" + "".join(sorted(leads))) + "]")

    def run(self, buf: str, pos: int, final: bool) -> tuple[int, str]:
        """Read from ``pos``: ``(p, "end")`` the value closed just before ``p``; ``(p, "closer")`` a
        closing marker starts at ``p``; ``(p, "more")`` all before ``p`` is read and more text is needed.
        """
        p, n = pos, len(buf)
        while True:
            if self.quote is not None:
                if self.escape:
                    if p >= n:
                        return p, "more"
                    p += 1
                    self.escape = False
                if self.quote == GEMMA_QUOTE:
                    j = buf.find(GEMMA_QUOTE, p)
                    if j < 0:
                        keep = 0 if final else next((k for k in range(4, 0, -1) if buf.endswith(GEMMA_QUOTE[:k])), 0)
                        return max(p, n - keep), "more"
                    p, self.quote = j + len(GEMMA_QUOTE), None
                    continue
                m = (_IN_DOUBLE if self.quote == '"' else _IN_SINGLE).search(buf, p)
                if m is None:
                    return n, "more"
                p = m.end()
                if m.group() == "\\":
                    self.escape = True
                else:
                    self.quote = None
                continue
            m = self._out.search(buf, p)
            if m is None:
                return n, "more"
            j = m.start()
            c = buf[j]
            if c in self._lead:
                if self.gemma and c == "<":
                    if buf.startswith(GEMMA_QUOTE, j):
                        p, self.quote = j + len(GEMMA_QUOTE), GEMMA_QUOTE
                        continue
                    if not final and GEMMA_QUOTE.startswith(buf[j:]):
                        return j, "more"
                if self.closers is not None:
                    word = self.closers.at(buf, j, final)
                    if word is False:
                        return j, "more"
                    if word:
                        return j, "closer"
            p = j + 1
            if c == '"' or c == "'":
                self.quote = c
            elif c == "{" or c == "[":
                self.depth += 1
            elif c == "}" or c == "]":
                self.depth -= 1
                if self.depth <= 0:
                    return p, "end"
