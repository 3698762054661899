"""The declared tools as a reader sees them: names to match, schemas to type values by.

Every dialect ends a call the same way: a name and some arguments go in, a
:class:`~trimkit.toolcalls.items.ParsedCall` or a
:class:`~trimkit.toolcalls.items.FailedCall` comes out. The repairs that do not
depend on the dialect live here: a name that matches a declared tool except for
case (or surrounding spaces) is that tool, arguments given as a JSON string are
read, and values are typed by the tool's schema (:mod:`.coerce`).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .coerce import coerce_arguments
from .items import FailedCall, ParsedCall
from .loose_json import loads
from ..wire import Tool

NAME_KEYS = ("name", "function", "tool", "tool_name")
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input", "params")


class Catalog:
    """Declared tools, by exact name and by case-folded name."""

    def __init__(self, tools: Iterable[Tool | str] | Mapping[str, Any] | None = ()):
        self.schemas: dict[str, dict[str, Any] | None] = {}
        if isinstance(tools, Mapping):
            self.schemas = {str(name): schema for name, schema in tools.items()}
        else:
            for tool in tools or ():
                if isinstance(tool, str):
                    self.schemas[tool] = None
                else:
                    self.schemas[tool.name] = tool.input_schema
        folded: dict[str, str | None] = {}
        for name in self.schemas:
            key = name.casefold()
            folded[key] = None if key in folded else name
        self._folded = folded

    def __bool__(self) -> bool:
        return bool(self.schemas)

    def __contains__(self, name: object) -> bool:
        return name in self.schemas

    @property
    def names(self) -> list[str]:
        return list(self.schemas)

    def resolve(self, name: str) -> str | None:
        """The declared name ``name`` means: itself, or the one tool it matches ignoring case and spaces."""
        if name in self.schemas:
            return name
        stripped = name.strip()
        if stripped in self.schemas:
            return stripped
        return self._folded.get(stripped.casefold())

    def undeclared(self, name: str, raw: str) -> FailedCall:
        declared = ", ".join(self.schemas) or "none"
        return FailedCall(name, raw, "undeclared", f"no tool named {name!r}; declared tools: {declared}")

    def call(self, name: str, arguments: Any, raw: str) -> ParsedCall | FailedCall:
        """A call to ``name`` with ``arguments`` (a dict, a JSON string, or None for none)."""
        declared = self.resolve(name)
        if declared is None:
            return self.undeclared(name, raw)
        if arguments is None:
            arguments = {}
        elif isinstance(arguments, str):
            if not arguments.strip():
                arguments = {}
            else:
                try:
                    arguments = loads(arguments)
                except ValueError as exc:
                    return FailedCall(name, raw, "unreadable", f"the arguments of {declared} are not JSON: {exc}")
        if not isinstance(arguments, dict):
            kind = type(arguments).__name__
            return FailedCall(name, raw, "unreadable", f"the arguments of {declared} must be an object, not {kind}")
        return ParsedCall(declared, coerce_arguments(arguments, self.schemas[declared]), raw)

    def calls_in(self, value: Any, raw: str) -> list[ParsedCall | FailedCall] | None:
        """Calls written as JSON: ``{"name": …, "arguments": …}``, or a list of them.

        None when ``value`` does not have that shape at all (it is then not a call).
        In a list, a failed element's ``raw`` is that element written back as JSON,
        since only the whole list's text is known.
        """
        if isinstance(value, list):
            if not value or not all(_call_shaped(item) for item in value):
                return None
            if len(value) == 1:
                return [self._one(value[0], raw)]
            return [self._one(item, "") for item in value]
        if not _call_shaped(value):
            return None
        return [self._one(value, raw)]

    def _one(self, value: dict[str, Any], raw: str) -> ParsedCall | FailedCall:
        value = _unwrap(value)
        name = next(value[key] for key in NAME_KEYS if isinstance(value.get(key), str))
        arguments = next((value[key] for key in ARGUMENT_KEYS if key in value), None)
        return self.call(name, arguments, raw or _json(value))


def _unwrap(value: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``{"type": "function", "function": {"name": …, "arguments": …}}`` nesting."""
    inner = value.get("function")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return inner
    return value


def _call_shaped(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    value = _unwrap(value)
    if not any(isinstance(value.get(key), str) for key in NAME_KEYS):
        return False
    return set(value) <= {*NAME_KEYS, *ARGUMENT_KEYS, "id", "type", "call_id"}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
