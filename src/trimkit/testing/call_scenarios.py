"""Model output written in each family's tool-call format, and the cases the readers are measured on.

A :class:`Writer` renders calls, reasoning and visible text exactly as a family's
model writes them (the shapes its chat template renders for earlier turns),
so tests and ``benchmarks/bench_families.py`` can script what a model says and
check what the reader makes of it. :func:`cases` lists, per dialect, the cases
of the readers' figure table: single call, parallel calls, typed arguments, a
value containing markup, sloppy JSON, thinking on, thinking off, and the same
turns split at every position. :func:`check` runs one through
:class:`~trimkit.toolcalls.response.ResponseBuilder`.

Written here from each family's published format; no model or template is
loaded.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from ..convention import format_calls
from ..toolcalls.dialects import dialect_named
from ..toolcalls.items import Reasoning
from ..toolcalls.response import ResponseBuilder
from ..toolcalls.scan import JsonSpan, Needles
from ..wire import TextBlock, ThinkingBlock, Tool, ToolUseBlock

Call = tuple[str, dict[str, Any]]

TOOLS = [
    Tool(name="Write", input_schema={"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}),
    Tool(
        name="Bash",
        input_schema={
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout": {"type": "integer"},
                "run_in_background": {"type": "boolean"},
            },
        },
    ),
    Tool(
        name="Grep",
        input_schema={
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "paths": {"type": "array", "items": {"type": "string"}},
                "options": {"type": "object", "properties": {"depth": {"type": "integer"}, "ratio": {"type": "number"}}},
            },
        },
    ),
]

CLOSERS = (
    "</parameter>", "</invoke>", "</function_calls>", "</function>", "</tool_call>", "<tool_call>",
    "</arg_value>", "<arg_key>", "</minimax:tool_call>", "<tool_call|>", "<|tool_call>", "<|\"|>",
    "<|call|>", "<|end|>", "<|return|>", "<|start|>", "<|channel|>", "[TOOL_CALLS]", "[ARGS]",
    "<|eom_id|>", "<|eot_id|>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>", "```",
    "</think>", "<channel|>", "[/THINK]", "<function=x>", '<parameter name="x">',
)  # fmt: skip
"""Every family's closing (and opening) markers, for values that must come through whole."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _raw(value: Any) -> str:
    """A value as XML templates write it: strings raw, anything else as JSON."""
    return value if isinstance(value, str) else _json(value)


def gemma_value(value: Any) -> str:
    """A value in Gemma 4's argument syntax: bare keys, strings between ``<|"|>``."""
    if isinstance(value, str):
        return f'<|"|>{value}<|"|>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{gemma_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(gemma_value(v) for v in value) + "]"
    return _json(value)


