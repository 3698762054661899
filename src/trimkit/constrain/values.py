"""Grammar pieces for argument values: raw text that cannot contain a closing marker, and JSON.

A dialect reads a value up to its closing marker (``</parameter>`` in the XML
convention, ``</tool_call>`` around Hermes JSON). A value that contained the
marker would be cut there, so every value the grammar allows must avoid it:
raw text through :func:`avoiding`, and the strings inside JSON values through a
``pattern`` added to each string schema (:func:`json_avoiding`; a JSON string's
characters appear literally in the text, so a decoded value without the marker
is written without it).

The regular expressions are plain (no look-around, which the engine does not
support), built from the markers' letters by :func:`avoiding`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

Schema = dict[str, Any]

JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ?", "key_separator": ": ?"}
"""How JSON may be laid out: ``{"a": 1}`` or ``{"a":1}``, one space at most.

Unbounded whitespace would let a weak model pad a value forever; one optional
space keeps both layouts that models are trained on.
"""

STRING_FORMATS = {
    "uri": r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"]+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "date-time": r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+\-][0-9]{2}:[0-9]{2})",
    "email": r"[^\s@<>\"]+@[^\s@<>\"]+\.[^\s@<>\"]+",
    "ipv4": r"((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])",
}
"""Raw-text forms of the string formats clients use (Claude Code's WebFetch url is a ``uri``)."""


class UnsupportedSchema(ValueError):
    """A schema (or marker) this module cannot turn into a grammar; the caller falls back."""


def _escape(char: str) -> str:
    return re.escape(char) if char not in "\n\t" else {"\n": r"\n", "\t": r"\t"}[char]


def _class(excluded: Iterable[str]) -> str:
    """A character class of everything but ``excluded``."""
    chars = sorted(set(excluded))
    inner = "".join("\\" + c if c in "\\]^-[" else _escape(c) for c in chars)
    return f"[^{inner}]"


def avoiding(markers: Iterable[str]) -> str:
    """A regular expression for any text that contains none of ``markers``.

    Every occurrence of a marker starts with one of the markers' first characters.
    So the text is split at those characters: each piece after one must not begin
    with the rest of a marker that starts with it. What a piece may be is read off
    a trie of those rests. A marker's first character may not appear again inside
    any marker (true of every closing tag in use); otherwise :class:`UnsupportedSchema`.
    """
    words = sorted(set(markers))
    if not words or any(not w for w in words):
        raise UnsupportedSchema("no markers to avoid")
    heads = {w[0] for w in words}
    for word in words:
        if heads & set(word[1:]):
            raise UnsupportedSchema(f"marker {word!r} repeats a marker's first character")
    outside = _class(heads)
    pieces = []
    for head in sorted(heads):
        rests = [w[1:] for w in words if w[0] == head]
        if "" in rests:  # the single character itself is a marker: it may not appear at all
            continue
        pieces.append(_escape(head) + _after(rests, heads))
    if not pieces:
        return f"{outside}*"
    return f"{outside}*(?:{'|'.join(pieces)})*"


def _after(rests: list[str], heads: set[str]) -> str:
    """Text free of head characters that does not begin with any of ``rests``.

    It runs to the next head character or the end of the text.
    """
    children: dict[str, list[str]] = {}
    for rest in rests:
        children.setdefault(rest[0], []).append(rest[1:])
    options = ["", _class(heads | set(children)) + _class(heads) + "*"]
    for char, tails in sorted(children.items()):
        if "" in tails:  # a marker ends with this character: it may not follow
            continue
        options.append(_escape(char) + _after(tails, heads))
    return "(?:" + "|".join(options) + ")"


def json_avoiding(schema: Any, markers: Iterable[str]) -> Any:
    """``schema`` with every string it allows restricted to text without ``markers``.

    Property names of open objects are strings too: their ``additionalProperties``
    become a ``patternProperties`` entry for the same pattern (the engine takes no
    ``propertyNames``).
    """
    return _restrict(schema, f"^(?:{avoiding(markers)})$")


ANNOTATIONS = frozenset({"description", "title", "examples", "default", "$schema", "$comment", "deprecated"})
"""Keywords that say nothing about which values are valid: left out of grammars, which they only enlarge."""


_SUBSCHEMA_KEYS = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")


def _restrict(schema: Any, pattern: str | None) -> Any:
    """``schema`` without annotations and, with a ``pattern``, with its strings restricted to it."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    for key in _SUBSCHEMA_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = _restrict(out[key], pattern)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_restrict(s, pattern) for s in out[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _restrict(s, pattern) for name, s in out[key].items()}
    if pattern is not None and _allows_objects(out) and "patternProperties" not in out:
        extra = out.get("additionalProperties", True)
        if extra is not False:
            out["patternProperties"] = {pattern: {} if extra is True else extra}
            out["additionalProperties"] = False
    if pattern is not None and _allows_strings(out) and "enum" not in out and "const" not in out:
        if "pattern" in out or "format" in out:
            rest = {k: v for k, v in out.items() if k not in ("pattern", "format")}
            kept = {k: out[k] for k in ("pattern", "format") if k in out}
            out = {**rest, "allOf": [*out.get("allOf", []), kept, {"pattern": pattern}]} if kept else out
        else:
            out["pattern"] = pattern
    return out


def _allows_strings(schema: Schema) -> bool:
    return _allows(schema, "string")


def _allows_objects(schema: Schema) -> bool:
    return _allows(schema, "object") or (schema.get("type") is None and "properties" in schema)


def _allows(schema: Schema, kind: str) -> bool:
    declared = schema.get("type")
    return declared == kind or (isinstance(declared, list) and kind in declared)


def json_value(schema: Any, markers: Iterable[str] = ()) -> str:
    """``%json {…}`` for a value matching ``schema``, laid out per :data:`JSON_LAYOUT`."""
    markers = list(markers)
    doc = _restrict(schema if isinstance(schema, dict) else {}, f"^(?:{avoiding(markers)})$" if markers else None)
    doc = {**doc, "x-guidance": JSON_LAYOUT}
    return "%json " + json.dumps(doc, ensure_ascii=False, sort_keys=False)


def string_alternatives(schema: Any) -> list[Schema]:
    """The string-typed alternatives of a value's schema, in order (empty: not a string value).

    An untyped schema (``{}``, or one with only a description) allows any text.
    """
    if not isinstance(schema, dict):
        return [{}]
    nested = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(nested, list) and nested:
        return [alt for sub in nested for alt in string_alternatives(sub)]
    if "enum" in schema or "const" in schema:
        values = schema["enum"] if isinstance(schema.get("enum"), list) else [schema.get("const")]
        return [schema] if values and all(isinstance(v, str) for v in values) else []
    kind = schema.get("type")
    if kind is None:
        untyped = not any(k in schema for k in ("properties", "items", "minimum", "maximum"))
        return [schema] if untyped else []
    kinds = [kind] if isinstance(kind, str) else kind
    return [schema] if "string" in kinds else []


def raw_text(schema: Schema, markers: Iterable[str]) -> str | None:
    """A regular expression for raw text that a string ``schema`` allows, or None for any text.

    ``enum`` and ``const`` are handled by the caller as literals. Length bounds,
    ``pattern`` and the formats in :data:`STRING_FORMATS` become a regular
    expression (intersected with :func:`avoiding` by the caller); a ``pattern``
    is searched for, as JSON Schema says, unless anchored.
    """
    parts = []
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) or isinstance(high, int):
        low = low if isinstance(low, int) and low > 0 else 0
        parts.append(f"(?s:.{{{low},{high if isinstance(high, int) else ''}}})")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        parts.append(searched(pattern))
    fmt = schema.get("format")
    if isinstance(fmt, str):
        if fmt not in STRING_FORMATS:
            raise UnsupportedSchema(f"string format {fmt!r}")
        parts.append(STRING_FORMATS[fmt])
    if not parts:
        return None
    return " & ".join(lark_regex(p) for p in parts)


def searched(pattern: str) -> str:
    """A JSON Schema ``pattern`` (found anywhere in the value unless anchored) as a whole-text regex."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not _escaped(pattern, len(pattern) - 1)
    core = pattern[1 if start else 0 : len(pattern) - 1 if end else len(pattern)]
    return f"{'' if start else '(?s:.*)'}(?:{core}){'' if end else '(?s:.*)'}"


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` follows an odd number of backslashes."""
    slashes = 0
    while index - slashes - 1 >= 0 and text[index - slashes - 1] == "\\":
        slashes += 1
    return slashes % 2 == 1


def lark_regex(pattern: str) -> str:
    """``/pattern/`` for a Lark grammar: each unescaped ``/`` escaped."""
    out = []
    for i, char in enumerate(pattern):
        out.append("\\/" if char == "/" and not _escaped(pattern, i) else char)
    return "/" + "".join(out) + "/"
