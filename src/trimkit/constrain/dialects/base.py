"""What every dialect's call grammar is made of: tools, markers as one model writes them, values.

A :class:`CallGrammar` says how one dialect writes a turn that holds calls: the
marker that opens a block of calls, the rules for the block (:meth:`~CallGrammar.rules`),
where free text may stand (:meth:`~CallGrammar.turn`) and what reasoning may come
first (:meth:`~CallGrammar.reasoned`). Markers are written through :class:`Marks`:
a marker that the loaded model's tokenizer holds as one special token must be
written as that token (llguidance never matches a special token against text),
any other marker as text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from ..values import (
    Schema,
    UnsupportedSchema,
    avoiding,
    json_value,
    lark_regex,
    raw_text,
    string_alternatives,
)

Mode = Literal["call", "text", "none", "output", "output_or_call"]
"""What the turn must be: a call first (``tool_choice`` any or a tool), text that may
open calls (auto), text that never does (none), JSON for the output schema, or either."""

DECIDED: frozenset[str] = frozenset({"call", "output", "output_or_call"})
"""Modes in which the model must get past any reasoning to a shape the grammar decides."""

THINK_CLOSE = "</think>"

PREFIX = "antml:"
"""The tag prefix the readers also accept (Anthropic's older markup)."""

CONVENTION_OPENERS = ("<function_calls>", f"<{PREFIX}function_calls>", "<invoke name=", f"<{PREFIX}invoke name=")
"""trimkit's XML convention, which every reader but harmony's also reads as calls: free text never holds it."""

QWEN_OPENERS = ("<tool_call>", "<function=")
"""The ``<tool_call>`` forms the XML, Qwen, Hermes, GLM and MiniMax readers also read."""


@dataclass(frozen=True)
class ToolSchema:
    """A tool as the grammar needs it: the client's exact name and its input schema."""

    name: str
    schema: Schema


class Marks:
    """How markers are written in a grammar for one model.

    ``special`` maps each marker that the model's tokenizer holds as a special token
    to its id; such a marker is written ``<[id]>`` (the only way llguidance lets a
    grammar name a special token), any other as a string literal.
    """

    def __init__(self, special: Mapping[str, int] | None = None):
        self.ids = dict(special or {})

    def __call__(self, text: str) -> str:
        return f"<[{self.ids[text]}]>" if text in self.ids else literal(text)

    def special(self, text: str) -> bool:
        return text in self.ids

    def seq(self, *texts: str) -> str:
        """``texts`` in a row: runs of text as one literal (the engine's lexer does not back up, so a
        literal that could end early must not be split), each special token apart."""
        out: list[str] = []
        run = ""
        for text in texts:
            if self.special(text):
                out += [literal(run)] if run else []
                out.append(self(text))
                run = ""
            else:
                run += text
        out += [literal(run)] if run else []
        return " ".join(out)


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


def need_tools(tools: Sequence[ToolSchema]) -> None:
    if not tools:
        raise UnsupportedSchema("no tools to call")


def until(rule: str, close: str, marks: Marks) -> list[str]:
    """Rules for ``rule``: any text up to and including the first ``close``.

    The text alone is the terminal ``RULE_TEXT`` (for a turn that may end inside it)
    when ``close`` is a special token; a text ``close`` ends a lazy lexeme instead.
    """
    text = rule.upper() + "_TEXT"
    if marks.special(close):
        return [f"{text}: {lark_regex(avoiding([close]))}", f"{rule}: {text} {marks(close)}"]
    return [f"{rule}[lazy]: {lark_regex('(?s:.*)' + re.escape(close))}"]


def raw_value(rule: str, schema: Any, root: Schema, end: str, marks: Marks, closers: Sequence[str]) -> list[str]:
    """Rules for ``rule``: one argument's value, then ``end``.

    A value whose schema allows a string is raw text that holds none of ``closers``
    (the formats write strings raw, and their readers try text first for a
    string); any other value is JSON. ``enum`` and ``const`` strings are literals.
    """
    closers = tuple(closers)
    special = marks.special(end)
    strings = string_alternatives(schema)
    if not strings:
        return [f"{rule}: {json_value(with_definitions(schema, root), closers)} {marks(end)}"]
    literals: list[str] = []
    shapes: list[str | None] = []
    for alt in strings:
        values = alt.get("enum") if isinstance(alt.get("enum"), list) else [alt["const"]] if "const" in alt else None
        if values is not None:
            literals += [v for v in values if isinstance(v, str)]
        else:
            shapes.append(raw_text(alt, closers))
    if None in shapes:  # some alternative takes any text
        shapes = [None]
    options = [(f"{literal(v)} {marks(end)}" if v else marks(end)) if special else literal(v + end)
               for v in dict.fromkeys(literals)]
    rules = []
    for n, shape in enumerate(dict.fromkeys(shapes)):
        name, lazy = f"{rule.upper()}_{n}", f"{rule}_{n}"
        body = lark_regex(avoiding(closers))
        if shape is not None:
            body = f"({body} & {shape})"
        if special:
            rules += [f"{name}: {body}", f"{lazy}: {name} {marks(end)}"]
        else:
            rules += [f"{name}: {body} {literal(end)}", f"{lazy}[lazy]: {name}"]
        options.append(lazy)
    if not options:
        raise UnsupportedSchema("a string value with no allowed text")
    return [f"{rule}: {' | '.join(options)}", *rules]


def raw_arguments(rule: str, tool: ToolSchema, marks: Marks, end: str, closers: Sequence[str],
                  opening: Callable[[str], str], after: str = "") -> tuple[list[str], str]:
    """Rules for each argument of ``tool`` written as ``opening(name)``, its value (:func:`raw_value`,
    ended by ``end``) and ``after``; and the sequence of them, in the schema's order, the optional ones
    optional. Argument rules are named ``{rule}_a{k}``."""
    props, required = properties(tool.schema)
    lines, params = [], []
    for k, (name, sub) in enumerate(props.items()):
        arg = f"{rule}_a{k}"
        lines += raw_value(f"{arg}_v", sub, tool.schema, end, marks, closers)
        lines.append(f"{arg}: {opening(name)} {arg}_v{after}")
        params.append(arg if name in required else f"{arg}?")
    return lines, " ".join(params)


def json_arguments(prefix: str, tools: Sequence[ToolSchema], head: Callable[[str], str]) -> tuple[list[str], str]:
    """A rule per tool, ``head(name)`` then its arguments as JSON, and the alternation of them."""
    need_tools(tools)
    lines = []
    for i, tool in enumerate(tools):
        properties(tool.schema)  # the same root shapes as the other dialects
        lines.append(f"{prefix}{i}: {head(tool.name)} {json_value(tool.schema)}")
    return lines, " | ".join(f"{prefix}{i}" for i in range(len(tools)))


class CallGrammar:
    """How one dialect writes a turn with calls in it.

    ``opener`` starts a block of calls; free text never holds it, nor any of
    ``avoid`` (the other markers at which the dialect's reader opens a call, so
    that no call can begin outside the grammar). ``reasoning`` is ``(open,
    prelude, close)`` around reasoning that the model opens itself before
    anything else (Gemma's thought channel, Mistral's ``[THINK]``);
    ``think_close`` ends a reasoning section the prompt opened. ``markers`` are
    the other markers the rules write; every one of them may be a special token
    in some tokenizer. ``parallel_calls`` is False where the format holds one
    call a turn.
    """

    name: str = ""
    opener: str = ""
    avoid: tuple[str, ...] = ()
    reasoning: tuple[str, str, str] | None = None
    think_close: str = THINK_CLOSE
    markers: tuple[str, ...] = ()
    parallel_calls: bool = True

    @property
    def all_markers(self) -> tuple[str, ...]:
        """Every marker the grammar may write or keep out of text: the ones to look up as special tokens."""
        found = [self.opener, *self.avoid, self.think_close, *self.markers, *(self.reasoning or ())]
        return tuple(dict.fromkeys(m for m in found if m))

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        """Lark rules defining ``calls``: what follows the opener up to the end of the block."""
        raise NotImplementedError

    def free(self, rule: str = "FREE") -> str:
        """The terminal for free text: anything that holds neither the opener nor a marker of :attr:`avoid`."""
        return f"{rule}: {lark_regex(avoiding((self.opener, *self.avoid)))}"

    def turn(self, mode: Mode, marks: Marks) -> tuple[list[str], str]:
        """Rules and the body of the start rule for ``mode`` (``calls`` and ``output`` are defined elsewhere)."""
        opener = marks(self.opener)
        if mode == "call":
            return [], f"{opener} calls"
        if mode == "output":
            return [], "output"
        if mode == "output_or_call":
            return [], f"output | {opener} calls"
        if mode == "none":
            return [self.free()], "FREE"
        if marks.special(self.opener):
            return [self.free()], f"FREE ({opener} calls)?"
        head = "(?:" + avoiding((self.opener, *self.avoid)) + ")" + re.escape(self.opener)
        return [f"head[lazy]: {lark_regex(head)}", self.free()], "FREE | head calls"

    def reasoned(self, body: str, mode: Mode, thinking_open: bool, marks: Marks) -> tuple[list[str], str]:
        """``body`` behind the reasoning that may come first: the rest of a section the prompt opened,
        or one the model opens itself. Where the grammar decides the shape (a forced call, JSON) the
        reasoning must end; where free text follows, the turn may also end inside it."""
        rules: list[str] = []
        if thinking_open:
            close = self.think_close
            rules += until("think", close, marks)
            if mode in DECIDED:
                return rules, f'think "\\n"{{0,3}} ({body})'
            if marks.special(close):  # free text cannot write a special token: the reasoning ends apart
                return rules, f"THINK_TEXT | think ({body})"
            return [], body  # free text reads past a text </think> by itself
        if self.reasoning is not None:
            start, prelude, close = self.reasoning
            rules += until("reason_body", close, marks)
            opening = f"{marks(start)} {literal(prelude)}" if prelude else marks(start)
            rules.append(f"reason: {opening} reason_body")
            if mode not in DECIDED and marks.special(close):
                rules.append(f"reason_open: {opening} REASON_BODY_TEXT")
                return rules, f"reason? ({body}) | reason_open"
            return rules, f"reason? ({body})"
        return rules, body
