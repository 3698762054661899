"""DeepSeek V3.1: ``<｜tool▁calls▁begin｜>``, then ``<｜tool▁call▁begin｜>X<｜tool▁sep｜>{…}<｜tool▁call▁end｜>``
per call, then ``<｜tool▁calls▁end｜>``. The prompt opens ``<think>`` when thinking is on.

The reader also takes V3's and R1's ``function<｜tool▁sep｜>X`` with a fenced JSON
block, and V3.2's DSML; a constrained model writes V3.1's form, the one the family's
template teaches.
"""

from __future__ import annotations

from typing import Sequence

from .base import CONVENTION_OPENERS, CallGrammar, Marks, ToolSchema, json_arguments, literal

CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
DSML = "｜DSML｜"


class DeepSeek(CallGrammar):
    name = "deepseek"
    opener = CALLS_BEGIN
    avoid = (CALL_BEGIN, f"<{DSML}function_calls>", f"<{DSML}invoke name=", *CONVENTION_OPENERS)
    markers = (CALLS_END, CALL_END, SEP)

    def rules(self, tools: Sequence[ToolSchema], parallel: bool, marks: Marks) -> str:
        lines, alternatives = json_arguments("d", tools, lambda name: f"{literal(name)} {marks(SEP)}")
        lines.append(f"dcall: {marks(CALL_BEGIN)} ({alternatives}) {marks(CALL_END)}")
        lines.append(f"calls: dcall{'+' if parallel else ''} {marks(CALLS_END)}")
        return "\n".join(lines)


DEEPSEEK = DeepSeek()
