"""Tool-call argument values coerced to the types a tool's JSON schema declares.

Models write every argument as text (or, in JSON dialects, sometimes with the wrong
type). Clients validate ``tool_use`` input against the schema they declared, so a
``"5"`` for an integer would be rejected although the model meant ``5``. Coercion
only converts what clearly means the declared type; a value that cannot be
converted is returned unchanged so the client reports the validation error itself.
Strings are never stripped or parsed.

Alternatives (``anyOf``, ``oneOf``, a list of types) are tried in order for text;
a value that already has one of the alternative types keeps it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import msgspec

from .loose_json import loads

Schema = dict[str, Any]


def coerce_arguments(arguments: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    """Each argument coerced to its property's schema; names and unknown arguments kept as written."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return dict(arguments)
    return {name: coerce(value, properties.get(name)) for name, value in arguments.items()}


def coerce(value: Any, schema: Schema | None) -> Any:
    """``value`` converted to ``schema``'s type, or unchanged when it cannot be."""
    return _coerce(value, schema)[1]


def _coerce(value: Any, schema: Any) -> tuple[bool, Any]:
    options = _options(schema, [])
    if not options:
        return True, value
    if not isinstance(value, str):
        for kind, sub in options:
            if kind is None or _JSON_TYPE.get(type(value)) == kind or (kind == "number" and type(value) is int):
                return _CONVERT[kind](value, sub)
    for kind, sub in options:
        ok, out = _CONVERT[kind](value, sub)
        if ok:
            return True, out
    return False, value


def _options(schema: Any, out: list[tuple[str | None, Schema]]) -> list[tuple[str | None, Schema]]:
    """The alternatives a schema allows, in order, as (type or None for anything, schema)."""
    if not isinstance(schema, dict):
        return out
    nested = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(nested, list) and nested:
        for sub in nested:
            if isinstance(sub, dict) and _typed(sub):
                _options(sub, out)
            else:
                out.append((None, sub))
        return out
    kinds = schema.get("type")
    if kinds is None:
        kinds = _implied_types(schema)
    for kind in [kinds] if isinstance(kinds, str) else kinds or []:
        if kind in _CONVERT:
            out.append((kind, schema))
    return out


def _typed(schema: Schema) -> bool:
    return any(key in schema for key in ("type", "anyOf", "oneOf", "properties", "items", "enum", "const"))


def _implied_types(schema: Schema) -> list[str]:
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    values = schema["enum"] if isinstance(schema.get("enum"), list) else [schema["const"]] if "const" in schema else []
    kinds: list[str] = []
    for value in values:
        kind = _JSON_TYPE.get(type(value))
        if kind and kind not in kinds:
            kinds.append(kind)
    return kinds


# --------------------------------------------------------------------------- one type each


def _as_string(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, str):
        return True, value
    if value is None:
        return False, value
    return True, msgspec.json.encode(value).decode()


def _as_integer(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return False, value
    if isinstance(value, int):
        return True, value
    if isinstance(value, str):
        number = _number(value)
        if number is None:
            return False, value
        value = number
    if isinstance(value, float) and value.is_integer():
        return True, int(value)
    return isinstance(value, int), value


def _as_number(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return False, value
    if isinstance(value, (int, float)):
        return math.isfinite(value), value
    if isinstance(value, str):
        number = _number(value)
        if number is not None:
            return True, number
    return False, value


def _number(text: str) -> int | float | None:
    text = text.strip()
    if not text or "_" in text or len(text) > 400:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _as_boolean(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return True, value
    if isinstance(value, int) and value in (0, 1):
        return True, bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True, True
        if word in _FALSE:
            return True, False
    return False, value


def _as_null(value: Any, schema: Schema) -> tuple[bool, Any]:
    if value is None:
        return True, None
    if isinstance(value, str) and value.strip().lower() in ("", "null", "none"):
        return True, None
    return False, value


def _as_array(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, str):
        ok, parsed = _parse(value)
        if ok and isinstance(parsed, list):
            value = parsed
        elif _strings_only(schema.get("items")) and not (ok and isinstance(parsed, dict)):
            return True, [parsed if ok and isinstance(parsed, str) else value]
        else:
            return False, value
    if not isinstance(value, list):
        return False, value
    items = schema.get("items")
    if not isinstance(items, dict):
        return True, value
    return True, [coerce(item, items) for item in value]


def _strings_only(items: Any) -> bool:
    return isinstance(items, dict) and [kind for kind, _ in _options(items, [])] == ["string"]


def _as_object(value: Any, schema: Schema) -> tuple[bool, Any]:
    if isinstance(value, str):
        ok, value = _parse(value)
        if not ok:
            return False, value
    if not isinstance(value, dict):
        return False, value
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if not isinstance(properties, dict):
        properties = {}
    if not properties and not isinstance(extra, dict):
        return True, value
    return True, {
        key: coerce(item, properties.get(key, extra if isinstance(extra, dict) else None))
        for key, item in value.items()
    }


def _as_anything(value: Any, schema: Schema) -> tuple[bool, Any]:
    return True, value


_CONVERT: dict[str | None, Callable[[Any, Schema], tuple[bool, Any]]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "null": _as_null,
    "array": _as_array,
    "object": _as_object,
    None: _as_anything,
}

_JSON_TYPE: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}


def _parse(text: str) -> tuple[bool, Any]:
    """JSON, repaired the way :mod:`.loose_json` repairs it (single quotes, Python literals, trailing commas)."""
    try:
        return True, loads(text)
    except ValueError:
        return False, text
