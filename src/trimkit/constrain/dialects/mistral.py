"""Mistral and Devstral (tokenizer v11 and later): ``[TOOL_CALLS]X[ARGS]{…}`` per call.

A call has no closing marker: it ends where its JSON does, and the next call opens
with ``[TOOL_CALLS]`` again. Magistral and Devstral may reason first in
``[THINK]…[/THINK]``.
"""

from __future__ import annotations

from typing import Sequence

from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, json_arguments, literal

OPEN, ARGS = "[TOOL_CALLS]", "[ARGS]"
THINK_OPEN, THINK_CLOSE = "[THINK]", "[/THINK]"


class Mistral(CallGrammar):
    name = "mistral"
    opener = OPEN
    avoid = CONVENTION_OPENERS
    reasoning = (THINK_OPEN, "", THINK_CLOSE)
    markers = (ARGS,)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        lines, alternatives = json_arguments("m", tools, lambda name: f"{literal(name)} {marks(ARGS)}")
        lines.append(f"mcall: {alternatives}")
        lines.append(f"calls: mcall{f' ({marks(OPEN)} mcall)*' if parallel else ''}")
        return "\n".join(lines)


MISTRAL = Mistral()
