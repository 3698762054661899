"""gpt-oss's harmony format: a turn is a series of messages, each naming its channel.

The prompt ends with ``<|start|>assistant``; the model then writes messages::

    <|channel|>analysis<|message|>The user wants…<|end|>
    <|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "ls"}<|call|>

or ends with ``<|channel|>final<|message|>…`` (and ``<|return|>``). The analysis
channel is the model's reasoning, which always comes first: a forced call or
JSON answer may follow up to :data:`EARLIER_MESSAGES` analysis messages. A call is one message, and
``<|call|>`` ends the turn, so there is one call a turn. JSON output is the final
message's content.
"""

from __future__ import annotations

from typing import Sequence

from ..values import avoiding, lark_regex
from .base import CallGrammar, Marks, Mode, ToolSchema, json_arguments, literal

START, END, MESSAGE, CHANNEL = "<|start|>", "<|end|>", "<|message|>", "<|channel|>"
CONSTRAIN, RETURN, CALL = "<|constrain|>", "<|return|>", "<|call|>"
EARLIER_MESSAGES = 4
"""Analysis (and preamble) messages allowed before the last one: gpt-oss writes one or two; a bound
keeps a model that keeps starting new ones from never reaching its answer."""
TEXT_ENDS = (START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL)
"""Markers the reader ends a message's text at: no message text holds them."""


class Harmony(CallGrammar):
    name = "harmony"
    opener = CHANNEL
    markers = TEXT_ENDS
    parallel_calls = False

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        lines, alternatives = json_arguments(
            "h", tools, lambda name: marks.seq(f" to=functions.{name} ", CONSTRAIN, "json", MESSAGE))
        lines.append(f"calls: {marks(CHANNEL)} {literal('commentary')} ({alternatives}) {marks(CALL)}")
        return "\n".join(lines)

    def turn(self, mode: Mode, marks: Marks) -> tuple[list[str], str]:
        """Analysis messages (and, where text is free, commentary to no one) first, then the last message."""
        message = lambda channel: f"{marks(CHANNEL)} {literal(channel)} {marks(MESSAGE)}"  # noqa: E731
        after = f"{marks(END)} {marks(START)} {literal('assistant')}"
        rules = [f"HTEXT: {lark_regex(avoiding(TEXT_ENDS))}", f"analysis: {message('analysis')} HTEXT {after}"]
        earlier = "analysis"
        if mode in ("text", "none"):
            rules += [f"preamble: {message('commentary')} HTEXT {after}", f"final: {message('final')} HTEXT"]
            earlier = "(analysis | preamble)"
        elif mode != "call":
            rules.append(f"final_json: {message('final')} output")
        last = {"call": "calls", "output": "final_json", "output_or_call": "final_json | calls",
                "text": "final | calls", "none": "final"}[mode]
        return rules, f"{earlier}{{0,{EARLIER_MESSAGES}}} ({last})"

    def reasoned(self, body: str, mode: Mode, thinking_open: bool, marks: Marks) -> tuple[list[str], str]:
        return [], body  # the analysis channel is part of the turn


HARMONY = Harmony()
