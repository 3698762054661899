"""The grammar of a tool-call block in each dialect, keyed by the dialect's name.

A dialect's entry says what opens a block of calls and gives the Lark rules for
everything after that opener: one call (or several, where the dialect allows
parallel calls), each to a tool that was offered, with arguments that fit that
tool's ``input_schema``, then the closing markup. The names match the reading
side's dialects (``trimkit.toolcalls``), so a request rendered in a dialect is
constrained in the same one.

Layout follows what the renderer writes (:mod:`trimkit.convention` for ``xml``):
a model sees its earlier calls in exactly this form, and a constrained model
writes its new ones the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .. import convention
from .values import Schema, UnsupportedSchema, avoiding, json_value, lark_regex, raw_text, string_alternatives

PARAM_PREFIX = "antml:"
"""The tag prefix the XML reader also accepts; values may not contain its closers either."""


@dataclass(frozen=True)
class ToolSchema:
    """A tool as the grammar needs it: the client's exact name and its input schema."""

    name: str
    schema: Schema


@dataclass(frozen=True)
class CallGrammar:
    """How one dialect writes a block of calls.

    ``opener`` is the text that starts a block; free text may not contain it, and
    its first appearance switches to :attr:`rules`. ``rules(tools, parallel)``
    returns Lark rules defining ``calls``: what follows the opener up to the end
    of the block.
    """

    name: str
    opener: str
    rules: Callable[[Sequence[ToolSchema], bool], str]


