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

    def find(self, text: str, start: int = 0, final: bool = True) -> tuple[int, str | None] | None:
        """The earliest marker in ``text[start:]`` as ``(index, marker)``, the longest where several start together.

        With ``final`` False, ``(index, None)`` means a marker may start at ``index``
        but the text ends before it is certain which (or whether one does).
        """
        if self._leads is None:
            return None
        m = self._leads.search(text, start)
        while m is not None:
            j = m.start()
            word, more = self._walk(text, j)
            if more and not final:
                return j, None
            if word is not None:
                return j, word
            m = self._leads.search(text, j + 1)
        return None

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