@dataclass(frozen=True)
class Writer:
    """How one family writes a turn: calls, reasoning, visible text."""

    dialect: str
    calls: Callable[[list[Call]], str]
    thinking: Callable[[str], str] | None = None
    text: Callable[[str], str] = lambda text: text
    opened_thinking: Callable[[str], str] | None = None
    """Reasoning when the prompt already opened it (``…</think>``), if the family's templates do that."""
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(closer, what may follow it): inside a value, these ends are where the grammar ends the value."""
    impossible: tuple[str, ...] = ()
    """Strings a value cannot hold in this format at all."""

    def value_is_writable(self, value: str) -> bool:
        """Whether the format can hold ``value`` without it reading as the end of the value."""
        if any(s in value for s in self.impossible):
            return False
        for closer, follow in self.ambiguous:
            start = value.find(closer)
            while start >= 0:
                rest = value[start + len(closer) :].lstrip()
                if any(rest.startswith(f) for f in follow):
                    return False
                start = value.find(closer, start + 1)
        return True


def _think(text: str) -> str:
    return f"<think>{text}</think>\n\n"


def _opened(text: str) -> str:
    return f"{text}</think>\n\n"


_XML_FOLLOW = ('<parameter name=', "</invoke>", "</function_calls>", "<invoke name=", "</minimax:tool_call>")


def _minimax(calls: list[Call]) -> str:
    invokes = "".join(
        f'<invoke name="{name}">\n' + "".join(f'<parameter name="{k}">{_raw(v)}</parameter>\n' for k, v in args.items()) + "</invoke>\n"
        for name, args in calls
    )
    return f"<minimax:tool_call>\n{invokes}</minimax:tool_call>"


def _qwen(calls: list[Call]) -> str:
    return "\n".join(
        f"<tool_call>\n<function={name}>\n"
        + "".join(f"<parameter={k}>\n{_raw(v)}\n</parameter>\n" for k, v in args.items())
        + "</function>\n</tool_call>"
        for name, args in calls
    )


def _hermes(calls: list[Call]) -> str:
    return "\n".join(f'<tool_call>\n{{"name": {_json(n)}, "arguments": {_json(a)}}}\n</tool_call>' for n, a in calls)


def _glm(calls: list[Call]) -> str:
    return "".join(
        f"<tool_call>{name}" + "".join(f"<arg_key>{k}</arg_key><arg_value>{_raw(v)}</arg_value>" for k, v in args.items()) + "</tool_call>"
        for name, args in calls
    )


def _gemma(calls: list[Call]) -> str:
    return "".join(f"<|tool_call>call:{name}{gemma_value(args)}<tool_call|>" for name, args in calls)


def _harmony_calls(calls: list[Call]) -> str:
    return "<|start|>assistant".join(
        f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{_json(args)}<|call|>" for name, args in calls
    )


def _mistral(calls: list[Call]) -> str:
    return "".join(f"[TOOL_CALLS]{name}[ARGS]{_json(args)}" for name, args in calls)


def _llama(calls: list[Call]) -> str:
    return "; ".join(_json({"name": name, "parameters": args}) for name, args in calls)


def _deepseek(calls: list[Call]) -> str:
    body = "".join(f"<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>{_json(a)}<｜tool▁call▁end｜>" for n, a in calls)
    return f"<｜tool▁calls▁begin｜>{body}<｜tool▁calls▁end｜>"


WRITERS: dict[str, Writer] = {
    "xml": Writer("xml", format_calls, _think, ambiguous=(("</parameter>", _XML_FOLLOW),)),
    "qwen3_coder": Writer(
        "qwen3_coder", _qwen, _think, opened_thinking=_opened,
        ambiguous=(("</parameter>", ("<parameter=", "</function>", "</tool_call>", "<function=")),),
    ),
    "hermes": Writer("hermes", _hermes, _think, opened_thinking=_opened),
    "glm47": Writer("glm47", _glm, _think, opened_thinking=_opened, ambiguous=(("</arg_value>", ("<arg_key>", "</tool_call>")),)),
    "minimax_m2": Writer("minimax_m2", _minimax, _think, opened_thinking=_opened, ambiguous=(("</parameter>", _XML_FOLLOW),)),
    "gemma4": Writer("gemma4", _gemma, lambda t: f"<|channel>thought\n{t}<channel|>", impossible=('<|"|>',)),
    "harmony": Writer(
        "harmony",
        lambda calls: _harmony_calls(calls),
        lambda t: f"<|channel|>analysis<|message|>{t}<|end|><|start|>assistant",
        text=lambda t: f"<|channel|>commentary<|message|>{t}<|end|><|start|>assistant",
    ),
    "mistral": Writer("mistral", _mistral, lambda t: f"[THINK]{t}[/THINK]"),
    "llama3_json": Writer("llama3_json", _llama),
    "deepseek": Writer("deepseek", _deepseek, _think, opened_thinking=_opened),
}  # fmt: skip

FAMILY_CASES = ("single call", "parallel calls", "typed arguments", "value containing markup", "sloppy JSON", "thinking on", "thinking off", "split anywhere")


@dataclass
class Case:
    """One scripted turn and the blocks it must give."""

    dialect: str
    kind: str
    label: str
    turn: str
    expected: list
    thinking: bool = False
    thinking_open: bool | None = False
    hidden: tuple[str, ...] = ()
    """Strings that must appear in no text block (dropped reasoning)."""
    split: bool = field(default=False)


def summary(content: list) -> list:
    """Blocks as plain values: text, ("thinking", text), or (tool name, input)."""
    out = []
    for block in content:
        if isinstance(block, TextBlock):
            out.append(block.text)
        elif isinstance(block, ThinkingBlock):
            out.append(("thinking", block.thinking))
        elif isinstance(block, ToolUseBlock):
            out.append((block.name, block.input))
    return out


def read(dialect: str, chunks: list[str], tools=TOOLS, thinking_open: bool | None = False, truncated: bool = False) -> list:
    """A dialect's items for a turn given in ``chunks``, adjacent text and adjacent reasoning joined,
    so results compare whatever the chunking."""
    reader = dialect_named(dialect).reader(tools, thinking_open=thinking_open)
    items = []
    for chunk in chunks:
        items += reader.feed(chunk)
    items += reader.finish(truncated=truncated)
    merged: list = []
    for item in items:
        if isinstance(item, str) and merged and isinstance(merged[-1], str):
            merged[-1] += item
        elif isinstance(item, Reasoning) and merged and isinstance(merged[-1], Reasoning):
            merged[-1] = Reasoning(merged[-1].text + item.text)
        elif item != "":
            merged.append(item)
    return merged


def build(case: Case, chunks: list[str] | None = None) -> ResponseBuilder:
    numbers = itertools.count()
    builder = ResponseBuilder(
        TOOLS,
        dialect=dialect_named(case.dialect),
        thinking=case.thinking,
        thinking_open=case.thinking_open,
        id_factory=lambda: f"toolu_{next(numbers):024d}",
    )
    for chunk in chunks if chunks is not None else [case.turn]:
        builder.feed(chunk)
    builder.finish("stop")
    return builder


def check(case: Case) -> str | None:
    """None when the case passes; otherwise what went wrong."""
    builder = build(case)
    got = summary(builder.content)
    if got != case.expected:
        return f"expected {case.expected!r}, got {got!r}"
    texts = [b for b in got if isinstance(b, str)]
    for secret in case.hidden:
        if any(secret in t for t in texts):
            return f"{secret!r} leaked into the text"
    if case.split:
        whole = builder.content
        turn = case.turn
        for cut in range(1, len(turn)):
            if build(case, [turn[:cut], turn[cut:]]).content != whole:
                return f"split at {cut} differs"
        if build(case, list(turn)).content != whole:
            return "character by character differs"
    return None


MARKUP_VALUES = (
    'a = "</parameter>"\nb = 2\n',
    " | ".join(CLOSERS),
    "ends with a closer </parameter>",
    'json = {"name": "Bash", "arguments": {}}\n</tool_call>\n<tool_call>\n',
    "</invoke>\n</function_calls>\nafter",
)


def _sloppy(dialect: str) -> list[tuple[str, str, list]]:
    """(label, turn, expected) for the slips small models make, as each family would make them."""
    ls = ("Bash", {"command": "ls"})
    grep = ("Grep", {"pattern": "x", "paths": ["a", "b"], "options": {"depth": 2}})
    bg = ("Bash", {"command": "ls", "run_in_background": True, "timeout": 5})
    json_slips = [
        ("trailing comma", '{"name": "Bash", "arguments": {"command": "ls",},}', [ls]),
        ("single quotes", "{'name': 'Bash', 'arguments': {'command': 'ls'}}", [ls]),
        ("Python literals", '{"name": "Bash", "arguments": {"command": "ls", "run_in_background": True, "timeout": 5}}', [bg]),
        ("unquoted keys", '{name: "Bash", arguments: {command: "ls"}}', [ls]),
        ("wrong case", '{"name": "bash", "arguments": {"command": "ls"}}', [ls]),
        ("array of calls", '[{"name": "Bash", "arguments": {"command": "ls"}}, {"name": "Grep", "arguments": {"pattern": "x", "paths": ["a", "b"], "options": {"depth": 2}}}]', [ls, grep]),
        ("missing brace", '{"name": "Bash", "arguments": {"command": "ls"}', [ls]),
    ]  # fmt: skip
    args_slips = [
        ("trailing comma", '{"command": "ls",}', [ls]),
        ("single quotes", "{'command': 'ls'}", [ls]),
        ("Python literals", '{"command": "ls", "run_in_background": True, "timeout": 5}', [bg]),
        ("unquoted keys", '{command: "ls"}', [ls]),
    ]
    if dialect in ("hermes", "qwen3_coder"):
        return [(label, f"<tool_call>\n{body}\n</tool_call>", exp) for label, body, exp in json_slips]
    if dialect == "mistral":
        return [(label, f"[TOOL_CALLS]{body if body.startswith('[') else '[' + body + ']'}", exp) for label, body, exp in json_slips] + [
            ("wrong case, v11", '[TOOL_CALLS]bash[ARGS]{"command": "ls"}', [ls]),
        ]
    if dialect == "llama3_json":
        return [(label, body, exp) for label, body, exp in json_slips]
    if dialect == "harmony":
        head = "<|channel|>commentary to=functions.{} <|constrain|>json<|message|>{}<|call|>"
        return [(label, head.format("Bash", body), exp) for label, body, exp in args_slips] + [("wrong case", head.format("bash", '{"command": "ls"}'), [ls])]
    if dialect == "deepseek":
        head = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{}<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        return [(label, head.format("Bash", body), exp) for label, body, exp in args_slips] + [
            ("wrong case", head.format("bash", '{"command": "ls"}'), [ls]),
            ("R1 fence", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>Bash\n```json\n{'command': 'ls',}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>", [ls]),
        ]  # fmt: skip
    if dialect == "gemma4":
        return [
            ("trailing comma", '<|tool_call>call:Bash{command:<|"|>ls<|"|>,}<tool_call|>', [ls]),
            ("JSON strings", '<|tool_call>call:Bash{"command": "ls"}<tool_call|>', [ls]),
            ("Python literals", '<|tool_call>call:Bash{command:<|"|>ls<|"|>,run_in_background:True,timeout:5}<tool_call|>', [bg]),
            ("wrong case", '<|tool_call>call:bash{command:<|"|>ls<|"|>}<tool_call|>', [ls]),
        ]
    xml_like = {
        "minimax_m2": ('<minimax:tool_call>\n<invoke name="{}">\n<parameter name="{}">{}</parameter>\n</invoke>\n</minimax:tool_call>', "</invoke>\n"),
    }
    if dialect == "glm47":
        return [
            ("wrong case", "<tool_call>bash<arg_key>command</arg_key><arg_value>ls</arg_value></tool_call>", [ls]),
            ("sloppy array", "<tool_call>Grep<arg_key>pattern</arg_key><arg_value>x</arg_value><arg_key>paths</arg_key><arg_value>['a', 'b',]</arg_value><arg_key>options</arg_key><arg_value>{depth: 2}</arg_value></tool_call>", [grep]),
            ("Python literals", "<tool_call>Bash<arg_key>command</arg_key><arg_value>ls</arg_value><arg_key>run_in_background</arg_key><arg_value>True</arg_value><arg_key>timeout</arg_key><arg_value>5</arg_value></tool_call>", [bg]),
            ("4.5 layout", "<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n</tool_call>", [ls]),
        ]  # fmt: skip
    tool_call = [(f"{label}, <tool_call>", f"<tool_call>\n{body}\n</tool_call>", exp) for label, body, exp in json_slips]
    template, _ = xml_like.get(dialect, ('<function_calls>\n<invoke name="{}">\n<parameter name="{}">{}</parameter>\n</invoke>\n</function_calls>', ""))
    return [
        ("wrong case", template.format("bash", "command", "ls"), [ls]),
        ("sloppy array", template.format("Grep", "pattern", "x").replace("</invoke>", "<parameter name=\"paths\">['a', 'b',]</parameter>\n<parameter name=\"options\">{depth: 2}</parameter>\n</invoke>"), [grep]),
        ("Python literals", template.format("Bash", "command", "ls").replace("</invoke>", '<parameter name="run_in_background">True</parameter>\n<parameter name="timeout">5</parameter>\n</invoke>'), [bg]),
        ("missing </invoke>", template.format("Bash", "command", "ls").replace("</invoke>\n", ""), [ls]),
    ] + (tool_call if dialect == "xml" else [])  # fmt: skip


def cases(dialect: str) -> dict[str, list[Case]]:
    """The measured cases of one dialect, by column of the figure table."""
    w = WRITERS[dialect]
    ls = ("Bash", {"command": "ls -la"})
    two = [("Bash", {"command": "pwd"}), ("Write", {"file_path": "/tmp/a.txt", "content": "hello\n"})]
    typed = [("Bash", {"command": "sleep 1", "timeout": 30, "run_in_background": True}), ("Grep", {"pattern": "x", "paths": ["a", "b"], "options": {"depth": 2, "ratio": 0.5}})]
    as_strings = [("Bash", {"command": "sleep 1", "timeout": "30", "run_in_background": "true"})]
    intro = "Let me look." if dialect != "llama3_json" else ""
    lead = [intro] if intro else []
    out: dict[str, list[Case]] = {k: [] for k in FAMILY_CASES}

    def add(kind: str, label: str, turn: str, expected: list, **options: Any) -> None:
        out[kind].append(Case(dialect, kind, label, turn, expected, **options))

    add("single call", "text then a call", (w.text(intro) if intro else "") + w.calls([ls]), [*lead, ls])
    add("single call", "a call alone", w.calls([ls]), [ls])
    add("parallel calls", "two calls", w.calls(two), two)
    add("parallel calls", "three calls", w.calls([*two, ls]), [*two, ls])
    add("typed arguments", "integers, booleans, arrays, objects", w.calls(typed), typed)
    add("typed arguments", "numbers written as strings", w.calls(as_strings), [("Bash", {"command": "sleep 1", "timeout": 30, "run_in_background": True})])
    for i, value in enumerate(MARKUP_VALUES):
        if w.value_is_writable(value):
            call = ("Write", {"file_path": "/tmp/x", "content": value})
            add("value containing markup", f"value {i}", w.calls([call]), [call])
    for label, turn, expected in _sloppy(dialect):
        add("sloppy JSON", label, turn, expected)
    if w.thinking is not None:
        secret = "The user wants the files; call Bash."
        for on in (True, False):
            kind = "thinking on" if on else "thinking off"
            thought = [("thinking", secret)] if on else []
            add(kind, "reasoning then text", w.thinking(secret) + w.text("Here.") if dialect == "harmony" else w.thinking(secret) + "Here.",
                [*thought, "Here."], thinking=on, hidden=(secret,))  # fmt: skip
            add(kind, "reasoning then a call", w.thinking(secret) + w.calls([ls]), [*thought, ls], thinking=on, hidden=(secret,))
            if w.opened_thinking is not None:
                add(kind, "opened by the prompt", w.opened_thinking(secret) + "Here.", [*thought, "Here."], thinking=on, thinking_open=True, hidden=(secret,))
                add(kind, "unknown whether opened", w.opened_thinking(secret) + "Here.", [*thought, "Here."], thinking=on, thinking_open=None, hidden=(secret,))
    for source in ("single call", "parallel calls", "value containing markup"):
        for case in out[source][:2]:
            out["split anywhere"].append(Case(dialect, "split anywhere", f"{source}: {case.label}", case.turn, case.expected, split=True))
    if out["thinking on"]:
        case = out["thinking on"][1]
        out["split anywhere"].append(Case(dialect, "split anywhere", "thinking then a call", case.turn, case.expected, thinking=True, split=True))
    return out


class Looks:
    """Counts the characters the scanners look at while it is entered: a reader's work, without a clock."""

    def __init__(self) -> None:
        self.count = 0
        find, lead, at, run = Needles.find, Needles.lead, Needles.at, JsonSpan.run
        looks = self

        def counted_find(needles, text, start=0, final=True, stop=None):
            hit = find(needles, text, start, final, stop)
            end = hit[0] if hit is not None else (len(text) if stop is None else min(stop, len(text)))
            looks.count += max(0, end - start) + needles.longest
            return hit

        def counted_lead(needles, text, start, stop):
            j = lead(needles, text, start, stop)
            looks.count += max(0, (j if j >= 0 else min(stop, len(text))) - start)
            return j

        def counted_at(needles, text, j, final):
            word = at(needles, text, j, final)
            looks.count += len(word) if word else 1
            return word

        def counted_run(span, buf, pos, final):
            p, kind = run(span, buf, pos, final)
            looks.count += max(0, p - pos) + 1
            return p, kind

        self.patched = (counted_find, counted_lead, counted_at, counted_run)
        self.original = (find, lead, at, run)

    def __enter__(self):
        Needles.find, Needles.lead, Needles.at, JsonSpan.run = self.patched
        return self

    def __exit__(self, *exc):
        Needles.find, Needles.lead, Needles.at, JsonSpan.run = self.original
