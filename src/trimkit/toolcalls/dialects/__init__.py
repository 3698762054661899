"""Tool-call dialects: one module per way a model family writes calls, behind one small interface.

A model calls tools in the format its chat template taught it. Each module here
knows one format, the way mlx-lm's ``tool_parsers`` do, and declares the same
things (see :class:`Dialect`):

``name``
    what settings and reports call it (``"xml"``, ``"qwen3_coder"``, …);
``detect(chat_template, vocab) -> bool``
    whether a tokenizer's chat template (or, failing that, its vocabulary) uses
    this format, the way mlx-lm's ``_infer_tool_parser`` decides;
``call_markers``
    the strings that open a call, for grammar-constrained decoding to trigger on;
``reasoning_markers``
    ``(open, close)`` pairs around the model's reasoning;
``reader(tools, *, thinking_open) -> StreamReader``
    a fresh streaming reader for one model turn.

A :class:`StreamReader` takes the model's text in chunks split anywhere and gives
back :data:`~trimkit.toolcalls.items.Item` s: plain text (``str``),
:class:`~trimkit.toolcalls.items.ParsedCall`,
:class:`~trimkit.toolcalls.items.Reasoning` and
:class:`~trimkit.toolcalls.items.FailedCall`. ``feed(text)`` returns what is
certain so far; ``finish()`` ends the turn (``finish(truncated=True)`` when the
output was cut by ``max_tokens`` or a stop sequence, so markup still open is
text rather than a call that failed). Whatever the chunking, the items are the
same once adjacent text (and adjacent reasoning) is joined.

``tools`` are the declared tools (:class:`~trimkit.wire.Tool`, or bare names).
Without tools no markup is read as a call. ``thinking_open`` says whether the
rendered prompt already opened a reasoning section (a template that ends its
generation prompt with ``<think>``): True reads the start as reasoning up to the
first close marker; False starts in plain text; None (unknown) holds the leading
text back until an open or close marker tells, or the end (then it is text).

Readers see markers as text: a marker the tokenizer emits as one special token is
seen as long as the detokenizer writes its text (mlx-lm does), and a marker split
across tokens is seen all the same. Every reader also reads trimkit's own XML
convention (:mod:`trimkit.convention`) besides its family's format, since a model
taught that convention in the prompt may write either. What each reader repairs
and what it never cuts is written in ``docs/tool-calls.md``.

:func:`dialect_for` picks the dialect for a tokenizer (``xml`` when nothing
matches), :func:`dialect_named` looks one up by name. Neither imports a model
runtime: the server passes the template string and the vocabulary (any
collection of token strings, e.g. the ``get_vocab()`` dict).
"""

from __future__ import annotations

from typing import Collection

from ..items import FailedCall, Item, ParsedCall, Reasoning
from .base import Dialect, StreamReader
from . import deepseek, gemma4, glm47, harmony, hermes, llama3_json, minimax_m2, mistral, qwen3_coder, xml

DIALECTS: tuple[Dialect, ...] = (
    harmony.DIALECT,
    gemma4.DIALECT,
    minimax_m2.DIALECT,
    deepseek.DIALECT,
    glm47.DIALECT,
    mistral.DIALECT,
    qwen3_coder.DIALECT,
    llama3_json.DIALECT,
    hermes.DIALECT,
    xml.DIALECT,
)
"""Every dialect, in the order :func:`dialect_for` tries them: the most specific first."""

DEFAULT = xml.DIALECT


def dialect_for(chat_template: str | None, vocab: Collection[str] = ()) -> Dialect:
    """The dialect a tokenizer's chat template (or vocabulary) uses; ``xml`` when none matches."""
    template = chat_template if isinstance(chat_template, str) else ""
    for dialect in DIALECTS:
        if dialect is not DEFAULT and dialect.detect(template, vocab):
            return dialect
    return DEFAULT


def dialect_named(name: str) -> Dialect:
    """The dialect called ``name``; KeyError naming the known ones otherwise."""
    for dialect in DIALECTS:
        if dialect.name == name:
            return dialect
    known = ", ".join(d.name for d in DIALECTS)
    raise KeyError(f"unknown tool-call dialect {name!r}; known: {known}")


__all__ = [
    "DEFAULT",
    "DIALECTS",
    "Dialect",
    "FailedCall",
    "Item",
    "ParsedCall",
    "Reasoning",
    "StreamReader",
    "dialect_for",
    "dialect_named",
]
