"""One request's constraint as a grammar, in llguidance's Lark dialect.

:func:`lark_grammar` is the whole of it: the start rule says where calls may be
(anywhere after free text, from the first token, or nowhere) and what the
output must be (JSON for a schema); the dialect's rules (:mod:`.dialects`) say
what a call is. Grammars are plain text, built here without the engine, and
memoized on the constraint's content, so a client that sends the same tools on
every turn costs one lookup.
"""

from __future__ import annotations

from typing import Mapping

import msgspec

from ..memo import SizedLRU
from .dialects import CALL_GRAMMARS, Marks, Mode
from .spec import Constraint
from .values import json_value

CACHE_SIZE = 64
CACHE_CHARS = 32 * 1024 * 1024


def build(constraint: Constraint, special: Mapping[str, int] | None = None) -> str | None:
    """The grammar for ``constraint``, or None when it constrains nothing.

    ``special`` maps the dialect's markers that the model's tokenizer holds as
    special tokens to their ids (:func:`~.dialects.markers` lists the markers to
    look up); they are written as those tokens. A dialect without a call grammar
    leaves calls unconstrained; JSON output is still held to its schema. Raises
    :class:`~.values.UnsupportedSchema` for a schema the dialect cannot write.
    """
    marks = Marks(special)
    lines = ["%llguidance {}"]
    output = constraint.output_schema
    if output is not None:
        lines.append(f"output: {json_value(output)}")
    dialect = CALL_GRAMMARS.get(constraint.dialect)
    if dialect is None:
        if output is None:
            return None
        lines.insert(1, "start: output")
        return "\n".join(lines) + "\n"
    mode: Mode
    if constraint.calls_allowed:
        lines.append(dialect.rules(constraint.callable_tools, constraint.parallel and dialect.parallel_calls, marks))
        mode = "call" if constraint.forced else "output_or_call" if output is not None else "text"
    elif output is not None:
        mode = "output"
    elif constraint.choice == "none":
        mode = "none"
    else:
        return None
    rules, body = dialect.turn(mode, marks)
    reasoning, body = dialect.reasoned(body, mode, constraint.thinking_open, marks)
    lines += rules + reasoning
    lines.insert(1, f"start: {body}")
    return "\n".join(lines) + "\n"


_cache = SizedLRU(CACHE_CHARS, max_entries=CACHE_SIZE)
_NONE = object()


def lark_grammar(constraint: Constraint, special: Mapping[str, int] | None = None) -> str | None:
    """:func:`build`, memoized on the constraint's content and ``special`` (LRU: :data:`CACHE_SIZE`
    entries, :data:`CACHE_CHARS` characters of keys and grammars at most)."""
    key = msgspec.json.encode([constraint.key(), sorted((special or {}).items())])
    found = _cache.get(key, _NONE)
    if found is not _NONE:
        return found
    grammar = build(constraint, special)
    _cache.put(key, grammar, len(key) + len(grammar or ""))
    return grammar
