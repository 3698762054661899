"""Shortening tool and parameter descriptions without cutting a sentence.

A tool description keeps whole paragraphs while they fit, then ends at a sentence
end; when even the first sentence is too long it ends early at a clause break. A
parameter gets its first sentence on one line. Parameter descriptions that only
repeat what the model has just read ("The command to execute" for ``command`` of a
tool that "Executes a bash command") can be recognised with :func:`restates`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

ELLIPSIS = "…"
CLAUSE_BREAKS = (" (", ", ", "; ", " - ")
DESCRIPTION_CLAUSE_BREAKS = (", ", "; ", ": ", " (", " - ", " and ")
MIN_CLAUSE_WORDS = 3
MAX_RESTATING_WORDS = 8
STOPWORDS = frozenset(
    "a an the to of in on for from with by at as is be it its this that into against and or".split()
)
ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx", "incl"})


def _boundaries(text: str) -> Iterable[int]:
    """Offsets where a sentence (or a line) ends, in order."""
    for match in re.finditer(r"[.!?](?=\s)|\n", text):
        if match.group() == "\n":
            yield match.start()
            continue
        word_start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start())) + 1
        word = text[word_start : match.start()].lstrip("([{\"'`")
        if word.lower() in ABBREVIATIONS or word.isdigit():
            continue
        yield match.end()


def _cut_words(text: str, limit: int) -> str:
    """``text`` within ``limit``: at a clause break (`` (``, ``, ``, ``; ``) when one falls in
    its second half or later, else at a word with ``…``."""
    if limit <= 1:
        return ""
    clause = max(text.rfind(mark, 0, limit + 1) for mark in CLAUSE_BREAKS)
    if clause >= limit // 2:
        return text[:clause].rstrip()
    space = text.rfind(" ", 0, limit)
    cut = text[: space if space > 0 else limit - 1].rstrip(" ,;:")
    return cut + ELLIPSIS


def cut_at_sentence(text: str, limit: int) -> str:
    """``text`` cut at the last sentence (or line) end within ``limit`` characters;
    ``""`` when even the first sentence is longer."""
    if len(text) <= limit:
        return text
    end = 0
    for offset in _boundaries(text + " "):
        if offset > limit:
            break
        end = offset
    return text[:end].rstrip()


def first_clauses(sentence: str, limit: int) -> str:
    """A sentence too long for ``limit`` ended early at a clause break (``, ``, ``; ``, ``: ``,
    `` (``, `` - ``, `` and ``) with a full stop: the longest such head of at least
    :data:`MIN_CLAUSE_WORDS` words that fits, or ``""``. Never a cut word, never ``…``."""
    window = sentence[:limit]
    cut = max(window.rfind(mark) for mark in DESCRIPTION_CLAUSE_BREAKS)
    head = sentence[:cut].rstrip(" ,;:-(") if cut > 0 else ""
    return head + "." if len(head.split()) >= MIN_CLAUSE_WORDS else ""


def _is_heading(line: str) -> bool:
    return line.startswith("#") or line.endswith(":")


def _drop_dangling_headings(lines: list[str]) -> list[str]:
    """Without trailing lines such as ``Usage:`` or ``# Notes`` that lost what they introduce."""
    while lines and _is_heading(lines[-1]):
        lines.pop()
    return lines


_EXAMPLE_OPEN = re.compile(r"<(examples?)\b")


def _strip_examples(text: str) -> str:
    """``text`` without its ``<example …>…</example>`` and ``<examples>…</examples>`` elements.

    What ``re.sub(r"<(examples?)\\b[^>]*>.*?</\\1>", "", text, flags=re.S)`` does, in one
    pass: that regex scans to the end of the text for every tag left open, so a
    description of unclosed tags cost time quadratic in its length. Here each
    search for a tag's ``>`` or its closing tag starts where the last one ended,
    and a closing tag missing once is missing for every later opening too.
    """
    out: list[str] = []
    pos = 0
    tag_end = -1  # the next ">" at or after the latest opening tag, or -2 when there is none
    closing: dict[str, int] = {}  # the next closing tag of each name, or -1 when none is left
    for match in _EXAMPLE_OPEN.finditer(text):
        start = match.start()
        if start < pos:
            continue
        if tag_end < match.end() and tag_end != -2:
            found = text.find(">", match.end())
            tag_end = found if found >= 0 else -2
        if tag_end == -2:
            break
        name = match.group(1)
        close = closing.get(name, 0)
        if 0 <= close <= tag_end:
            close = text.find(f"</{name}>", tag_end + 1)
            closing[name] = close
        if close < 0:
            continue
        out.append(text[pos:start])
        pos = close + len(name) + 3
    out.append(text[pos:])
    return "".join(out)


def _paragraphs(text: str) -> list[str]:
    """Paragraphs with their lines stripped and blank lines dropped."""
    out = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line.strip() for line in block.splitlines()]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            out.append(paragraph)
    return out


def compact_description(text: str | None, limit: int, include_examples: bool) -> str:
    """A tool description cut to ``limit``: whole paragraphs while they fit, then a sentence end.

    Nothing is cut mid-sentence. When even the first sentence is too long, it ends early
    at a clause break (:func:`first_clauses`); a later paragraph that does not reach a
    sentence end within what is left is left out.
    """
    if not text or limit <= 0:
        return ""
    if not include_examples:
        text = _strip_examples(text)
    kept: list[str] = []
    room = limit
    for paragraph in _paragraphs(text):
        if kept:
            room -= 1
        if len(paragraph) <= room:
            kept.append(paragraph)
            room -= len(paragraph)
            continue
        cut = cut_at_sentence(paragraph, room) or (first_clauses(paragraph, room) if not kept else "")
        if cut:
            kept.append(cut)
        break
    return "\n".join(_drop_dangling_headings("\n".join(kept).split("\n")))


def one_line(text: Any, limit: int) -> str:
    """A parameter description: its first sentence on one line, within ``limit``."""
    if not isinstance(text, str) or not text or limit <= 0:
        return ""
    flat = " ".join(text.split())
    for end in _boundaries(flat + " "):
        flat = flat[:end]
        break
    return flat if len(flat) <= limit else _cut_words(flat, limit)


def _stem(word: str) -> str:
    """A crude stem, enough to match "Executes" with "execute" and "files" with "file"."""
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _words(text: str) -> list[str]:
    """Words of prose or of a name (``file_path``, ``WebFetch``, ``-B``)."""
    return re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", text)


def known_words(*texts: str) -> frozenset[str]:
    """Stems of the words in ``texts``: what a model reading the tool has already been told."""
    return frozenset(_stem(w) for text in texts for w in _words(text))


def restates(description: str, known: frozenset[str]) -> bool:
    """Whether a parameter description says nothing the model has not already read.

    True for a short description (at most :data:`MAX_RESTATING_WORDS` words, letters
    only, no digits, quotes or brackets that may hold a constraint) whose every word
    but the articles and prepositions is in ``known``: "The command to execute" for
    ``command`` of a tool described as "Executes a bash command".
    """
    if not description or re.search(r"[^A-Za-z\s.,]", description):
        return False
    words = description.split()
    if len(words) > MAX_RESTATING_WORDS:
        return False
    content = {_stem(w) for w in _words(description) if w.lower() not in STOPWORDS}
    return content <= known
