"""One tool made short: its description and parameters, names untouched.

A tool keeps its required parameters and, per tier, some or all of its optional
ones. Each parameter gets its type (:mod:`.schemas`), its first sentence
(:mod:`.prose`), its enum values and a short default; see :func:`compact_tool`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from trimkit import convention
from trimkit.wire import Tool
from .options import ToolOptions
from .prose import compact_description, known_words, one_line, restates
from .schemas import Schemas, properties_of, required_of

MAX_DEFAULT_CHARS = 60


class CompactParameter(NamedTuple):
    name: str
    type: str
    required: bool
    description: str
    enum: tuple[Any, ...] = ()
    default: str | None = None


class CompactTool(NamedTuple):
    name: str
    description: str
    parameters: tuple[CompactParameter, ...]
    omitted_parameters: tuple[str, ...] = ()


def _add_sentence(text: str, sentence: str) -> str:
    if not text:
        return sentence
    return f"{text} {sentence}" if text[-1] in ".!?…" else f"{text}. {sentence}"


def _parameter(
    name: str,
    schema: Any,
    required: bool,
    schemas: Schemas,
    options: ToolOptions,
    known: frozenset[str] | None,
) -> CompactParameter:
    resolved, seen = schemas.resolve(schema)
    if not isinstance(resolved, Mapping):
        resolved = {}
    type_name = schemas.type_name(resolved, seen)
    text = one_line(resolved.get("description"), options.max_parameter_description_chars)
    if known is not None and restates(text, known | known_words(name)):
        text = ""
    obj, inner = schemas.object_schema(resolved, seen)
    fields = schemas.shape(obj, inner) if obj is not None else "any"
    if fields != "any":
        text = _add_sentence(text, f"Fields: {fields}")
    if options.include_examples and isinstance(resolved.get("examples"), list) and resolved["examples"]:
        text = _add_sentence(text, f"Example: {convention.format_value(resolved['examples'][0])}")
    enum = resolved.get("enum")
    if not isinstance(enum, list):
        items, _ = schemas.resolve(resolved.get("items"), seen)
        enum = items.get("enum") if isinstance(items, Mapping) else None
    default = None
    if "default" in resolved:
        formatted = convention.format_value(resolved["default"])
        default = formatted if len(formatted) <= MAX_DEFAULT_CHARS else None
    return CompactParameter(
        name=name,
        type=type_name,
        required=required,
        description=text,
        enum=tuple(enum) if isinstance(enum, list) else (),
        default=default,
    )


def compact_tool(tool: Tool, options: ToolOptions) -> CompactTool:
    """The tool's short description and parameter list, names untouched."""
    schemas = Schemas(tool.input_schema)
    root, _ = schemas.resolve(tool.input_schema)
    required = required_of(root) if isinstance(root, Mapping) else set()
    description = compact_description(tool.description, options.max_description_chars, options.include_examples)
    known = known_words(tool.name, description) if options.drop_restating_descriptions else None
    parameters: list[CompactParameter] = []
    omitted: list[str] = []
    optional_kept = 0
    for name, schema in properties_of(root).items():
        if name not in required:
            if 0 <= options.max_optional_parameters <= optional_kept:
                omitted.append(name)
                continue
            optional_kept += 1
        parameters.append(_parameter(name, schema, name in required, schemas, options, known))
    return CompactTool(
        name=tool.name,
        description=description,
        parameters=tuple(parameters),
        omitted_parameters=tuple(omitted),
    )
