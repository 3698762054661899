"""Gemma 4: ``<|tool_call>call:X{k:<|"|>text<|"|>,n:1}<tool_call|>`` per call.

Gemma writes arguments in its own syntax, not JSON: bare keys (sorted, as the
template lists them), strings between ``<|"|>`` marks with no escapes, numbers,
booleans and ``null`` as in JSON, lists and objects in the same syntax. So the
values are compiled here from the schema (:class:`GemmaValues`) rather than
handed to the engine's JSON Schema support. A string may hold anything but
``<|"|>`` itself. The model may reason first in ``<|channel>thought…<channel|>``;
after its calls it ends the turn with ``<|tool_response>``, an end-of-turn token.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from ..values import ANNOTATIONS, UnsupportedSchema, avoiding, lark_regex, raw_text
from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, literal, need_tools, properties

OPEN, CLOSE, QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"

BARE_KEY = re.compile(r"-*[A-Za-z_$][\w$.\-]*")
"""Keys the reader takes without quotes (flags such as Grep's ``-A`` too, as the template writes them);
any other key is written between ``<|"|>`` marks."""

NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
UNSUPPORTED = (
    "not", "if", "then", "else", "contains", "prefixItems", "uniqueItems", "patternProperties", "propertyNames",
    "dependentRequired", "dependentSchemas", "dependencies", "minProperties", "maxProperties",
    "unevaluatedProperties", "unevaluatedItems",
)
"""Keywords that restrict values in ways these rules do not write: such a schema falls back."""

TERMINALS = [
    'GINT: /-?(0|[1-9][0-9]*)/',
    'GNUM: /-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]{1,2})?/',
    'GKEY: /-*[A-Za-z_$][A-Za-z0-9_$.\\-]*/',
]


class GemmaValues:
    """Lark rules for values that fit a schema, in Gemma's syntax; one instance per grammar.

    :meth:`value` returns the name of a rule for a schema and adds the rules it
    needs to :attr:`lines`. References (``$ref`` into the tool's ``$defs``) become
    rules of their own, so recursive schemas work.
    """

    def __init__(self, marks: Marks):
        self.marks = marks
        self.q = marks(QUOTE)
        self.lines: list[str] = list(TERMINALS)
        self.count = 0
        self.refs: dict[tuple[int, str], str] = {}
        self.any_rule: str | None = None

    def rule(self, body: str) -> str:
        name = f"gv{self.count}"
        self.count += 1
        self.lines.append(f"{name}: {body}")
        return name

    def terminal(self, body: str) -> str:
        name = f"GV{self.count}"
        self.count += 1
        self.lines.append(f"{name}: {body}")
        return name

    # ------------------------------------------------------------------ schemas

    def value(self, schema: Any, root: dict) -> str:
        if schema is False:
            raise UnsupportedSchema("a schema that allows nothing")
        if not isinstance(schema, dict):
            return self.any()
        for key in UNSUPPORTED:
            if key in schema and not (key == "uniqueItems" and schema[key] is False):
                raise UnsupportedSchema(f"{key} in a Gemma argument")
        if "$ref" in schema:
            return self.ref(schema["$ref"], root)
        if "const" in schema:
            return self.rule(self.constant(schema["const"]))
        if "enum" in schema:
            if not isinstance(schema["enum"], list) or not schema["enum"]:
                raise UnsupportedSchema("an empty enum")
            return self.rule(" | ".join(self.constant(v) for v in schema["enum"]))
        all_of = schema.get("allOf")
        if all_of is not None:
            if not isinstance(all_of, list) or len(all_of) != 1 or not isinstance(all_of[0], dict):
                raise UnsupportedSchema("allOf of more than one schema")
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.value({**rest, **all_of[0]}, root)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options is not None:
            if not isinstance(options, list) or not options:
                raise UnsupportedSchema("an empty anyOf")
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf") and k not in ANNOTATIONS}
            return self.rule(" | ".join(self.value({**rest, **o} if isinstance(o, dict) else o, root) for o in options))
        kind = schema.get("type")
        if isinstance(kind, list):
            return self.rule(" | ".join(self.value({**schema, "type": k}, root) for k in kind))
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema or "required" in schema:
                kind = "object"
            elif "items" in schema or "minItems" in schema or "maxItems" in schema:
                kind = "array"
            else:
                return self.any()
        if kind == "string":
            return self.string(schema)
        if kind in ("integer", "number"):
            return self.number(schema, kind)
        if kind == "boolean":
            return self.rule('"true" | "false"')
        if kind == "null":
            return self.rule('"null"')
        if kind == "array":
            return self.array(schema, root)
        if kind == "object":
            return self.object(schema, root)
        raise UnsupportedSchema(f"type {kind!r}")

    def ref(self, ref: Any, root: dict) -> str:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise UnsupportedSchema(f"$ref {ref!r} outside the schema")
        key = (id(root), ref)
        if key in self.refs:
            return self.refs[key]
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise UnsupportedSchema(f"$ref {ref!r} resolves nowhere")
            target = target[part]
        name = f"gv{self.count}"
        self.count += 1
        self.refs[key] = name
        self.lines.append(f"{name}: {self.value(target, root)}")
        return name

    def constant(self, value: Any) -> str:
        """One value as Gemma writes it, as a sequence of literals and quote tokens."""
        if isinstance(value, str):
            return f"{self.q} {literal(value)} {self.q}" if value else f"{self.q} {self.q}"
        if isinstance(value, bool):
            return literal("true" if value else "false")
        if value is None:
            return literal("null")
        if isinstance(value, (int, float)):
            return literal(json.dumps(value))
        if isinstance(value, list):
            inner = ' "," '.join(self.constant(v) for v in value)
            return f'"[" {inner} "]"' if value else '"[" "]"'
        if isinstance(value, dict):
            pairs = ' "," '.join(f"{self.key(k)} {self.constant(v)}" for k, v in sorted(value.items()))
            return f'"{{" {pairs} "}}"' if value else '"{" "}"'
        raise UnsupportedSchema(f"a constant of type {type(value).__name__}")

    def key(self, name: str) -> str:
        if BARE_KEY.fullmatch(name):
            return literal(name + ":")
        return f'{self.q} {literal(name)} {self.q} ":"'

    def string(self, schema: dict) -> str:
        shape = raw_text(schema, (QUOTE,))
        body = lark_regex(avoiding([QUOTE]))
        if shape is not None:
            body = f"({body} & {shape})"
        if self.marks.special(QUOTE):
            return self.rule(f"{self.q} {self.terminal(body)} {self.q}")
        # a text quote: the whole string is one lazy lexeme, ended by the first closing quote
        text = self.terminal(f"{literal(QUOTE)} {body} {literal(QUOTE)}")
        name = f"gv{self.count}"
        self.count += 1
        self.lines.append(f"{name}[lazy]: {text}")
        return name

    def number(self, schema: dict, kind: str) -> str:
        bounds = {k: schema[k] for k in NUMBER_KEYS if k in schema}
        if not bounds:
            return self.rule("GINT" if kind == "integer" else "GNUM")
        return self.rule("%json " + json.dumps({"type": kind, **bounds}))

    def array(self, schema: dict, root: dict) -> str:
        items = schema.get("items", {})
        if isinstance(items, list):
            raise UnsupportedSchema("a tuple of items")
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        if not isinstance(low, int) or (high is not None and not isinstance(high, int)):
            raise UnsupportedSchema("minItems or maxItems not an integer")
        if high is not None and high < low:
            raise UnsupportedSchema("maxItems below minItems")
        if high == 0:
            return self.rule('"[" "]"')
        item = self.value(items, root)
        top = "" if high is None else str(high - 1)
        if low == 0:
            return self.rule(f'"[" ({item} ("," {item}){{0,{top}}})? "]"')
        return self.rule(f'"[" {item} ("," {item}){{{low - 1},{top}}} "]"')

    def object(self, schema: dict, root: dict) -> str:
        """Declared members in sorted order, each required one present; extra keys only in an object
        that declares none (then any keys the reader takes bare, with values fitting
        ``additionalProperties``)."""
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise UnsupportedSchema("properties is not an object")
        required = set(schema.get("required") or [])
        props = {**props, **{name: {} for name in required if name not in props}}
        extra = schema.get("additionalProperties", True)
        if not props:
            if extra is False:
                return self.rule('"{" "}"')
            value = self.value(extra if isinstance(extra, dict) else {}, root)
            pair = f'GKEY ":" {value}'
            return self.rule(f'"{{" ({pair} ("," {pair})*)? "}}"')
        members = [(name, f"{self.key(name)} {self.value(sub, root)}", name in required)
                   for name, sub in sorted(props.items())]
        firsts = []
        for j, (_, member, needed) in enumerate(members):
            rest = " ".join(f'"," {m}' if r else f'("," {m})?' for _, m, r in members[j + 1 :])
            firsts.append(f"{member} {rest}".strip())
            if needed:
                break
        body = "(" + " | ".join(f"({f})" for f in firsts) + ")"
        if not any(needed for _, _, needed in members):
            body += "?"
        return self.rule(f'"{{" {body} "}}"')

    def any(self) -> str:
        """Any value: a string, number, boolean, null, or a list or object of any values."""
        if self.any_rule is None:
            self.any_rule = name = f"gv{self.count}"
            self.count += 1
            text = self.string({})
            self.lines += [
                f"{name}: {text} | GNUM | \"true\" | \"false\" | \"null\" | {name}_list | {name}_object",
                f'{name}_list: "[" ({name} ("," {name})*)? "]"',
                f'{name}_object: "{{" (GKEY ":" {name} ("," GKEY ":" {name})*)? "}}"',
            ]
        return self.any_rule


class Gemma4(CallGrammar):
    name = "gemma4"
    opener = OPEN
    avoid = CONVENTION_OPENERS
    reasoning = (CHANNEL_OPEN, "thought\n", CHANNEL_CLOSE)
    markers = (CLOSE, QUOTE)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        need_tools(tools)
        values = GemmaValues(marks)
        names = []
        for i, tool in enumerate(tools):
            properties(tool.schema)
            arguments = values.object(tool.schema, tool.schema)
            values.lines.append(f"c{i}: {literal(tool.name)} {arguments}")
            names.append(f"c{i}")
        values.lines.append(f"gcall: {literal('call:')} ({' | '.join(names)}) {marks(CLOSE)}")
        values.lines.append(f"calls: gcall{f' ({marks(OPEN)} gcall)*' if parallel else ''}")
        return "\n".join(values.lines)


GEMMA4 = Gemma4()
