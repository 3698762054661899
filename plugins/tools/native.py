"""The chosen tools, compacted, as JSON Schema for a chat template that renders tools itself.

When the model's template writes tool definitions in the model's own format (Qwen3-Coder's
``<function>`` XML, gpt-oss's TypeScript namespace, Gemma 4's declarations, …), the tools
stage keeps ``tools`` in the request instead of teaching trimkit's XML, but the same
tools the XML section would show, cut the same way: the description and each
parameter's description as :func:`~trimkit.plugins.tools.compact.compact_tool` cuts
them, optional parameters beyond the tier's limit left out. The parameters keep their
JSON Schema (types, enums, items, defaults) so the template can write them its way;
descriptions deeper inside a parameter, titles and ``$schema`` go, as the XML section
leaves them out too.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

from trimkit.wire import Tool, ToolChoice
from .choose import kept_tools
from .compact import CompactTool, compact_tool
from .options import ToolOptions
from .schemas import Schemas, properties_of
from .section import choice_sentence, removed_chars

NOISE_KEYS = frozenset({"title", "$schema", "additionalProperties", "examples", "description"})


class NativeTools(NamedTuple):
    """The tools to hand the template and what compacting them took out (as :class:`ToolsSection`)."""

    tools: tuple[Tool, ...]
    choice: str
    dropped_chars: int
    description_chars: int
    parameter_chars: int


def _slim(schema: Any, depth: int = 0) -> Any:
    """A parameter's schema without the keys only a person reads; descriptions kept at the top only."""
    if isinstance(schema, list):
        return [_slim(item, depth + 1) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {}
    for key, value in schema.items():
        if key in NOISE_KEYS and not (key == "description" and depth == 0):
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _slim(field, depth + 1) for name, field in value.items()}
        else:
            out[key] = _slim(value, depth + 1) if isinstance(value, (Mapping, list)) else value
    return out


def native_tool(tool: Tool, compact: CompactTool) -> Tool:
    """``tool`` with the compacted description and only the compacted parameters."""
    schemas = Schemas(tool.input_schema)
    root, _ = schemas.resolve(tool.input_schema)
    properties = properties_of(root)
    shown: dict[str, Any] = {}
    for param in compact.parameters:
        resolved, _ = schemas.resolve(properties.get(param.name))
        schema = dict(_slim(resolved)) if isinstance(resolved, Mapping) else {}
        schema.pop("description", None)
        if param.description:
            schema["description"] = param.description
        shown[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": shown}
    required = [p.name for p in compact.parameters if p.required]
    if required:
        parameters["required"] = required
    return Tool(name=tool.name, description=compact.description, input_schema=parameters)


def native_tools(tools: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions) -> NativeTools:
    kept = kept_tools(tools, choice, options)
    compacted = [compact_tool(t, options) for t in kept]
    return NativeTools(
        tuple(native_tool(t, c) for t, c in zip(kept, compacted)),
        choice_sentence(choice, tuple(t.name for t in kept)),
        *removed_chars(tools, kept, compacted),
    )
