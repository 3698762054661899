"""Reading a tool's JSON schema as the short types a model reads.

Types are written ``string``, ``integer``, ``number``, ``boolean``, ``object``,
``null``, ``any``, arrays as ``string[]``, unions as ``string|null``; an object
parameter with declared fields gets its shape, as
``{content: string, status?: "pending"|"done"}``. Local ``$ref`` pointers are
followed, cycles and fan-out are bounded, and whatever cannot be read is ``any``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import msgspec

MAX_TYPE_DEPTH = 8
MAX_SHAPE_DEPTH = 2
MAX_SCHEMA_NODES = 2000


class Schemas:
    """Describes a tool's schemas: resolves local ``$ref`` pointers, guarding against cycles,
    and gives up (``any``) after :data:`MAX_SCHEMA_NODES` visits per tool, so that references
    that fan out cannot make a description cost exponential time."""

    def __init__(self, root: Mapping[str, Any]):
        self.root = root
        self.visits = 0

    def _exhausted(self) -> bool:
        self.visits += 1
        return self.visits > MAX_SCHEMA_NODES

    def resolve(self, schema: Any, seen: frozenset[str] = frozenset()) -> tuple[Any, frozenset[str]]:
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or not ref.startswith("#"):
                return None, seen
            seen = seen | {ref}
            target: Any = self.root
            for part in ref[1:].split("/")[1:]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    return None, seen
                target = target[part]
            schema = target
        return schema, seen

    def type_name(self, schema: Any, seen: frozenset[str] = frozenset(), depth: int = 0) -> str:
        """A short type: ``string``, ``integer[]``, ``string|null``, ``any``..."""
        if self._exhausted() or depth > MAX_TYPE_DEPTH:
            return "any"
        schema, seen = self.resolve(schema, seen)
        if not isinstance(schema, Mapping):
            return "any"
        declared = schema.get("type")
        if isinstance(declared, list):
            name = _union(
                self._single(schema, t, seen, depth) if isinstance(t, str) else "any" for t in declared
            )
        elif isinstance(declared, str):
            name = self._single(schema, declared, seen, depth)
        elif isinstance(schema.get("anyOf") or schema.get("oneOf"), list):
            members = schema.get("anyOf") or schema.get("oneOf")
            name = _union(self.type_name(m, seen, depth + 1) for m in members)
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            name = self.type_name(schema["allOf"][0], seen, depth + 1)
        elif "properties" in schema or isinstance(schema.get("allOf"), list):
            name = "object"
        elif "items" in schema:
            name = self._single(schema, "array", seen, depth)
        elif "const" in schema:
            name = _json_type(schema["const"])
        elif isinstance(schema.get("enum"), list) and schema["enum"]:
            name = _union(_json_type(v) for v in schema["enum"])
        else:
            name = "any"
        if schema.get("nullable") is True and name != "any":
            name = _union([name, "null"])
        return name

    def _single(self, schema: Mapping[str, Any], declared: str, seen: frozenset[str], depth: int) -> str:
        if declared != "array":
            return declared
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return "array"
        item = self.type_name(items, seen, depth + 1)
        return f"({item})[]" if "|" in item else f"{item}[]"

    def object_schema(
        self, schema: Any, seen: frozenset[str] = frozenset()
    ) -> tuple[Mapping[str, Any] | None, frozenset[str]]:
        """The object schema with ``properties`` behind a parameter, or its array's items."""
        schema, seen = self.resolve(schema, seen)
        if isinstance(schema, Mapping) and isinstance(schema.get("items"), Mapping):
            schema, seen = self.resolve(schema["items"], seen)
        if isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping):
            return schema, seen
        return None, seen

    def shape(self, schema: Any, seen: frozenset[str] = frozenset(), depth: int = 0) -> str:
        """An inline type for a nested value: ``{name: string, count?: integer}``, enums as literals."""
        if self._exhausted():
            return "any"
        schema, seen = self.resolve(schema, seen)
        if not isinstance(schema, Mapping):
            return "any"
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return "|".join(msgspec.json.encode(v).decode() for v in enum)
        if depth < MAX_SHAPE_DEPTH:
            obj, inner = self.object_schema(schema, seen)
            if obj is not None:
                required = required_of(obj)
                fields = ", ".join(
                    f"{key}{'' if key in required else '?'}: {self.shape(sub, inner, depth + 1)}"
                    for key, sub in obj["properties"].items()
                )
                return "{" + fields + "}" + ("[]" if obj is not schema else "")
        return self.type_name(schema, seen)


def _union(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    if not unique or "any" in unique:
        return "any"
    return "|".join(unique)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def properties_of(schema: Any) -> Mapping[str, Any]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def required_of(schema: Mapping[str, Any]) -> set[str]:
    required = schema.get("required")
    return {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
