"""The section the tools stage appends to the system prompt, and its cache.

The section says how to call a tool (the :mod:`trimkit.convention`, through the
``prompts/tools.j2`` template), lists the tools chosen (:mod:`.markup`) and turns
``tool_choice`` into a sentence. It is memoized on the tools' content, the options
and ``tool_choice``: :func:`tools_section` on a repeated tool list costs a
comparison, not a rebuild.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import msgspec

from trimkit import convention
from trimkit.memo import SizedLRU
from trimkit.templates import render_template
from trimkit.wire import Tool, ToolChoice
from .choose import kept_tools
from .compact import CompactTool, compact_tool
from .markup import Implied, tools_xml
from .options import ToolOptions
from .schemas import Schemas, properties_of

SECTION_TEMPLATE = "tools.j2"
CACHE_SIZE = 64
CACHE_CHARS = 32 * 1024 * 1024
"""Characters of tools (names, descriptions, schemas' JSON) and sections the cache holds at most:
Claude Code's 74 KB of tools fit hundreds of times; a list over a quarter of it is not kept."""


def choice_sentence(choice: ToolChoice | None, offered: Sequence[str]) -> str:
    """The instruction ``tool_choice`` adds; a named tool that is not offered counts as ``any``."""
    if choice is not None and choice.type == "none":
        return "Do not call any tool in this reply: answer in plain text."
    if choice is None or choice.type == "auto" or not offered:
        return ""
    if choice.type == "tool" and choice.name in offered:
        return f"Your reply must call the {choice.name} tool."
    return "Your reply must call at least one of the tools above."


class ToolsSection(NamedTuple):
    """The text to append to the system prompt and what producing it took out.

    ``dropped_chars`` is the JSON size of the tools not shown; ``description_chars``
    the characters cut from the shown tools' descriptions and parameter descriptions;
    ``parameter_chars`` the JSON size of the optional parameters left out.
    """

    text: str
    tool_names: tuple[str, ...]
    dropped_chars: int
    description_chars: int
    parameter_chars: int


def _json_len(value: Any) -> int:
    return len(msgspec.json.encode(value))


def _description_cut(tool: Tool, compact: CompactTool) -> int:
    schemas = Schemas(tool.input_schema)
    root, _ = schemas.resolve(tool.input_schema)
    properties = properties_of(root)
    cut = len(tool.description or "") - len(compact.description)
    for param in compact.parameters:
        resolved, _ = schemas.resolve(properties.get(param.name))
        original = resolved.get("description") if isinstance(resolved, Mapping) else None
        cut += max(0, len(original) - len(param.description)) if isinstance(original, str) else 0
    return max(cut, 0)


def _build(
    tools: Sequence[Tool], kept: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions
) -> ToolsSection:
    compacted = [compact_tool(t, options) for t in kept]
    names = tuple(t.name for t in kept)
    implied = Implied.of(compacted)
    text = render_template(
        SECTION_TEMPLATE,
        tools=tools_xml(compacted, implied) if compacted else "",
        implied=implied,
        example=convention.EXAMPLE_CALL,
        parallel=not (choice is not None and choice.disable_parallel_tool_use),
        choice=choice_sentence(choice, names),
    ).strip()
    return ToolsSection(text, names, *removed_chars(tools, kept, compacted))


def removed_chars(
    tools: Sequence[Tool], kept: Sequence[Tool], compacted: Sequence[CompactTool]
) -> tuple[int, int, int]:
    """What showing ``compacted`` (made from ``kept``) instead of ``tools`` took out, in characters:
    the tools dropped, the descriptions cut and the optional parameters left out (see :class:`ToolsSection`)."""
    kept_ids = {id(t) for t in kept}
    parameter_chars = 0
    for tool, compact in zip(kept, compacted):
        if compact.omitted_parameters:
            properties = properties_of(Schemas(tool.input_schema).resolve(tool.input_schema)[0])
            parameter_chars += sum(_json_len(properties[n]) for n in compact.omitted_parameters)
    dropped = sum(_json_len(t) for t in tools if id(t) not in kept_ids)
    return dropped, sum(_description_cut(t, c) for t, c in zip(kept, compacted)), parameter_chars


class _SectionKey:
    """A cache key: hashed on cheap facts, compared on the content the section is made of.

    The section depends on the options, ``tool_choice`` and the full content of the
    tools shown; choosing those needs only names, so it runs before the lookup. The
    hash covers names and sizes; equality compares names, descriptions and schema
    dicts themselves (in C), so a changed tool never matches an old entry, and tools
    that are not shown are not compared at all. (Only the ``dropped_chars`` figure
    of a hit is the one measured when the entry was built.)
    """

    __slots__ = ("content", "_hash", "chars")

    def __init__(self, rest: tuple[Any, ...], tools: Sequence[Tool], kept: Sequence[Tool]):
        names = tuple(t.name for t in tools)
        self.content = (rest, names, tuple((t.name, t.description, t.input_schema) for t in kept))
        self._hash = hash((rest, names, tuple(len(t.description or "") for t in kept)))

    def frozen(self) -> "_SectionKey":
        """A copy owning its schemas, so a caller editing theirs later cannot alter the key."""
        copy = object.__new__(_SectionKey)
        rest, names, kept = self.content
        encoded = [(n, d, msgspec.json.encode(s)) for n, d, s in kept]
        copy.content = (rest, names, tuple((n, d, msgspec.json.decode(e)) for n, d, e in encoded))
        copy._hash = self._hash
        copy.chars = sum(len(n) + len(d or "") + len(e) for n, d, e in encoded) + sum(map(len, names))
        return copy

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SectionKey) and self.content == other.content


_cache = SizedLRU(CACHE_CHARS, max_entries=CACHE_SIZE)


def tools_section(tools: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions) -> ToolsSection:
    """The tools section for ``tools``, memoized on content (LRU: :data:`CACHE_SIZE` entries,
    :data:`CACHE_CHARS` characters of tools and sections at most)."""
    choice_key = (choice.type, choice.name, choice.disable_parallel_tool_use) if choice else None
    kept = kept_tools(tools, choice, options)
    key = _SectionKey((options, choice_key), tools, kept)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    section = _build(tools, kept, choice, options)
    frozen = key.frozen()
    _cache.put(frozen, section, frozen.chars + len(section.text))
    return section


def clear_cache() -> None:
    _cache.clear()
