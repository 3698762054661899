"""What each model family is asked to get right, through the real server, and a runner for it.

A :class:`Case` is a request and the reply (or replies, for a retry) a model of a family
is forced to give (:mod:`.families`), with the content blocks the client must get back.
:func:`run_case` sends it with the official ``anthropic`` SDK to a live trimkit server
whose MLX backend forces that reply, and compares. The tests assert every applicable
case; ``benchmarks/bench_families.py`` prints the family × case table.

A case that makes no sense for a family is not applicable (None): gpt-oss and Llama 3
make one call a turn, so they have no parallel calls; families that do not reason have
no thinking cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .families import Call, Family, Reply, Segment, markup, plain

SYSTEM = "You are a coding agent. Use the tools."
MODEL = "claude-opus-4-8"

TOOLS = [
    {"name": "Read", "description": "Read a file.",
     "input_schema": {"type": "object", "required": ["file_path"], "properties": {
         "file_path": {"type": "string"}, "limit": {"type": "integer"}}}},
    {"name": "Write", "description": "Write a file.",
     "input_schema": {"type": "object", "required": ["file_path", "content"], "properties": {
         "file_path": {"type": "string"}, "content": {"type": "string"}}}},
    {"name": "Grep", "description": "Search files.",
     "input_schema": {"type": "object", "required": ["pattern"], "properties": {
         "pattern": {"type": "string"}, "multiline": {"type": "boolean"}, "head_limit": {"type": "integer"}}}},
    {"name": "Configure", "description": "Set options.",
     "input_schema": {"type": "object", "required": ["count"], "properties": {
         "count": {"type": "integer"}, "ratio": {"type": "number"}, "enabled": {"type": "boolean"},
         "tags": {"type": "array", "items": {"type": "string"}},
         "options": {"type": "object", "properties": {"depth": {"type": "integer"}}}}}},
]

MARKUP_VALUE = (
    'a = "</parameter>"\nb = "</function>"\nc = "</tool_call>"\nd = "</invoke>"\ne = "</arg_value>"\n'
    'f = "<tool_call|>"\ng = "<|call|>"\nh = "[TOOL_CALLS]"\ni = "<｜tool▁call▁end｜>"\nj = "}"\n'
)
"""A value full of the families' closing markers, each followed by what no grammar allows there."""


def markup_value(fam: Family) -> str:
    """:data:`MARKUP_VALUE` as a model of ``fam`` can write it.

    A SentencePiece-style tokenizer (Gemma's) decodes U+2581 as a space, so no model of
    such a family can write DeepSeek's markers: its value goes without them.
    """
    if fam.style == "spm":
        return "".join(line for line in MARKUP_VALUE.splitlines(keepends=True) if "\u2581" not in line)
    return MARKUP_VALUE


def _markup_write(fam: Family) -> Call:
    return Call("Write", {"file_path": "/work/m.txt", "content": markup_value(fam)})

STRAY = {
    "gemma4": "<|image|>", "gpt_oss": "<|startoftext|>", "glm47": "<sop>", "minimax_m2": "]~!b[",
    "qwen3_coder": "<|im_start|>", "qwen3": "<|im_start|>", "qwen2_5_coder": "<|im_start|>",
    "devstral": "[INST]", "llama3": "<|finetune_right_pad_id|>", "deepseek": "<｜begin▁of▁sentence｜>",
}
"""A special token each family's model might let slip into its text; it must not reach the client."""

READ_A = Call("Read", {"file_path": "/work/a.py"})
READ_B = Call("Read", {"file_path": "/work/b.py", "limit": 20})
TYPED = Call("Configure", {"count": 3, "ratio": 0.25, "enabled": True, "tags": ["x", "y"], "options": {"depth": 2}})
SLOPPY = Call("Grep", {"pattern": "def main", "multiline": False, "head_limit": 5})
THOUGHT = "The file comes first."
UNDECLARED = Call("Frobnicate", {"file_path": "/work/a.py"})

Block = tuple  # ("text", text) | ("thinking", text) | ("tool_use", name, input)


def _text_with_calls(fam: Family) -> bool:
    """Whether this family's models write prose beside a call (harmony and Llama 3's JSON do not)."""
    return fam.name not in ("gpt_oss", "llama3")


def _call_blocks(fam: Family, text: str, calls: tuple[Call, ...]) -> list[Block]:
    lead = [("text", text)] if text and _text_with_calls(fam) else []
    return lead + [("tool_use", c.name, c.arguments) for c in calls]


