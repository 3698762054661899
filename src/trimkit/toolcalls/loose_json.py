"""JSON as small models write it: read strictly first, then with the usual slips repaired.

Repaired: single-quoted strings, Python's ``True``/``False``/``None``, unquoted keys,
trailing commas, a missing comma between members, closing brackets missing at the
end or one too many, a closing bracket of the wrong kind. Not repaired: unquoted
string values, comments, ``NaN``/``Infinity`` (not JSON), text after the value.

The parser keeps its own stack instead of recursing, and looks at each character
a bounded number of times, so a megabyte of brackets costs what a megabyte of
anything else does. With ``gemma=True`` it also reads Gemma 4's ``<|"|>…<|"|>``
strings, written raw without escapes.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

GEMMA_QUOTE = '<|"|>'

_SPACE = re.compile(r"\s*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_$][\w$.\-]*")
_GEMMA_KEY = re.compile(r"-*[A-Za-z_$][\w$.\-]*")
"""Gemma writes every key bare, a command-line flag (Claude Code's Grep ``-A``) too."""
_SINGLE_STOP = re.compile(r"['\\]")
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_CLOSERS = {"}": dict, "]": list}


def loads(text: str, *, gemma: bool = False) -> Any:
    """The value ``text`` holds, strict JSON first; ValueError when even a repair cannot read it."""
    if not gemma:
        try:
            return json.loads(text, strict=False, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            pass
    return _Loose(text, gemma).parse()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Loose:
    __slots__ = ("text", "gemma", "i", "stack", "keys")

    def __init__(self, text: str, gemma: bool):
        self.text, self.gemma, self.i = text, gemma, 0
        self.stack: list[dict | list] = []
        self.keys: list[str | None] = []

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} at character {self.i}")

    def space(self) -> str:
        self.i = _SPACE.match(self.text, self.i).end()
        return self.text[self.i : self.i + 1]

    def parse(self) -> Any:
        result: Any = None
        done = False
        expect = "value"  # value | key | colon | after
        while not done:
            c = self.space()
            if expect == "after":
                if not self.stack:
                    done = True
                    continue
                top = self.stack[-1]
                if c == ",":
                    self.i += 1
                    expect = "key" if isinstance(top, dict) else "value"
                elif c in _CLOSERS:
                    self.i += 1
                    result, done = self.close(c)
                elif c == "":
                    result, done = self.close("")
                elif isinstance(top, dict) and self.starts_key(c):
                    expect = "key"  # a missing comma
                elif isinstance(top, list) and self.starts_value(c):
                    expect = "value"
                else:
                    raise self.fail(f"unexpected {c!r}")
            elif expect == "key":
                if c in _CLOSERS:  # an empty object, or a trailing comma
                    self.i += 1
                    result, done = self.close(c)
                    expect = "after"
                    continue
                if c == "":
                    result, done = self.close("")
                    continue
                self.keys[-1] = self.key(c)
                expect = "colon"
            elif expect == "colon":
                if c not in ":=":
                    raise self.fail("expected ':'")
                self.i += 1
                expect = "value"
            else:
                if c == "{" or c == "[":
                    self.i += 1
                    self.stack.append({} if c == "{" else [])
                    self.keys.append(None)
                    expect = "key" if c == "{" else "value"
                    continue
                if c == "]" and self.stack and isinstance(self.stack[-1], list):  # [] or [1, 2, ]
                    self.i += 1
                    result, done = self.close(c)
                    expect = "after"
                    continue
                if c == "":
                    raise self.fail("a value is missing")
                value = self.scalar(c)
                if not self.stack:
                    result, done = value, True
                else:
                    self.put(value)
                expect = "after"
        rest = self.text[self.i :]
        if rest.strip(" \t\r\n}]"):
            raise self.fail("text after the value")
        return result

    def put(self, value: Any) -> None:
        top = self.stack[-1]
        if isinstance(top, dict):
            top[self.keys[-1]] = value
        else:
            top.append(value)

    def close(self, c: str) -> tuple[Any, bool]:
        """Close the innermost container (and any unclosed ones inside a mismatched bracket)."""
        while True:
            if not self.stack:
                raise self.fail("unbalanced closing bracket")
            top = self.stack.pop()
            self.keys.pop()
            matched = c == "" or isinstance(top, _CLOSERS[c])
            if not self.stack:
                if c == "" or matched:
                    return top, True
                raise self.fail("unbalanced closing bracket")
            self.put(top)
            if matched and c != "":
                return None, False

    def starts_key(self, c: str) -> bool:
        return c in "\"'" or (self.gemma and c == "<") or bool(_WORD.match(c))

    def starts_value(self, c: str) -> bool:
        return c in "\"'{[-" or c.isdigit() or (self.gemma and c == "<") or bool(_WORD.match(c))

    def key(self, c: str) -> str:
        if c in "\"'" or (self.gemma and self.text.startswith(GEMMA_QUOTE, self.i)):
            return self.string(c)
        m = (_GEMMA_KEY if self.gemma else _WORD).match(self.text, self.i)
        if not m:
            raise self.fail("expected a key")
        self.i = m.end()
        return m.group()

    def scalar(self, c: str) -> Any:
        if c in "\"'" or (self.gemma and self.text.startswith(GEMMA_QUOTE, self.i)):
            return self.string(c)
        m = _NUMBER.match(self.text, self.i)
        if m:
            self.i = m.end()
            number = m.group()
            return float(number) if any(ch in number for ch in ".eE") else int(number)
        m = _WORD.match(self.text, self.i)
        if m and m.group() in _LITERALS:
            self.i = m.end()
            return _LITERALS[m.group()]
        raise self.fail(f"unexpected {c!r}")

    def string(self, c: str) -> str:
        text, start = self.text, self.i
        if self.gemma and text.startswith(GEMMA_QUOTE, start):
            end = text.find(GEMMA_QUOTE, start + len(GEMMA_QUOTE))
            if end < 0:
                raise self.fail("unterminated string")
            self.i = end + len(GEMMA_QUOTE)
            return text[start + len(GEMMA_QUOTE) : end]
        if c == '"':
            try:
                value, self.i = scanstring(text, start + 1, False)
            except ValueError:
                raise self.fail("unterminated string") from None
            return value
        pieces: list[str] = []
        j = start + 1
        while True:
            m = _SINGLE_STOP.search(text, j)
            if m is None:
                raise self.fail("unterminated string")
            pieces.append(text[j : m.start()])
            if m.group() == "'":
                self.i = m.end()
                return "".join(pieces)
            escaped = text[m.end() : m.end() + 1]
            if escaped == "'":
                pieces.append("'")
                j = m.end() + 1
                continue
            length = 5 if escaped == "u" else 1
            chunk = text[m.start() : m.end() + length]
            try:
                pieces.append(scanstring('"' + chunk + '"', 1, False)[0])
            except ValueError:
                pieces.append(chunk)
            j = m.start() + 1 + length
