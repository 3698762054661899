"""MiniMax-M2: ``<minimax:tool_call>``, then ``<invoke>`` elements as in trimkit's convention.

The template writes ``\\n<minimax:tool_call>\\n``, each ``<invoke name="X">`` with one
``<parameter name="k">v</parameter>`` line per argument, and ``</minimax:tool_call>``;
the prompt always opens ``<think>``.
"""

from __future__ import annotations

from typing import Sequence

from .base import CONVENTION_OPENERS, QWEN_OPENERS, CallGrammar, Marks, ToolSchema
from .xml import invoke_rules

OPEN, CLOSE = "<minimax:tool_call>", "</minimax:tool_call>"


class MiniMaxM2(CallGrammar):
    name = "minimax_m2"
    opener = OPEN
    avoid = (*CONVENTION_OPENERS, *QWEN_OPENERS)
    markers = (CLOSE,)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        lines = invoke_rules(tools, marks)
        lines.append(f'calls: "\\n" invoke{"+" if parallel else ""} {marks(CLOSE)}')
        return "\n".join(lines)


MINIMAX_M2 = MiniMaxM2()