@dataclass(frozen=True)
class Case:
    """A request (``thinking`` setting), the replies forced in turn, and the blocks expected back."""

    name: str
    replies: Callable[[Family], list[list[Segment]]]
    expect: Callable[[Family], list[Block]]
    thinking: str = "disabled"
    applies: Callable[[Family], bool] = lambda fam: True
    stop_reason: str = "tool_use"


def _say(text: str, *calls: Call, thinking: str = "") -> Callable[[Family], list[list[Segment]]]:
    def replies(fam: Family) -> list[list[Segment]]:
        on = thinking != ""
        return [fam.write(Reply(text=text, calls=calls, thinking=thinking), thinking=on)]

    return replies


def _with_stray(fam: Family) -> list[Segment]:
    """A plain answer, "All done.", with one of the family's special tokens written into the middle of it."""
    placeholder = "All\x00 done."
    out: list[Segment] = []
    for segment in fam.write(Reply(text=placeholder), thinking=False):
        if not segment.markup and segment.text == placeholder:
            out += [plain("All"), markup(STRAY[fam.name]), plain(" done.")]
        else:
            out.append(segment)
    return out


CASES: tuple[Case, ...] = (
    Case("single call", _say("I'll read it.", READ_A), lambda f: _call_blocks(f, "I'll read it.", (READ_A,))),
    Case("parallel calls", _say("Reading both.", READ_A, READ_B),
         lambda f: _call_blocks(f, "Reading both.", (READ_A, READ_B)), applies=lambda f: not f.single_call),
    Case("typed arguments", _say("", TYPED), lambda f: _call_blocks(f, "", (TYPED,))),
    Case("value with markup", lambda f: _say("Writing.", _markup_write(f))(f),
         lambda f: _call_blocks(f, "Writing.", (_markup_write(f),))),
    Case("sloppy call", lambda f: [f.sloppy(SLOPPY)], lambda f: [("tool_use", SLOPPY.name, SLOPPY.arguments)]),
    Case("thinking on", _say("I'll read it.", READ_A, thinking=THOUGHT),
         lambda f: [("thinking", THOUGHT), *_call_blocks(f, "I'll read it.", (READ_A,))],
         thinking="adaptive", applies=lambda f: f.reasons),
    Case("thinking off", lambda f: [f.write(Reply(text="I'll read it.", calls=(READ_A,), thinking=THOUGHT),
                                            thinking=False)],
         lambda f: _call_blocks(f, "I'll read it.", (READ_A,)), applies=lambda f: f.reasons),
    Case("stray special token", lambda f: [_with_stray(f)], lambda f: [("text", "All done.")], stop_reason="end_turn"),
    Case("retry after an undeclared tool", lambda f: _say("", UNDECLARED)(f) + _say("", READ_A)(f),
         lambda f: _call_blocks(f, "", (READ_A,))),
)


def case_named(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


# --------------------------------------------------------------------------- running


def request_for(case: Case) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 600,
        "system": SYSTEM,
        "tools": TOOLS,
        "thinking": {"type": case.thinking},
        "messages": [{"role": "user", "content": "Go ahead."}],
    }


def blocks_of(message) -> list[Block]:
    """A response's content as comparable tuples (text stripped of the whitespace around it)."""
    out: list[Block] = []
    for block in message.content:
        if block.type == "text":
            out.append(("text", block.text.strip()))
        elif block.type == "thinking":
            out.append(("thinking", block.thinking.strip()))
        elif block.type == "tool_use":
            out.append(("tool_use", block.name, block.input))
        else:
            out.append((block.type,))
    return out


@dataclass
class Outcome:
    ok: bool
    detail: str = ""


def run_case(client, script, fam: Family, case: Case, *, stream: bool, special_tokens=()) -> Outcome:
    """Force the case's replies, send its request through ``client`` (``anthropic.Anthropic``), compare."""
    script.push(*case.replies(fam))
    body = request_for(case)
    extra = {"thinking": body.pop("thinking")}
    if stream:
        with client.messages.stream(**body, extra_body=extra) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**body, extra_body=extra)
    got, expected = blocks_of(message), case.expect(fam)
    leaks = [t for b in message.content for t in special_tokens
             if t in (getattr(b, "text", None) or getattr(b, "thinking", None) or "")]
    problems = []
    if got != expected:
        problems.append(f"content {got!r} != {expected!r}")
    if message.stop_reason != case.stop_reason:
        problems.append(f"stop_reason {message.stop_reason!r}")
    if any(b.type == "thinking" and not b.signature for b in message.content):
        problems.append("a thinking block without a signature")
    if leaks:
        problems.append(f"special tokens leaked: {leaks}")
    if script.pending:
        problems.append(f"{script.pending} scripted replies unused")
        script.clear()
    return Outcome(not problems, "; ".join(problems))
