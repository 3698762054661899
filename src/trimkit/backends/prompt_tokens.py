"""Token ids of rendered prompts, each piece between special tokens tokenized once.

A chat template writes every message between special tokens (``<|im_start|>`` …
``<|im_end|>``), and a tokenizer splits its input at its special tokens before it
does anything else, so a prompt's tokens are its pieces' tokens one after another.
Turn N+1 of a conversation renders as turn N's pieces and a few new ones, and the
budget's candidate cuts share all their pieces but one: only new pieces are
tokenized, so a request costs its new messages, not its whole prompt.

Whether a tokenizer really splits this way (a special token that swallows the
spaces beside it does not) is checked on the first prompts with more than one
piece: if the pieces ever disagree with the whole, every prompt is tokenized whole.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Iterable

from ..profile import RecentlyUsed

log = logging.getLogger("trimkit.backends")


CHECKED_PROMPTS = 4
"""Prompts tokenized both ways before the pieces are trusted."""


class PromptTokenizer:
    """``encode`` for whole rendered prompts, memoized piece by piece (callers hold any lock)."""

    def __init__(self, encode: Callable[[str], list[int]], special_tokens: Iterable[str],
                 max_chars: int = 16_000_000):
        self.encode = encode
        self.encoded_chars = 0
        """Characters tokenized so far (pieces and whole prompts): what the memo did not save."""
        self.piecewise: bool | None = None
        """None while being checked; then whether pieces agree with whole prompts."""
        self._checked = 0
        specials = sorted({t for t in special_tokens if t}, key=len, reverse=True)
        self._split = re.compile("(?=" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._pieces = RecentlyUsed(max_chars, len)
        self._last: tuple[str, list[int]] | None = None

    def __call__(self, text: str) -> list[int]:
        last = self._last
        if last is not None and last[0] == text:
            return list(last[1])
        pieces = self._split.split(text) if self._split is not None and self.piecewise is not False else [text]
        if len(pieces) < 2:
            ids = self._encode(text)
        elif self.piecewise is None:
            ids = self._joined(pieces)
            whole = self._encode(text)
            self._checked += 1
            if ids != whole:
                self.piecewise = False
                log.warning("this tokenizer does not split prompts at its special tokens; "
                            "every prompt is tokenized whole")
                ids = whole
            elif self._checked >= CHECKED_PROMPTS:
                self.piecewise = True
        else:
            ids = self._joined(pieces)
        self._last = (text, ids)
        return list(ids)

    def _encode(self, text: str) -> list[int]:
        self.encoded_chars += len(text)
        return list(self.encode(text))

    def _joined(self, pieces: list[str]) -> list[int]:
        ids: list[int] = []
        for piece in pieces:
            known = self._pieces.get(piece)
            if known is None:
                known = tuple(self._encode(piece))
                self._pieces.put(piece, known)
            ids.extend(known)
        return ids
