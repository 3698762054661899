"""One request's constraint as a grammar, in llguidance's Lark dialect.

:func:`lark_grammar` is the whole of it: the start rule says where calls may be
(anywhere after free text, from the first token, or nowhere) and what the
output must be (JSON for a schema); the dialect's rules (:mod:`.dialects`) say
what a call is. Grammars are plain text, built here without the engine, and
memoized on the constraint's content, so a client that sends the same tools on
every turn costs one lookup.
"""

from __future__ import annotations

import re
from dataclasses import replace

import msgspec

from ..memo import SizedLRU
from .dialects import CALL_GRAMMARS, literal
from .spec import Constraint
from .values import avoiding, json_value, lark_regex

CACHE_SIZE = 64
CACHE_CHARS = 32 * 1024 * 1024
THINK_END = "</think>"


def _text_before(opener: str) -> list[str]:
    """Rules for free text that ends with the first ``opener`` (``head``) or never holds it (``FREE``)."""
    return [
        f"head[lazy]: {lark_regex('(?s:.*)' + re.escape(opener))}",
        f"FREE: {lark_regex(avoiding([opener]))}",
    ]


def build(constraint: Constraint) -> str | None:
    """The grammar for ``constraint``, or None when it constrains nothing.

    A dialect without a call grammar (:data:`~.dialects.CALL_GRAMMARS`) leaves
    calls unconstrained; JSON output is still held to its schema. Raises
    :class:`~.values.UnsupportedSchema` for a schema the dialect cannot write.
    """
    lines = ["%llguidance {}"]
    output = constraint.output_schema
    if output is not None:
        lines.append(f"output: {json_value(output)}")
    dialect = CALL_GRAMMARS.get(constraint.dialect)
    calls = constraint.calls_allowed and dialect is not None
    if dialect is None and constraint.choice == "none":
        constraint = replace(constraint, choice="auto")
    if calls:
        tools = constraint.callable_tools
        lines.append(dialect.rules(tools, constraint.parallel))
        opener = literal(dialect.opener)
        if constraint.forced:
            body = f"{opener} calls"
        elif output is not None:
            body = f"output | {opener} calls"
        else:
            lines += _text_before(dialect.opener)
            body = "FREE | head calls"
    elif output is not None:
        body = "output"
    elif constraint.choice == "none":
        lines.append(f"FREE: {lark_regex(avoiding([dialect.opener]))}")
        body = "FREE"
    else:
        return None
    if constraint.thinking_open and (constraint.forced or output is not None):
        lines.append(f"think[lazy]: {lark_regex('(?s:.*)' + re.escape(THINK_END))}")
        body = f'think "\\n"{{0,2}} ({body})'
    lines.insert(1, f"start: {body}")
    return "\n".join(lines) + "\n"


_cache = SizedLRU(CACHE_CHARS, max_entries=CACHE_SIZE)
_NONE = object()


def lark_grammar(constraint: Constraint) -> str | None:
    """:func:`build`, memoized on the constraint's content (LRU: :data:`CACHE_SIZE` entries,
    :data:`CACHE_CHARS` characters of keys and grammars at most)."""
    key = msgspec.json.encode(constraint.key())
    found = _cache.get(key, _NONE)
    if found is not _NONE:
        return found
    grammar = build(constraint)
    _cache.put(key, grammar, len(key) + len(grammar or ""))
    return grammar