def literal(text: str) -> str:
    """A Lark string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


def properties(schema: Schema) -> tuple[dict[str, Any], set[str]]:
    """The argument names (in the schema's order) with their schemas, and the required ones.

    A root that is not a plain object schema (``anyOf`` at the top, ``$ref``) is
    not supported: the caller falls back to generating without a grammar.
    """
    if not isinstance(schema, dict):
        raise UnsupportedSchema("input_schema is not an object")
    for key in ("anyOf", "oneOf", "allOf", "$ref", "if"):
        if key in schema:
            raise UnsupportedSchema(f"input_schema with {key} at its root")
    props = schema.get("properties") or {}
    if not isinstance(props, dict):
        raise UnsupportedSchema("input_schema properties is not an object")
    required = schema.get("required") or []
    missing = [name for name in required if name not in props]
    if missing:
        props = {**props, **{name: {} for name in missing}}
    return props, set(required)


def with_definitions(sub: Any, root: Schema) -> Any:
    """A property's schema, carrying the root's ``$defs`` so its references still resolve."""
    if not isinstance(sub, dict):
        return sub
    for key in ("$defs", "definitions"):
        if key in root and key not in sub:
            sub = {**sub, key: root[key]}
    return sub


# --------------------------------------------------------------------------- xml


XML_VALUE_END = "</parameter>"
XML_CLOSERS = (XML_VALUE_END, "</" + PARAM_PREFIX + "parameter>")


def xml_value(rule: str, schema: Any, root: Schema) -> list[str]:
    """Rules for ``rule``: one argument's value and its ``</parameter>``.

    A value whose schema allows a string is raw text (the convention writes strings
    raw, and the reader reads text for a string first); any other value is JSON.
    """
    strings = string_alternatives(schema)
    if not strings:
        return [f"{rule}: {json_value(with_definitions(schema, root), XML_CLOSERS)} {literal(XML_VALUE_END)}"]
    literals: list[str] = []
    free: list[str] = []
    for alt in strings:
        values = alt.get("enum") if isinstance(alt.get("enum"), list) else [alt["const"]] if "const" in alt else None
        if values is not None:
            literals += [literal(v + XML_VALUE_END) for v in values if isinstance(v, str)]
            continue
        shape = raw_text(alt, XML_CLOSERS)
        free.append(shape)
    if any(shape is None for shape in free):  # some alternative takes any text
        free = [None]
    rules, options = [], list(dict.fromkeys(literals))
    for n, shape in enumerate(dict.fromkeys(free)):
        name = f"{rule.upper()}_{n}"
        body = lark_regex(avoiding(XML_CLOSERS))
        if shape is not None:
            body = f"({body} & {shape})"
        rules.append(f"{name}: {body} {literal(XML_VALUE_END)}")
        lazy = f"{rule}_{n}"
        rules.append(f"{lazy}[lazy]: {name}")
        options.append(lazy)
    if not options:
        raise UnsupportedSchema("a string value with no allowed text")
    return [f"{rule}: {' | '.join(options)}", *rules]


def xml_rules(tools: Sequence[ToolSchema], parallel: bool) -> str:
    """``calls`` for trimkit's XML convention: ``<invoke>`` elements, then ``</function_calls>``."""
    lines: list[str] = []
    names = []
    for i, tool in enumerate(tools):
        props, required = properties(tool.schema)
        params = []
        for k, (name, sub) in enumerate(props.items()):
            rule = f"t{i}_a{k}"
            opening = f'<parameter name="{convention.quote_attr(name)}">'
            lines += xml_value(f"{rule}_v", sub, tool.schema)
            lines.append(f"{rule}: {literal(opening)} {rule}_v \"\\n\"")
            params.append(rule if name in required else f"{rule}?")
        head = literal(f'{convention.quote_attr(tool.name)}">\n')
        lines.append(f"t{i}: {head} {' '.join(params)} {literal('</invoke>' + chr(10))}")
        names.append(f"t{i}")
    if not names:
        raise UnsupportedSchema("no tools to call")
    invoke = literal('<invoke name="')
    lines.append(f"invoke: {invoke} ({' | '.join(names)})")
    # Each literal ends where the next may begin with something else: the engine's
    # lexer does not back up, so "\n" then "\n</function_calls>" would never end a call.
    lines.append(f'calls: "\\n" invoke{"+" if parallel else ""} {literal(convention.CALLS_CLOSE)}')
    return "\n".join(lines)


XML = CallGrammar(name="xml", opener=convention.CALLS_OPEN, rules=xml_rules)


# --------------------------------------------------------------------------- hermes


TOOL_CALL, TOOL_CALL_END = "<tool_call>", "</tool_call>"


def hermes_rules(tools: Sequence[ToolSchema], parallel: bool) -> str:
    """``calls`` for Hermes-style JSON (Qwen2.5, Qwen3): ``{"name": …, "arguments": {…}}`` per ``<tool_call>``."""
    if not tools:
        raise UnsupportedSchema("no tools to call")
    options = []
    for tool in tools:
        properties(tool.schema)  # the same root shapes as the other dialects
        options.append({
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": tool.schema},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    body = json_value({"anyOf": options}, (TOOL_CALL_END,))
    more = f" ({literal(chr(10) + TOOL_CALL + chr(10))} hcall {literal(chr(10) + TOOL_CALL_END)})*" if parallel else ""
    return f'hcall: {body}\ncalls: "\\n" hcall {literal(chr(10) + TOOL_CALL_END)}{more}'


HERMES = CallGrammar(name="hermes", opener=TOOL_CALL, rules=hermes_rules)


# --------------------------------------------------------------------------- qwen3_coder


QWEN_VALUE_END = "\n</parameter>"


def qwen_value(rule: str, schema: Any, root: Schema) -> list[str]:
    """Rules for one Qwen3-Coder argument value, its own line, then ``</parameter>``."""
    closers = ("</parameter>", "</function>", TOOL_CALL_END)
    strings = string_alternatives(schema)
    if not strings:
        return [f"{rule}: {json_value(with_definitions(schema, root), closers)} {literal(QWEN_VALUE_END)}"]
    literals = [literal(v + QWEN_VALUE_END) for alt in strings for v in alt.get("enum", [alt.get("const")])
                if isinstance(v, str)]
    shapes = [raw_text(alt, closers) for alt in strings if "enum" not in alt and "const" not in alt]
    rules, options = [], list(dict.fromkeys(literals))
    for n, shape in enumerate(dict.fromkeys([None] if None in shapes else shapes)):
        body = lark_regex(avoiding(closers))
        if shape is not None:
            body = f"({body} & {shape})"
        rules += [f"{rule.upper()}_{n}: {body} {literal(QWEN_VALUE_END)}", f"{rule}_{n}[lazy]: {rule.upper()}_{n}"]
        options.append(f"{rule}_{n}")
    if not options:
        raise UnsupportedSchema("a string value with no allowed text")
    return [f"{rule}: {' | '.join(options)}", *rules]


def qwen3_coder_rules(tools: Sequence[ToolSchema], parallel: bool) -> str:
    """``calls`` for Qwen3-Coder: ``<function=X>``, one ``<parameter=k>`` per argument, each value on its own lines."""
    lines, names = [], []
    for i, tool in enumerate(tools):
        props, required = properties(tool.schema)
        params = []
        for k, (name, sub) in enumerate(props.items()):
            rule = f"q{i}_a{k}"
            lines += qwen_value(f"{rule}_v", sub, tool.schema)
            lines.append(f"{rule}: {literal(f'<parameter={name}>' + chr(10))} {rule}_v \"\\n\"")
            params.append(rule if name in required else f"{rule}?")
        lines.append(f"q{i}: {literal(tool.name + '>' + chr(10))} {' '.join(params)} {literal('</function>' + chr(10))}")
        names.append(f"q{i}")
    if not names:
        raise UnsupportedSchema("no tools to call")
    lines.append(f"qcall: {literal('<function=')} ({' | '.join(names)}) {literal(TOOL_CALL_END)}")
    more = f" ({literal(chr(10) + TOOL_CALL + chr(10))} qcall)*" if parallel else ""
    lines.append(f'calls: "\\n" qcall{more}')
    return "\n".join(lines)


QWEN3_CODER = CallGrammar(name="qwen3_coder", opener=TOOL_CALL, rules=qwen3_coder_rules)


CALL_GRAMMARS: dict[str, CallGrammar] = {grammar.name: grammar for grammar in (XML, HERMES, QWEN3_CODER)}
"""Every dialect whose calls can be constrained, by the name the reading side uses."""
