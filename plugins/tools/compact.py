"""Compact a request's tool list and write it as the XML section a model reads.

A client such as Claude Code sends the same tools every turn, about 74 KB of JSON
schema. A local model gets instead a short section at the end of the system prompt:
how to call a tool (the :mod:`trimkit.convention`), then one ``<tool>`` element per
tool chosen for the model's size tier::

    <tools>
    <tool name="Read">
    Reads a file from the local filesystem.
    <parameter name="file_path" type="string" required="true">The absolute path to the file to read</parameter>
    <parameter name="limit" type="number">The number of lines to read.</parameter>
    </tool>
    </tools>

Tool and parameter names are the client's, character for character. In attribute
values ``&``, ``<`` and ``"`` are escaped as ``&amp;``, ``&lt;`` and ``&quot;`` (the
convention escapes names in ``<invoke>`` the same way; a response parser undoes it with
:func:`trimkit.convention.unquote_attr`); names of real clients never contain them.
Element text (descriptions) is written raw: only a model reads it, and entities would
cost tokens and read worse.

Types are written ``string``, ``integer``, ``number``, ``boolean``, ``object``,
``null``, ``any``, arrays as ``string[]``, unions as ``string|null``; an object
parameter with declared fields gets its shape in its description, as
``{content: string, status?: "pending"|"done"}``.

What every parameter shown has in common is said once instead of on each one
(:class:`Implied`): with only required parameters shown (as on the small tier) none is
marked ``required="true"``, and when all are strings none has ``type="string"``. Descriptions are
never cut mid-sentence, and parameter descriptions that only repeat what the model
has just read can be left out (``drop_restating_descriptions``).

The section is memoized on the tools' content, the options and ``tool_choice``:
:func:`tools_section` on a repeated tool list costs a comparison, not a rebuild.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import msgspec

from trimkit import convention
from trimkit.convention import quote_attr
from trimkit.templates import render_template
from trimkit.wire import Tool, ToolChoice

SECTION_TEMPLATE = "tools.j2"
CACHE_SIZE = 64
MAX_TYPE_DEPTH = 8
MAX_SHAPE_DEPTH = 2
MAX_SCHEMA_NODES = 2000
MAX_DEFAULT_CHARS = 60
ELLIPSIS = "…"
CUSTOM_TOOL_TYPES = (None, "custom")
CLAUSE_BREAKS = (" (", ", ", "; ", " - ")
DESCRIPTION_CLAUSE_BREAKS = (", ", "; ", ": ", " (", " - ", " and ")
MIN_CLAUSE_WORDS = 3
MAX_RESTATING_WORDS = 8
STOPWORDS = frozenset(
    "a an the to of in on for from with by at as is be it its this that into against and or".split()
)
ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx", "incl"})


# --------------------------------------------------------------------------- options


class ToolOptions(NamedTuple):
    """How to choose and compact tools; the ``tools`` stage's options, typed.

    ``allow`` and ``deny`` are names or ``fnmatch`` patterns, matched case-sensitively.
    A negative ``max_optional_parameters`` keeps every optional parameter.
    ``drop_restating_descriptions`` leaves out parameter descriptions that only repeat
    the names and the tool description (see :func:`restates`).
    """

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    max_description_chars: int = 1500
    max_parameter_description_chars: int = 200
    max_optional_parameters: int = -1
    include_examples: bool = True
    drop_restating_descriptions: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "ToolOptions":
        base = cls()
        return cls(
            allow=_names(options.get("allow", base.allow)),
            deny=_names(options.get("deny", base.deny)),
            max_description_chars=int(options.get("max_description_chars", base.max_description_chars)),
            max_parameter_description_chars=int(
                options.get("max_parameter_description_chars", base.max_parameter_description_chars)
            ),
            max_optional_parameters=int(
                options.get("max_optional_parameters", base.max_optional_parameters)
            ),
            include_examples=bool(options.get("include_examples", base.include_examples)),
            drop_restating_descriptions=bool(
                options.get("drop_restating_descriptions", base.drop_restating_descriptions)
            ),
        )


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


# --------------------------------------------------------------------------- choosing


class _Patterns:
    """A list of names and ``fnmatch`` patterns, compiled once: plain names go in a set."""

    def __init__(self, patterns: tuple[str, ...]):
        self.names = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        globs = [p for p in patterns if p not in self.names]
        self.regex = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None

    def __call__(self, name: str) -> bool:
        return name in self.names or (self.regex is not None and self.regex.match(name) is not None)


@lru_cache(maxsize=CACHE_SIZE)
def _patterns(patterns: tuple[str, ...]) -> _Patterns:
    return _Patterns(patterns)


def select_tools(tools: Sequence[Tool], options: ToolOptions, forced: str | None = None) -> list[Tool]:
    """The tools to show, in the client's order.

    A tool is kept when ``allow`` matches it and ``deny`` does not; ``forced`` (the
    tool ``tool_choice`` names) is kept regardless. Server-side tools (a ``type``
    other than ``custom``) are never kept: a local model cannot run them. When
    ``allow`` matches none of the offered tools, the allow list was written for
    another client (say, Claude Code's names against an SDK user's own tools), and
    every tool ``deny`` lets through is kept rather than leaving the model none.
    """
    allow, deny = _patterns(options.allow), _patterns(options.deny)
    offered = [tool for tool in tools if tool.type in CUSTOM_TOOL_TYPES]
    allowed = [tool for tool in offered if allow(tool.name)] or offered
    if forced is None and not options.deny:
        return allowed
    allowed_ids = {id(tool) for tool in allowed}
    return [
        tool
        for tool in offered
        if tool.name == forced or (id(tool) in allowed_ids and not deny(tool.name))
    ]


# --------------------------------------------------------------------------- text


def _boundaries(text: str) -> Iterable[int]:
    """Offsets where a sentence (or a line) ends, in order."""
    for match in re.finditer(r"[.!?](?=\s)|\n", text):
        if match.group() == "\n":
            yield match.start()
            continue
        word_start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start())) + 1
        word = text[word_start : match.start()].lstrip("([{\"'`")
        if word.lower() in ABBREVIATIONS or word.isdigit():
            continue
        yield match.end()


def _cut_words(text: str, limit: int) -> str:
    """``text`` within ``limit``: at a clause break (`` (``, ``, ``, ``; ``) when one falls in
    its second half or later, else at a word with ``…``."""
    if limit <= 1:
        return ""
    clause = max(text.rfind(mark, 0, limit + 1) for mark in CLAUSE_BREAKS)
    if clause >= limit // 2:
        return text[:clause].rstrip()
    space = text.rfind(" ", 0, limit)
    cut = text[: space if space > 0 else limit - 1].rstrip(" ,;:")
    return cut + ELLIPSIS


def cut_at_sentence(text: str, limit: int) -> str:
    """``text`` cut at the last sentence (or line) end within ``limit`` characters;
    ``""`` when even the first sentence is longer."""
    if len(text) <= limit:
        return text
    end = 0
    for offset in _boundaries(text + " "):
        if offset > limit:
            break
        end = offset
    return text[:end].rstrip()


def first_clauses(sentence: str, limit: int) -> str:
    """A sentence too long for ``limit`` ended early at a clause break (``, ``, ``; ``, ``: ``,
    `` (``, `` - ``, `` and ``) with a full stop: the longest such head of at least
    :data:`MIN_CLAUSE_WORDS` words that fits, or ``""``. Never a cut word, never ``…``."""
    window = sentence[:limit]
    cut = max(window.rfind(mark) for mark in DESCRIPTION_CLAUSE_BREAKS)
    head = sentence[:cut].rstrip(" ,;:-(") if cut > 0 else ""
    return head + "." if len(head.split()) >= MIN_CLAUSE_WORDS else ""


def _is_heading(line: str) -> bool:
    return line.startswith("#") or line.endswith(":")


def _drop_dangling_headings(lines: list[str]) -> list[str]:
    """Without trailing lines such as ``Usage:`` or ``# Notes`` that lost what they introduce."""
    while lines and _is_heading(lines[-1]):
        lines.pop()
    return lines


def _strip_examples(text: str) -> str:
    return re.sub(r"<(examples?)\b[^>]*>.*?</\1>", "", text, flags=re.S)


def _paragraphs(text: str) -> list[str]:
    """Paragraphs with their lines stripped and blank lines dropped."""
    out = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line.strip() for line in block.splitlines()]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            out.append(paragraph)
    return out


def compact_description(text: str | None, limit: int, include_examples: bool) -> str:
    """A tool description cut to ``limit``: whole paragraphs while they fit, then a sentence end.

    Nothing is cut mid-sentence. When even the first sentence is too long, it ends early
    at a clause break (:func:`first_clauses`); a later paragraph that does not reach a
    sentence end within what is left is left out.
    """
    if not text or limit <= 0:
        return ""
    if not include_examples:
        text = _strip_examples(text)
    kept: list[str] = []
    room = limit
    for paragraph in _paragraphs(text):
        if kept:
            room -= 1
        if len(paragraph) <= room:
            kept.append(paragraph)
            room -= len(paragraph)
            continue
        cut = cut_at_sentence(paragraph, room) or (first_clauses(paragraph, room) if not kept else "")
        if cut:
            kept.append(cut)
        break
    return "\n".join(_drop_dangling_headings("\n".join(kept).split("\n")))


def one_line(text: Any, limit: int) -> str:
    """A parameter description: its first sentence on one line, within ``limit``."""
    if not isinstance(text, str) or not text or limit <= 0:
        return ""
    flat = " ".join(text.split())
    for end in _boundaries(flat + " "):
        flat = flat[:end]
        break
    return flat if len(flat) <= limit else _cut_words(flat, limit)


def _stem(word: str) -> str:
    """A crude stem, enough to match "Executes" with "execute" and "files" with "file"."""
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _words(text: str) -> list[str]:
    """Words of prose or of a name (``file_path``, ``WebFetch``, ``-B``)."""
    return re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", text)


def known_words(*texts: str) -> frozenset[str]:
    """Stems of the words in ``texts``: what a model reading the tool has already been told."""
    return frozenset(_stem(w) for text in texts for w in _words(text))


def restates(description: str, known: frozenset[str]) -> bool:
    """Whether a parameter description says nothing the model has not already read.

    True for a short description (at most :data:`MAX_RESTATING_WORDS` words, letters
    only, no digits, quotes or brackets that may hold a constraint) whose every word
    but the articles and prepositions is in ``known``: "The command to execute" for
    ``command`` of a tool described as "Executes a bash command".
    """
    if not description or re.search(r"[^A-Za-z\s.,]", description):
        return False
    words = description.split()
    if len(words) > MAX_RESTATING_WORDS:
        return False
    content = {_stem(w) for w in _words(description) if w.lower() not in STOPWORDS}
    return content <= known


# --------------------------------------------------------------------------- types


class _Schemas:
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
                required = _required(obj)
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


def _properties(schema: Any) -> Mapping[str, Any]:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _required(schema: Mapping[str, Any]) -> set[str]:
    required = schema.get("required")
    return {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()


# --------------------------------------------------------------------------- compacting


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
    schemas: _Schemas,
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
    schemas = _Schemas(tool.input_schema)
    root, _ = schemas.resolve(tool.input_schema)
    required = _required(root) if isinstance(root, Mapping) else set()
    description = compact_description(tool.description, options.max_description_chars, options.include_examples)
    known = known_words(tool.name, description) if options.drop_restating_descriptions else None
    parameters: list[CompactParameter] = []
    omitted: list[str] = []
    optional_kept = 0
    for name, schema in _properties(root).items():
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


# --------------------------------------------------------------------------- XML


def _enum_attr(values: tuple[Any, ...]) -> str:
    formatted = [convention.format_value(v) for v in values]
    if any("|" in v for v in formatted):
        return msgspec.json.encode(list(values)).decode()
    return "|".join(formatted)


class Implied(NamedTuple):
    """What every parameter shown has in common, said once by the section instead of on
    each ``<parameter>``: all are required (``required="true"`` left out), all are
    strings (``type="string"`` left out)."""

    required: bool = False
    string: bool = False

    @classmethod
    def of(cls, tools: Iterable[CompactTool]) -> "Implied":
        parameters = [p for t in tools for p in t.parameters]
        if not parameters:
            return cls()
        return cls(
            required=all(p.required for p in parameters),
            string=all(p.type == "string" for p in parameters),
        )


def parameter_xml(param: CompactParameter, implied: Implied = Implied()) -> str:
    attrs = f'name="{quote_attr(param.name)}"'
    if not implied.string:
        attrs += f' type="{quote_attr(param.type)}"'
    if param.required and not implied.required:
        attrs += ' required="true"'
    if param.enum:
        attrs += f' enum="{quote_attr(_enum_attr(param.enum))}"'
    if param.default is not None:
        attrs += f' default="{quote_attr(param.default)}"'
    if not param.description:
        return f"<parameter {attrs}/>"
    return f"<parameter {attrs}>{param.description}</parameter>"


def tool_xml(tool: CompactTool, implied: Implied = Implied()) -> str:
    lines = [f'<tool name="{quote_attr(tool.name)}">']
    if tool.description:
        lines.append(tool.description)
    lines.extend(parameter_xml(p, implied) for p in tool.parameters)
    lines.append("</tool>")
    return "\n".join(lines)


def tools_xml(tools: Sequence[CompactTool], implied: Implied = Implied()) -> str:
    """The ``<tools>`` element listing every tool."""
    return "\n".join(["<tools>", *(tool_xml(t, implied) for t in tools), "</tools>"])


# --------------------------------------------------------------------------- section


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
    schemas = _Schemas(tool.input_schema)
    root, _ = schemas.resolve(tool.input_schema)
    properties = _properties(root)
    cut = len(tool.description or "") - len(compact.description)
    for param in compact.parameters:
        resolved, _ = schemas.resolve(properties.get(param.name))
        original = resolved.get("description") if isinstance(resolved, Mapping) else None
        cut += max(0, len(original) - len(param.description)) if isinstance(original, str) else 0
    return max(cut, 0)


def _kept(tools: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions) -> list[Tool]:
    if choice is not None and choice.type == "none":
        return []
    return select_tools(tools, options, choice.name if choice is not None and choice.type == "tool" else None)


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
    kept_ids = {id(t) for t in kept}
    parameter_chars = 0
    for tool, compact in zip(kept, compacted):
        if compact.omitted_parameters:
            properties = _properties(_Schemas(tool.input_schema).resolve(tool.input_schema)[0])
            parameter_chars += sum(_json_len(properties[n]) for n in compact.omitted_parameters)
    return ToolsSection(
        text=text,
        tool_names=names,
        dropped_chars=sum(_json_len(t) for t in tools if id(t) not in kept_ids),
        description_chars=sum(_description_cut(t, c) for t, c in zip(kept, compacted)),
        parameter_chars=parameter_chars,
    )


class _SectionKey:
    """A cache key: hashed on cheap facts, compared on the content the section is made of.

    The section depends on the options, ``tool_choice`` and the full content of the
    tools shown; choosing those needs only names, so it runs before the lookup. The
    hash covers names and sizes; equality compares names, descriptions and schema
    dicts themselves (in C), so a changed tool never matches an old entry, and tools
    that are not shown are not compared at all. (Only the ``dropped_chars`` figure
    of a hit is the one measured when the entry was built.)
    """

    __slots__ = ("content", "_hash")

    def __init__(self, rest: tuple[Any, ...], tools: Sequence[Tool], kept: Sequence[Tool]):
        names = tuple(t.name for t in tools)
        self.content = (rest, names, tuple((t.name, t.description, t.input_schema) for t in kept))
        self._hash = hash((rest, names, tuple(len(t.description or "") for t in kept)))

    def frozen(self) -> "_SectionKey":
        """A copy owning its schemas, so a caller editing theirs later cannot alter the key."""
        copy = object.__new__(_SectionKey)
        rest, names, kept = self.content
        owned = tuple((n, d, msgspec.json.decode(msgspec.json.encode(s))) for n, d, s in kept)
        copy.content = (rest, names, owned)
        copy._hash = self._hash
        return copy

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SectionKey) and self.content == other.content


_cache: OrderedDict[_SectionKey, ToolsSection] = OrderedDict()
_cache_lock = threading.Lock()


def tools_section(tools: Sequence[Tool], choice: ToolChoice | None, options: ToolOptions) -> ToolsSection:
    """The tools section for ``tools``, memoized (LRU, :data:`CACHE_SIZE` entries) on content."""
    choice_key = (choice.type, choice.name, choice.disable_parallel_tool_use) if choice else None
    kept = _kept(tools, choice, options)
    key = _SectionKey((options, choice_key), tools, kept)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    section = _build(tools, kept, choice, options)
    with _cache_lock:
        _cache[key.frozen()] = section
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return section


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
